"""SQL text, without a database: `{{last_sync_time}}`, the lexer, the statement guard. A leaf
package that both the configuration and the source use."""
