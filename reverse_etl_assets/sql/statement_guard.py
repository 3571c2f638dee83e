"""Refuse a sync's SQL unless it is one read-only SELECT, before anything reaches the database.

The session is already a READ ONLY transaction, but that does not stop `SELECT ... INTO OUTFILE`,
`INTO @var` or named locks (GET_LOCK), nor every server's locking reads, and a mistake deserves a
message naming the culprit, sent before the database is touched. The check splits the query into
tokens the way the MySQL/MariaDB lexer does, so words inside comments, strings and quoted identifiers
never count as keywords, while a function's name counts however it is written: `GET_LOCK`(...),
"GET_LOCK"(...) under ANSI_QUOTES, mariadb_schema.get_lock /* c */ (...) all take the lock.
"""

from __future__ import annotations

from typing import NoReturn

from reverse_etl_assets.sql.lexer import (
    PREFIX,
    READINGS,
    QueryRefused,
    Token,
    refuse,
    split_tokens,
)
from reverse_etl_assets.sql.placeholders import LAST_SYNC_TIME


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ONE_STATEMENT = (
    "a sync runs exactly one SELECT: remove everything after the first statement "
    "(a single trailing semicolon is fine)"
)
_ONLY_SELECT = "a sync's query must be one SELECT (or WITH ... SELECT) whose rows are sent to the destination"
_INTO = "a sync sends the rows it selects to its destination; remove the INTO clause, which writes elsewhere"
_LOCKING_READ = (
    "a locking read holds row locks on your database while the rows are sent, blocking your application; "
    "remove it (a plain SELECT takes no row locks)"
)
_LOCK_FUNCTION = (
    "a named lock is held by the sync's connection and can block your application; remove the call"
)
# Reserved words (in MySQL and MariaDB) that start a writing or administrative statement: unquoted,
# they cannot appear anywhere in a valid SELECT, except INSERT( and REPLACE( as string functions.
_STATEMENT_WORDS = _words(
    "ALTER CALL CREATE DELETE DROP GRANT INSERT KILL LOAD LOCK RENAME REPLACE REVOKE UNLOCK UPDATE"
)
_ALSO_FUNCTIONS = _words("INSERT REPLACE")
# Functions that take or give up a named lock (IS_FREE_LOCK and IS_USED_LOCK only look). A call is the
# name, however quoted or qualified (MariaDB's mariadb_schema.GET_LOCK is the built-in), then "(".
_LOCK_FUNCTIONS = _words(
    "GET_LOCK RELEASE_LOCK RELEASE_ALL_LOCKS SERVICE_GET_READ_LOCKS SERVICE_GET_WRITE_LOCKS "
    "SERVICE_RELEASE_LOCKS"
)
# Second words worth naming in a message: "TRUNCATE TABLE", "LOAD DATA", "DELETE FROM".
_SECOND_WORDS = _words(
    "DATA DATABASE DUMPFILE FROM FUNCTION INDEX INTO OUTFILE PROCEDURE SCHEMA TABLE TABLES TRIGGER USER "
    "VIEW XML"
)


# For each other reading of quotes (see lexer.READINGS): the text that makes it differ from the usual
# one, and what a refusal found only in that reading says.
_OTHER_READINGS = {
    READINGS[1]: (
        ("\\'", '\\"'),
        "NO_BACKSLASH_ESCAPES, where \\' ends a string",
        "write '' rather than \\' for a quote inside a string: it means the same in every mode",
    ),
    READINGS[2]: (
        ('\\"',),
        'ANSI_QUOTES, where "..." is a name and \\" ends it',
        'write "" rather than \\" for a double quote inside a string, or quote the string with \'...\': '
        "it means the same in every mode",
    ),
}


def check_read_only(query: str) -> None:
    """Raise QueryRefused unless `query` is one read-only SELECT (or WITH ... SELECT) statement."""
    # The placeholder becomes a number, as render_query does; newlines it spans keep the line numbers.
    sql = LAST_SYNC_TIME.sub(lambda match: "1" + "\n" * match.group().count("\n"), query)
    _check(split_tokens(sql, backslash_escapes=True))
    # Where quotes end depends on the server's sql_mode: refuse what is unsafe under any reading.
    for (backslash_escapes, ansi_quotes), (differs_on, mode, advice) in _OTHER_READINGS.items():
        if not any(text in sql for text in differs_on):
            continue  # the tokens are the usual ones, already checked
        try:
            _check(split_tokens(sql, backslash_escapes=backslash_escapes, ansi_quotes=ansi_quotes))
        except QueryRefused as refused:
            detail = str(refused).removeprefix(f"{PREFIX}: ")
            where = f"on a server whose sql_mode includes {mode}"
            raise QueryRefused(f"{PREFIX} {where}: {detail} ({advice})") from None


def _check(tokens: list[Token]) -> None:
    for i, token in enumerate(tokens[:-1]):
        if token.text == ";" and token.kind == "punct":
            second = tokens[i + 1]
            refuse(
                f"a second statement ({_name(tokens, i + 1)}) at line {second.line}, "
                f"after the semicolon on line {token.line}",
                None,
                _ONE_STATEMENT,
            )
    body = tokens[:-1] if tokens and tokens[-1].text == ";" and tokens[-1].kind == "punct" else tokens
    if not body:
        raise QueryRefused(f"{PREFIX}: the query is empty (or only comments); write one SELECT")
    for i in range(len(body)):
        _check_word(body, i)
    _check_start(body, 0)


