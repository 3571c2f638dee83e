"""State beyond the cursor, in one SQL database that every worker sees: what was delivered (the
lookback's ledger), the rate limit's window and pause, rejected rows, and run heartbeats."""