def _check_word(tokens: list[Token], i: int) -> None:
    """Refuse the keywords that make a SELECT write, lock, or stop being a SELECT, wherever they are,
    and calls of the lock functions."""
    function = tokens[i].name
    if function in _LOCK_FUNCTIONS and i + 1 < len(tokens) and _is_punct(tokens[i + 1], "("):
        refuse(f"{function}()", tokens[i].line, _LOCK_FUNCTION)
    word = tokens[i].keyword
    if not word or _is_name(tokens, i):
        return
    line = tokens[i].line
    after = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ""
    if word == "INTO":
        target = after if after in ("OUTFILE", "DUMPFILE") else "@variable" if after == "@" else ""
        refuse(f"INTO {target}".strip(), line, _INTO)
    if word == "FOR" and after in ("UPDATE", "SHARE"):
        refuse(f"FOR {after}", line, _LOCKING_READ)
    if word == "LOCK" and after == "IN":
        refuse("LOCK IN SHARE MODE", line, _LOCKING_READ)
    if word in _STATEMENT_WORDS and not (word in _ALSO_FUNCTIONS and after == "("):
        refuse(_name(tokens, i), line, _ONLY_SELECT)


def _is_punct(token: Token, text: str) -> bool:
    return token.kind == "punct" and token.text == text


def _is_name(tokens: list[Token], i: int) -> bool:
    """`t.update` and `@into` are names: the server reads a word glued after `name.` or `@` as one.
    So is `"t".update`: under ANSI_QUOTES "t" is a name, and otherwise the server rejects it."""
    if i == 0 or not tokens[i].glued:
        return False
    before = tokens[i - 1]
    if before.text == "@":
        return True
    if before.text != "." or not before.glued or i < 2:
        return False
    qualifier = tokens[i - 2]
    return qualifier.kind in ("word", "ident") or qualifier.text.startswith('"')


def _check_start(tokens: list[Token], i: int) -> None:
    """The statement must be SELECT, (SELECT ...) or WITH ... SELECT."""
    while i < len(tokens) and tokens[i].text == "(":
        i += 1
    if i == len(tokens):
        return  # only parentheses: a syntax error the server reports
    word = tokens[i].keyword
    if word == "SELECT":
        return
    if word == "WITH":
        main = _after_with(tokens, i + 1)
        if main is not None and main < len(tokens):
            _check_start(tokens, main)
        return
    refuse(_name(tokens, i), tokens[i].line, _ONLY_SELECT)


def _after_with(tokens: list[Token], i: int) -> int | None:
    """The index of the statement after `WITH [RECURSIVE] name [(columns)] AS (...) [CYCLE ... RESTRICT], ...`
    (None when the query ends first: the server rejects it)."""
    if i < len(tokens) and tokens[i].keyword == "RECURSIVE":
        i += 1
    while True:
        if i >= len(tokens):
            return None
        if tokens[i].kind not in ("word", "ident"):
            _refuse_in_with(tokens, i, "a name")
        i += 1
        if i < len(tokens) and tokens[i].text == "(":
            i = _after_group(tokens, i)
        if i >= len(tokens):
            return None
        if tokens[i].keyword != "AS":
            _refuse_in_with(tokens, i, "AS")
        i += 1
        if i >= len(tokens):
            return None
        if tokens[i].text != "(":
            _refuse_in_with(tokens, i, "( after AS")
        i = _after_group(tokens, i)
        if i < len(tokens) and tokens[i].keyword == "CYCLE":  # MariaDB: CYCLE columns RESTRICT
            while i < len(tokens) and tokens[i].keyword != "RESTRICT":
                i += 1
            i += 1
        if i < len(tokens) and tokens[i].text == ",":
            i += 1
            continue
        return i


def _after_group(tokens: list[Token], i: int) -> int:
    """The index after the parenthesis closing the one at `i` (len(tokens) if it is never closed)."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind == "punct" and tokens[j].text == "(":
            depth += 1
        elif tokens[j].kind == "punct" and tokens[j].text == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(tokens)


def _refuse_in_with(tokens: list[Token], i: int, expected: str) -> NoReturn:
    refuse(
        f"{_name(tokens, i)} where the WITH clause needs {expected}",
        tokens[i].line,
        "write WITH name AS (SELECT ...) SELECT ...",
    )


def _name(tokens: list[Token], i: int) -> str:
    """How a message names the token at `i`: `TRUNCATE TABLE`, `DELETE FROM`, `';'`."""
    token = tokens[i]
    if not token.keyword:
        text = token.text if len(token.text) <= 30 else token.text[:27] + "..."
        return repr(text)
    if i + 1 < len(tokens) and tokens[i + 1].keyword in _SECOND_WORDS:
        return f"{token.keyword} {tokens[i + 1].keyword}"
    return token.keyword
