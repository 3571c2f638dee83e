"""The statement guard: refuse anything but one read-only SELECT, with no false alarms on real queries.

The accepted queries also run on a real MariaDB inside a READ ONLY transaction, which shows the guard
refuses nothing the server would run as a read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any, NamedTuple

import pymysql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reverse_etl_assets.sql.lexer import has_top_level_limit, statement_body
from reverse_etl_assets.sql.placeholders import render_query
from reverse_etl_assets.sql.statement_guard import QueryRefused, check_read_only

MYSQL_HOST = os.environ.get("REVERSE_ETL_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("REVERSE_ETL_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("REVERSE_ETL_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("REVERSE_ETL_TEST_MYSQL_PASSWORD", "")

# (query, what the message must name, the line it must give)
REFUSED = [
    ("SELECT 1; SELECT 2", "a second statement (SELECT)", 1),
    ("SELECT id FROM users;\nDROP TABLE users", "a second statement (DROP TABLE)", 2),
    ("SELECT id FROM users;\n\n-- clean up afterwards\nDELETE FROM users;", "(DELETE FROM)", 4),
    ("SELECT 1 FROM dual;;", "a second statement (';')", 1),
    ("INSERT INTO users (id) VALUES (1)", "INSERT INTO", 1),
    ("UPDATE users SET plan = 'pro' WHERE id = 1", "UPDATE", 1),
    ("\n\n  DELETE FROM users WHERE id = 1", "DELETE FROM", 3),
    ("REPLACE INTO users (id, email) VALUES (1, 'a@example.com')", "REPLACE INTO", 1),
    ("DROP TABLE users", "DROP TABLE", 1),
    ("CREATE TABLE users_copy AS SELECT * FROM users", "CREATE TABLE", 1),
    ("ALTER TABLE users ADD COLUMN score INT", "ALTER TABLE", 1),
    ("TRUNCATE TABLE users", "TRUNCATE TABLE", 1),
    ("LOAD DATA INFILE '/tmp/users.csv' INTO TABLE users", "LOAD DATA", 1),
    ("LOAD XML LOCAL INFILE 'users.xml' INTO TABLE users", "LOAD XML", 1),
    ("CALL refresh_users()", "CALL", 1),
    ("DO SLEEP(1)", "DO", 1),
    ("SET @since = {{last_sync_time}}", "SET", 1),
    ("HANDLER users OPEN", "HANDLER", 1),
    ("LOCK TABLES users READ", "LOCK TABLES", 1),
    ("UNLOCK TABLES", "UNLOCK TABLES", 1),
    ("GRANT SELECT ON *.* TO 'reader'@'%'", "GRANT", 1),
    ("REVOKE ALL PRIVILEGES ON *.* FROM 'reader'@'%'", "REVOKE", 1),
    ("RENAME TABLE users TO old_users", "RENAME TABLE", 1),
    ("SHOW TABLES", "SHOW", 1),
    ("TABLE users", "TABLE", 1),  # MySQL 8 shorthand: read-only, but write SELECT * FROM users
    (
        "WITH stale AS (\n  SELECT id FROM users WHERE is_deleted = 1\n)\n"
        "DELETE FROM users WHERE id IN (SELECT id FROM stale)",
        "DELETE FROM",
        4,
    ),
    ("WITH pro AS (SELECT 1 AS id)\nUPDATE users JOIN pro USING (id) SET plan = 'pro'", "UPDATE", 2),
    ("WITH src AS (SELECT 9 AS id)\nINSERT INTO users (id) SELECT id FROM src", "INSERT INTO", 2),
    ("SELECT *\nFROM users\nINTO OUTFILE '/tmp/users.csv'", "INTO OUTFILE", 3),
    ("SELECT email FROM users LIMIT 1 INTO DUMPFILE '/tmp/email'", "INTO DUMPFILE", 1),
    ("SELECT COUNT(*) INTO @n FROM users", "INTO @variable", 1),
    ("SELECT id FROM users\nWHERE plan = 'pro'\nFOR UPDATE", "FOR UPDATE", 3),
    ("SELECT id FROM users FOR UPDATE NOWAIT", "FOR UPDATE", 1),
    ("SELECT id FROM users\nFOR UPDATE SKIP LOCKED", "FOR UPDATE", 2),
    ("SELECT id FROM users FOR SHARE", "FOR SHARE", 1),
    ("SELECT id FROM users\n  LOCK IN SHARE MODE", "LOCK IN SHARE MODE", 2),
    ("SELECT GET_LOCK('sync', 10) AS got", "GET_LOCK()", 1),
    ("SELECT id,\n  RELEASE_LOCK('sync')\nFROM users", "RELEASE_LOCK()", 2),
    ("SELECT RELEASE_ALL_LOCKS()", "RELEASE_ALL_LOCKS()", 1),
    # However the name is written, MariaDB calls the function (each one takes the lock there: see
    # LOCK_SPELLINGS below).
    ("SELECT `GET_LOCK`('sync', 10) AS got", "GET_LOCK()", 1),
    ("SELECT id,\n  `get_lock` /* wait */ ('sync', 10)\nFROM users", "GET_LOCK()", 2),
    ("SELECT \"GET_LOCK\"('sync', 10)", "GET_LOCK()", 1),  # a name under ANSI_QUOTES
    ("SELECT mariadb_schema.GET_LOCK('sync', 10)", "GET_LOCK()", 1),  # MariaDB's qualified built-in
    ("SELECT `oracle_schema` .\n`Release_Lock` -- c\n('sync')", "RELEASE_LOCK()", 2),
    ("SELECT {fn `get_lock`('sync', 10)}", "GET_LOCK()", 1),  # ODBC escape
    ("SELECT `release_all_locks`\n#\n()", "RELEASE_ALL_LOCKS()", 1),
    ("SELECT GET_LOCK\n/* a comment */\n('sync', 10)", "GET_LOCK()", 1),
    # Refused to be safe, though MariaDB would look for a stored function of that name.
    ("SELECT app.get_lock('sync', 10)", "GET_LOCK()", 1),
    ("SELECT `SERVICE_GET_WRITE_LOCKS`('ns', 'sync', 10)", "SERVICE_GET_WRITE_LOCKS()", 1),  # MySQL
    # Under ANSI_QUOTES "\" is a whole name, so the strings after it start elsewhere and GET_LOCK is
    # code; both other readings see it inside a string. MariaDB takes the lock (ANSI_SPLIT below).
    (
        "SELECT 1 AS \"\\\", 'x\\', ', GET_LOCK(CONCAT(4321), 0), '\" AS y' -- '\n",
        'sql_mode includes ANSI_QUOTES, where "..." is a name and \\" ends it: GET_LOCK()',
        1,
    ),
    ("SELECT id /*! , 1 INTO @x */ FROM users", "executable comment /*!", 1),
    ("SELECT id FROM users\n/*!50700 FOR UPDATE */", "executable comment /*!", 2),
    ("SELECT /*M!100100 id, */ email FROM users", "executable comment /*M!", 1),
    ("SELECT /*+ MAX_EXECUTION_TIME(100) */ id\nFROM users INTO @x", "INTO @variable", 2),  # a hint is code
    ("SELECT 1.5INTO @x", "INTO @variable", 1),  # the server reads 1.5 then INTO
    ("SELECT id FROM users --1; DROP TABLE users", "a second statement (DROP TABLE)", 1),  # --1 is minus -1
    # With NO_BACKSLASH_ESCAPES, \' ends the first string and the semicolons are outside any string.
    ("SELECT 'it\\'s', '; DROP TABLE users; -- '", "a second statement (DROP TABLE)", 1),
    ("SELECT id FROM users WHERE name = 'O''Brien", "string starting with ' at line 1 is never closed", 1),
    ("SELECT id FROM users\n/* unfinished", "comment starting at line 2 is never closed", 2),
    ("-- nothing to see\n", "the query is empty", None),
]

ON_FIXTURE = [
    # A Customer.io identify sync, as a user writes it.
    """
    SELECT
      u.id                                      AS userId,
      u.email                                   AS `traits.email`,
      CONCAT(u.first_name, ' ', u.last_name)    AS `traits.name`,
      u.plan                                    AS `traits.plan`,
      UNIX_TIMESTAMP(u.created_at)              AS `traits.created_at`
    FROM users u
    WHERE u.updated_at >= FROM_UNIXTIME({{last_sync_time}})
      AND u.is_deleted = 0
    ORDER BY u.updated_at
    """,
    # A Customer.io track sync with context fields.
    """
    SELECT
      e.user_id                                             AS userId,
      e.name                                                AS event,
      e.context_ip                                          AS `context.ip`,
      e.user_agent                                          AS `context.userAgent`,
      JSON_UNQUOTE(JSON_EXTRACT(e.properties, '$.plan'))    AS `properties.plan`,
      e.created_at                                          AS timestamp
    FROM events e
    WHERE e.created_at >= FROM_UNIXTIME({{ last_sync_time }})  -- drop this later
    ORDER BY e.created_at;
    """,
    """
    # update: only people who changed
    SELECT id AS userId, email AS `traits.email` /* we DELETE nothing; we only read */
    FROM users
    WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}}) - INTERVAL 1 DAY
    """,
    "SELECT id, REPLACE(email, 'a', 'b') AS email, INSERT(first_name, 1, 2, 'x') AS n, "
    "TRUNCATE(price, 2) AS price FROM users",
    "SELECT LEFT(email, 3) AS prefix, IF(deleted, 'yes', 'no') AS gone, "
    "DATE_FORMAT(created_at, '%Y') AS year FROM users",
    "SELECT id, updated_at, deleted, is_deleted, create_time, last_update FROM users WHERE deleted = 0",
    "SELECT CAST(email AS CHAR CHARACTER SET utf8mb4) AS email, CONVERT(first_name USING utf8mb4) AS name "
    "FROM users",
    """
    SELECT u.id AS userId, jt.tag AS `traits.tag`
    FROM users u,
         JSON_TABLE(u.properties, '$.tags[*]' COLUMNS (tag VARCHAR(50) PATH '$')) AS jt
    """,
    """
    SELECT id, country,
           ROW_NUMBER() OVER (PARTITION BY country ORDER BY created_at DESC) AS rn,
           SUM(price) OVER (PARTITION BY country) AS country_total
    FROM users
    """,
    "SELECT id, email FROM users WHERE plan = 'pro'\n"
    "UNION ALL SELECT id, email FROM users WHERE plan = 'free'",
    """
    SELECT u.id AS userId
    FROM users u
    WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)
      AND u.id IN (SELECT user_id FROM events WHERE name = 'Signed Up')
    """,
    """
    WITH RECURSIVE chain (id, manager_id, depth) AS (
      SELECT id, manager_id, 0 FROM users WHERE manager_id IS NULL
      UNION ALL
      SELECT u.id, u.manager_id, c.depth + 1 FROM users u JOIN chain c ON u.manager_id = c.id
    )
    SELECT id AS userId, depth AS `traits.org_depth` FROM chain
    """,
    """
    WITH recent AS (
      SELECT user_id, MAX(created_at) AS last_order_at
      FROM orders
      WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})
      GROUP BY user_id
    ), totals (user_id, lifetime_value) AS (
      SELECT user_id, SUM(total) FROM orders GROUP BY user_id
    )
    SELECT r.user_id AS userId, r.last_order_at AS `traits.last_order_at`, t.lifetime_value AS `traits.ltv`
    FROM recent r JOIN totals t USING (user_id)
    """,
    """
    SELECT id,
           CASE WHEN plan = 'pro' THEN 'paid'
                WHEN plan IS NULL THEN 'unknown'
                ELSE 'free'
           END AS tier
    FROM users
    """,
    "SELECT id FROM users ORDER BY id LIMIT 10 OFFSET 5",
    "SELECT country, COUNT(*) AS people FROM users GROUP BY country WITH ROLLUP",
    "SELECT 1 AS one, NOW() AS now FROM dual",
    "SELECT SQL_NO_CACHE STRAIGHT_JOIN u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id",
    """SELECT id, 'DELETE ME' AS note, "into" AS word, 'LOCK TABLES users WRITE' AS other FROM users""",
    "SELECT e.`update` AS `update`, e.`delete`, e.update AS plain FROM events e",
    "SELECT id -- pick the id; and nothing else\nFROM users",
    "SELECT CONCAT(first_name, '; ', last_name) AS name, 'a;b' AS s FROM users",
    "(SELECT id FROM users WHERE plan = 'pro') UNION (SELECT id FROM users WHERE plan = 'free') ORDER BY id",
    "SELECT id FROM users;  -- that's all\n",
    "SELECT /*+ MAX_EXECUTION_TIME(5000) */ id FROM users",
    'SELECT "say ""hi""" AS greeting, '
    r"'it''s' AS s, 'C:\\temp\\' AS path, 'tab\there' AS t FROM dual",
    "SELECT _utf8mb4'x' COLLATE utf8mb4_bin AS x, X'4142' AS hex, N'abc' AS n, @@time_zone AS tz",
    "SELECT first_name AS prénom, 2--1 AS three FROM users",
    """
    SELECT o.id AS groupId, o.user_id AS userId, o.status AS `traits.status`,
           o.total AS `traits.total`
    FROM orders o
    WHERE o.updated_at >= FROM_UNIXTIME({{last_sync_time}}) AND o.status <> 'deleted'
    """,
    """
    WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)
    CYCLE i RESTRICT
    SELECT i FROM n
    """,
    "SELECT u.id FROM users u WHERE u.email LIKE '%\\_%' AND u.last_update > {{last_sync_time}}",
    # Look-alikes of the lock functions: not calls (no parenthesis), or functions that only look.
    "SELECT `get_lock`, e.`update`, 1 AS `GET_LOCK`, 'GET_LOCK(1, 2)' AS s FROM events e",
    "SELECT \"release_lock\" AS s, IS_FREE_LOCK('sync') AS free, `is_used_lock`('sync') AS used FROM dual",
]

# Accepted, but not run on MariaDB: MySQL-only syntax.
MYSQL_ONLY = [
    "SELECT id, properties->>'$.plan' AS `traits.plan` FROM users",
    "(WITH c AS (SELECT 1 AS a) SELECT a FROM c)",
]

ACCEPTED = ON_FIXTURE + MYSQL_ONLY

FIXTURE = [
    """CREATE TABLE users (
         id INT PRIMARY KEY, email VARCHAR(100), first_name VARCHAR(50), last_name VARCHAR(50),
         plan VARCHAR(20), country CHAR(2), price DECIMAL(10, 3), deleted TINYINT, is_deleted TINYINT,
         manager_id INT, properties JSON, create_time DATETIME, created_at DATETIME, updated_at DATETIME,
         last_update DATETIME)""",
    """CREATE TABLE events (
         id INT PRIMARY KEY, user_id INT, name VARCHAR(50), context_ip VARCHAR(45), user_agent VARCHAR(200),
         properties JSON, `update` VARCHAR(20), `delete` VARCHAR(20), created_at DATETIME,
         get_lock INT)""",
    """CREATE TABLE orders (
         id INT PRIMARY KEY, user_id INT, total DECIMAL(10, 2), status VARCHAR(20), created_at DATETIME,
         updated_at DATETIME)""",
    """INSERT INTO users VALUES
         (1, 'ada@example.com', 'Ada', 'L', 'pro', 'GB', 9.999, 0, 0, NULL, '{"tags": ["a", "b"]}',
          NOW(), NOW(), NOW(), NOW()),
         (2, 'bob_b@example.com', 'Bob', 'B', 'free', 'US', 1.5, 0, 0, 1, '{"tags": []}',
          NOW(), NOW(), NOW(), NOW())""",
    """INSERT INTO events VALUES
         (1, 1, 'Signed Up', '10.0.0.1', 'curl', '{"plan": "pro"}', 'u', 'd', NOW(), 7)""",
    "INSERT INTO orders VALUES (1, 1, 12.50, 'paid', NOW(), NOW())",
]


@pytest.mark.parametrize(("query", "construct", "line"), REFUSED)
def test_refused(query, construct, line):
    with pytest.raises(QueryRefused) as refused:
        check_read_only(query)
    message = str(refused.value)
    assert message.startswith("the query is not a single read statement"), message
    assert construct in message, message
    if line is not None:
        assert f"at line {line}" in message, message


@pytest.mark.parametrize("query", ACCEPTED)
def test_accepted(query):
    check_read_only(query)


def test_there_are_enough_cases():
    assert len(REFUSED) >= 25
    assert len(ACCEPTED) >= 25
    assert len(ON_FIXTURE) >= 10


def test_refusal_is_a_value_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="remove the INTO clause"):
        check_read_only("SELECT 1 INTO OUTFILE '/tmp/x'")
    with pytest.raises(ValueError, match="it is code, not a comment"):
        check_read_only("SELECT /*! 1 */")
    with pytest.raises(ValueError, match="write '' rather than"):
        check_read_only("SELECT 'it\\'s', '; DROP TABLE users; -- '")


def test_the_placeholder_counts_as_a_number_and_keeps_line_numbers():
    check_read_only("SELECT {{last_sync_time}}")
    check_read_only("SELECT id FROM users WHERE updated_at >= {{  last_sync_time  }} ;")
    with pytest.raises(QueryRefused, match="FOR UPDATE at line 4"):
        check_read_only("SELECT id FROM users\nWHERE updated_at >= {{\nlast_sync_time\n}} FOR UPDATE")


def test_words_after_a_dot_or_an_at_sign_are_names():
    """The server reads `t.into` and `@into` as names, but `t. into` as the keyword."""
    check_read_only("SELECT t.into, t.lock, @into FROM t")
    with pytest.raises(QueryRefused, match="INTO at line 1"):
        check_read_only("SELECT t. into FROM t")


def test_mariadb_runs_every_accepted_query_as_a_read():
    """The guard refuses nothing the server would run in a READ ONLY transaction."""
    name = f"retl_guard_{uuid.uuid4().hex[:12]}"
    connection = pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password=MYSQL_PASSWORD,
        database="test",
        charset="utf8mb4",
        autocommit=True,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            try:
                cursor.execute(f"USE `{name}`")
                for statement in FIXTURE:
                    cursor.execute(statement)
                failures = []
                for query in ON_FIXTURE:
                    check_read_only(query)
                    cursor.execute("START TRANSACTION READ ONLY")
                    try:
                        cursor.execute(render_query(query, 1_700_000_000))
                        cursor.fetchall()
                    except pymysql.MySQLError as error:
                        failures.append((query, error))
                    finally:
                        cursor.execute("ROLLBACK")
                assert failures == []

                # And the reason for the guard: the server runs these in a READ ONLY transaction too.
                for query in ["SELECT GET_LOCK('retl_guard', 0)", "SELECT COUNT(*) INTO @n FROM users"]:
                    with pytest.raises(QueryRefused):
                        check_read_only(query)
                    cursor.execute("START TRANSACTION READ ONLY")
                    cursor.execute(query)
                    cursor.execute("ROLLBACK")
                cursor.execute("SELECT RELEASE_ALL_LOCKS()")
            finally:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("query", "limited"),
    [
        ("SELECT id FROM users", False),
        ("SELECT id FROM users ORDER BY id LIMIT 10", True),
        ("SELECT id FROM users LIMIT 10;", True),
        ("select id from users limit 5 offset 10", True),
        ("SELECT id FROM (SELECT id FROM users LIMIT 10) AS recent", False),
        ("WITH recent AS (SELECT id FROM users LIMIT 10) SELECT id FROM recent", False),
        ("SELECT id FROM users WHERE id IN (SELECT id FROM vip) LIMIT 3", True),
        ("SELECT 'LIMIT 3' AS note, `limit` FROM users -- LIMIT 3", False),
        ("SELECT id FROM users /* LIMIT 3 */", False),
        ("SELECT 'it\\'s' AS a, id FROM users LIMIT 2", True),
    ],
)
def test_a_top_level_limit_is_found_and_nothing_else(query, limited):
    """driver connectorx describes a query by running it with sql_select_limit = 0, which its own
    LIMIT would override: such queries are described another way."""
    assert has_top_level_limit(query) is limited


# --- The server's reading of every spelling, and a generated corpus of them -----------------------
#
# Keywords (FOR UPDATE, INTO, DELETE...) are keywords only unquoted: `FOR` UPDATE or FOR "UPDATE" is
# a syntax error on MariaDB, so their spellings vary in case, spaces and comments. A function's name
# may also be quoted (`GET_LOCK`, and "GET_LOCK" under ANSI_QUOTES) or qualified with one of
# MariaDB's schemas of built-ins: each such spelling calls the function. Each spelling below is
# checked on MariaDB: it does what the guard says (takes the lock, locks the row, sets the variable,
# runs a second statement, writes), and each look-alike runs and does none of it.

LOCK_NAME = f"retl_guard_{uuid.uuid4().hex[:8]}"  # the lock a spelling of GET_LOCK takes
HELD_NAME = f"retl_held_{uuid.uuid4().hex[:8]}"  # the lock the session holds, for RELEASE_LOCK to free
VARIABLE = "retl_guard_into"
TABLE = """CREATE TABLE t (
    id INT PRIMARY KEY, v INT, get_lock INT, release_lock INT, `update` INT, `for` INT, `into` INT,
    `lock` INT, `delete` INT, `select` INT) ENGINE=InnoDB"""
# (query, sql_mode) pairs that take the lock LOCK_NAME on MariaDB 10.11.
LOCK_SPELLINGS = [
    (f"SELECT GET_LOCK('{LOCK_NAME}', 0)", ""),
    (f"SELECT `GET_LOCK`('{LOCK_NAME}', 0)", ""),
    (f"SELECT `get_lock` /* c */ ('{LOCK_NAME}', 0)", ""),
    (f"SELECT get_lock -- c\n('{LOCK_NAME}', 0)", ""),
    (f"SELECT mariadb_schema.GET_LOCK('{LOCK_NAME}', 0)", ""),
    (f"SELECT `oracle_schema` . `Get_Lock`('{LOCK_NAME}', 0)", ""),
    (f"SELECT maxdb_schema./**/get_lock('{LOCK_NAME}', 0)", ""),
    (f"SELECT {{fn `get_lock`('{LOCK_NAME}', 0)}}", ""),
    (f"SELECT \"GET_LOCK\"('{LOCK_NAME}', 0)", "ANSI_QUOTES"),
    (f"SELECT \"get_lock\" /* c */ ('{LOCK_NAME}', 0)", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"),
    (f'SELECT "mariadb_schema"."GET_LOCK"(\'{LOCK_NAME}\', 0)', "ANSI"),
    (f"SELECT \"Get_Lock\"('{LOCK_NAME}', 0) FROM dual", "ORACLE"),
    # The query of REFUSED that only the ANSI_QUOTES reading of quotes refuses (0x...: the name
    # without quotes, which would change the readings).
    (
        f"SELECT 1 AS \"\\\", 'x\\', ', GET_LOCK(0x{LOCK_NAME.encode().hex()}, 0), '\" AS y' -- '\n",
        "ANSI_QUOTES",
    ),
]
# (query, sql_mode) pairs that look like calls but are not: MariaDB takes no lock.
NOT_CALLS = [
    (f"SELECT 'GET_LOCK'('{LOCK_NAME}', 0)", ""),  # a string: a syntax error
    (f"SELECT \"GET_LOCK\"('{LOCK_NAME}', 0)", ""),  # a string without ANSI_QUOTES: a syntax error
    (f"SELECT `GET_LOCK `('{LOCK_NAME}', 0)", ""),  # another name
    (f"SELECT `GÉT_LOCK`('{LOCK_NAME}', 0)", ""),  # another name: accents count
    (f"SELECT MARIADB_SCHEMA.GET_LOCK('{LOCK_NAME}', 0)", ""),  # schema names are case-sensitive here
    (f"SELECT test.GET_LOCK('{LOCK_NAME}', 0)", ""),  # a stored function, which does not exist
    (f"SELECT /*+ GET_LOCK('{LOCK_NAME}', 0) */ 1", ""),  # a comment on MariaDB, a hint on MySQL
    (f"SELECT IS_FREE_LOCK('{LOCK_NAME}'), `is_used_lock`('{LOCK_NAME}')", ""),  # they only look
]


class Spelling(NamedTuple):
    query: str
    construct: str  # what the message names
    line: int
    sql_mode: str  # one under which the server reads it as the construct
    effect: str | None  # what it does on MariaDB (see Server.effect), None: not run there


def connect(database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password=MYSQL_PASSWORD,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
    )


class Server:
    """Two sessions on a scratch database holding table t: one runs the query, the other watches."""

    def __init__(self, database: str) -> None:
        self.runner, self.watcher = connect(database), connect(database)

    def execute(self, sql: str, args: tuple[Any, ...] | None = None) -> list[Any]:
        with self.runner.cursor() as cursor:
            cursor.execute(sql, args)
            results = [cursor.fetchall()]
            while cursor.nextset():
                results.append(cursor.fetchall())
            return results

    def watch(self, sql: str, args: tuple[Any, ...] | None = None) -> Any:
        with self.watcher.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchone()[0] if cursor.description else None

    def effect(self, query: str, sql_mode: str) -> str:
        """What running `query` (as a sync sends it, in a READ ONLY transaction) did: "lock" (it holds
        the named lock LOCK_NAME), "unlock" (it let go of HELD_NAME, held before), "row lock",
        "variable" (it set @VARIABLE), "second statement", "read only" (the server refused it in a
        READ ONLY transaction, as a write or a locking read), "file" (it would write a file), or
        "nothing"; "error NNNN" when the server refused it otherwise (1064: a syntax error)."""
        me = self.execute("SELECT CONNECTION_ID()")[0][0][0]
        self.execute("SET SESSION sql_mode = %s", (sql_mode,))
        self.execute(f"SET @{VARIABLE} = NULL")
        self.execute("SELECT GET_LOCK(%s, 0)", (HELD_NAME,))
        self.execute("START TRANSACTION READ ONLY")
        try:
            results = self.execute(statement_body(query))
            error = None
        except pymysql.MySQLError as raised:
            results, error = [], raised.args[0]
        try:
            row_locked = False
            self.watch("SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT")
        except pymysql.MySQLError as raised:
            row_locked = raised.args[0] in (1205, 3572)  # lock wait timeout, or NOWAIT's own
        finally:
            self.watch("ROLLBACK")
        self.execute("ROLLBACK")
        self.execute("SET SESSION sql_mode = DEFAULT")
        took = self.watch("SELECT IS_USED_LOCK(%s)", (LOCK_NAME,)) == me
        let_go = self.watch("SELECT IS_USED_LOCK(%s)", (HELD_NAME,)) is None
        variable = self.execute(f"SELECT @{VARIABLE}")[0][0][0]
        self.execute("SELECT RELEASE_ALL_LOCKS()")
        if error == 1792:
            return "read only"
        if error in (1086, 1290, 1045):  # the file exists (/dev/null), secure_file_priv, no FILE privilege
            return "file"
        if error is not None:
            return f"error {error}"
        found = [
            name
            for name, happened in [
                ("lock", took),
                ("unlock", let_go),
                ("row lock", row_locked),
                ("variable", variable is not None),
                ("second statement", len(results) > 1),
            ]
            if happened
        ]
        return " and ".join(found) or "nothing"

    def close(self) -> None:
        self.runner.close()
        self.watcher.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    name = f"retl_guard_{uuid.uuid4().hex[:12]}"
    with closing(connect()) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    scratch = Server(name)
    try:
        scratch.execute(TABLE)
        scratch.execute("INSERT INTO t VALUES (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)")
        yield scratch
    finally:
        scratch.close()
        with closing(connect()) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def refusal(query: str) -> str:
    with pytest.raises(QueryRefused) as refused:
        check_read_only(query)
    return str(refused.value)


@pytest.mark.parametrize(("query", "sql_mode"), LOCK_SPELLINGS)
def test_every_spelling_of_a_lock_call_takes_the_lock_on_mariadb_and_is_refused(server, query, sql_mode):
    assert server.effect(query, sql_mode) == "lock"
    assert "GET_LOCK() at line 1" in refusal(query)


@pytest.mark.parametrize(("query", "sql_mode"), NOT_CALLS)
def test_what_only_looks_like_a_lock_call_takes_no_lock(server, query, sql_mode):
    assert server.effect(query, sql_mode) != "lock"


def test_keywords_in_quotes_are_names_on_mariadb(server):
    """Which is why the guard's keyword checks read unquoted words only."""
    for query, sql_mode in [
        ("SELECT id FROM t WHERE id = 1 `FOR` UPDATE", ""),
        ("SELECT id FROM t WHERE id = 1 FOR `UPDATE`", ""),
        ('SELECT id FROM t WHERE id = 1 FOR "UPDATE"', "ANSI_QUOTES"),
        ("SELECT id FROM t WHERE id = 1 `INTO` @x", ""),
        ("SELECT id FROM t WHERE id = 1 `LOCK` IN SHARE MODE", ""),
        ("`DELETE` FROM t", ""),
    ]:
        assert server.effect(query, sql_mode) == "error 1064", query  # a syntax error
    assert server.effect("SELECT 1 `INTO`, 2 AS `for`, t.update, t.into FROM t", "") == "nothing"


# Generated spellings. Case is random for keywords and functions (never for table t, whose name is
# case-sensitive on Linux), any whitespace or comment may stand between tokens, names take every
# quoting the server accepts, and the construct sits inside an otherwise valid SELECT.

_SPACES = [" ", "\t", "\n", "\r\n", "\x0b", "\x0c", "   "]
# Comments may hold the refused words themselves: in a comment they are not code.
_COMMENT_TEXT = ["x", "GET_LOCK('a', 0)", "FOR UPDATE", "INTO @x", "; DROP TABLE t", "`get_lock`(", '"x"(']
_SEPARATOR = st.lists(
    st.one_of(
        st.sampled_from(_SPACES),
        st.sampled_from(_COMMENT_TEXT).map(lambda text: f"/* {text} */"),
        st.sampled_from(_COMMENT_TEXT).map(lambda text: f"-- {text}\n"),
        st.sampled_from(_COMMENT_TEXT).map(lambda text: f"#{text}\n"),
    ),
    min_size=1,
    max_size=3,
).map("".join)
_MAYBE_SEPARATOR = st.one_of(st.just(""), _SEPARATOR)


@st.composite
def cased(draw: st.DrawFn, word: str) -> str:
    upper = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(word, upper, strict=True))


@st.composite
def spaced(draw: st.DrawFn, template: str) -> str:
    """The template's words with random separators between them; words in capitals in random case."""
    words = template.split(" ")
    parts = [draw(cased(word)) if word.isupper() else word for word in words]
    return "".join(part + (draw(_SEPARATOR) if i < len(parts) - 1 else "") for i, part in enumerate(parts))


def _line(text: str) -> int:
    return text.count("\n") + 1


@st.composite
def select_with(
    draw: st.DrawFn, place: str, construct: str, before_construct: str = "", decoys: bool = True
) -> tuple[str, int]:
    """A SELECT on t (with harmless DECOYS among its columns) with `construct` in its select list
    ("list"), WHERE ("where") or at its end ("end"); and the line where the text `before_construct`
    + what follows it starts."""
    decoys = draw(st.lists(st.sampled_from(DECOYS), max_size=2 if decoys else 0))
    head = draw(_MAYBE_SEPARATOR) + draw(cased("SELECT")) + draw(_SEPARATOR)
    columns = ", ".join(["id", *decoys])
    if place == "list":
        start = head + columns + "," + draw(_SEPARATOR)
        rest = draw(_SEPARATOR) + draw(spaced("AS got FROM t WHERE id = 1"))
    elif place == "where":
        start = head + columns + draw(_SEPARATOR) + draw(spaced("FROM t WHERE id = 1 AND")) + draw(_SEPARATOR)
        rest = draw(_SEPARATOR) + draw(spaced("IS NOT NULL"))
    else:
        start = head + columns + draw(_SEPARATOR) + draw(spaced("FROM t WHERE id = 1")) + draw(_SEPARATOR)
        rest = ""
    return start + construct + rest, _line(start + before_construct)


# Harmless in any sql_mode (no double quotes: under ANSI_QUOTES they would be names).
DECOYS = [
    f"'GET_LOCK(''{LOCK_NAME}'', 0) FOR UPDATE; DROP TABLE t' AS s",
    "`get_lock`",
    "get_lock",
    "t.get_lock",
    "t.`release_lock`",
    "t.update",
    "t.into",
    "t.`for`",
    "`into` AS `GET_LOCK`",
    "`lock` AS `FOR UPDATE`",
    f"IS_FREE_LOCK('{LOCK_NAME}')",
    f"`is_used_lock`('{LOCK_NAME}')",
    "@get_lock",
    "@into",
    "1 AS for_update",
]
_LOCK_CALLS = [  # (function, arguments, effect)
    ("GET_LOCK", f"('{LOCK_NAME}', 0)", "lock"),
    ("RELEASE_LOCK", f"('{HELD_NAME}')", "unlock"),
    ("RELEASE_ALL_LOCKS", "()", "unlock"),
    ("SERVICE_GET_WRITE_LOCKS", f"('ns', '{LOCK_NAME}', 0)", None),  # MySQL's locking service
]
_BUILT_IN_SCHEMAS = ["mariadb_schema", "oracle_schema", "maxdb_schema"]  # lower case: case-sensitive


@st.composite
def quoted_name(draw: st.DrawFn, name: str, quotes: str) -> tuple[str, bool]:
    """`name` in random case, bare, `quoted` or "quoted" (then only a name under ANSI_QUOTES)."""
    quote = draw(st.sampled_from(quotes))
    return f"{quote}{name}{quote}", quote == '"'


@st.composite
def lock_calls(draw: st.DrawFn, function: str, arguments: str, effect: str | None) -> Spelling:
    name, ansi = draw(quoted_name(draw(cased(function)), ["", "`", '"']))
    qualifier = ""
    if draw(st.booleans()):
        schema, ansi_schema = draw(quoted_name(draw(st.sampled_from(_BUILT_IN_SCHEMAS)), ["", "`", '"']))
        ansi = ansi or ansi_schema
        qualifier = schema + draw(_MAYBE_SEPARATOR) + "." + draw(_MAYBE_SEPARATOR)
    # {fn expression}: the ODBC escape, which the server runs as the expression
    before_name = draw(st.sampled_from(["", "{fn "])) + qualifier
    call = before_name + name + draw(_MAYBE_SEPARATOR) + arguments + ("}" if "{" in before_name else "")
    query, line = draw(select_with(draw(st.sampled_from(["list", "where"])), call, before_name))
    return Spelling(query, f"{function}()", line, "ANSI_QUOTES" if ansi else "", effect)


# MariaDB refuses FOR UPDATE in a READ ONLY transaction (outside one, it locks the row; MySQL 8 locks
# it in both); LOCK IN SHARE MODE locks the row even there.
_LOCKING_READS = [  # (template, what the message names, effect on MariaDB)
    ("FOR UPDATE", "FOR UPDATE", "read only"),
    ("FOR UPDATE NOWAIT", "FOR UPDATE", "read only"),
    ("FOR UPDATE SKIP LOCKED", "FOR UPDATE", "read only"),
    ("LOCK IN SHARE MODE", "LOCK IN SHARE MODE", "row lock"),
    ("FOR SHARE", "FOR SHARE", None),  # MySQL 8; not MariaDB 10.11
]
_INTOS = [
    (f"INTO @{VARIABLE}", "INTO @variable", "variable"),
    (f"INTO @`{VARIABLE}`", "INTO @variable", "variable"),
    (f"INTO @'{VARIABLE}'", "INTO @variable", "variable"),
    (f'INTO @"{VARIABLE}"', "INTO @variable", "variable"),
    ("INTO OUTFILE '/dev/null'", "INTO OUTFILE", "file"),
    ("INTO DUMPFILE '/dev/null'", "INTO DUMPFILE", "file"),
]
_WRITES = [  # (statement, what the message names, effect on MariaDB: None where it is not run)
    ("DELETE FROM t WHERE id = 0", "DELETE FROM", "read only"),
    ("UPDATE t SET v = v WHERE id = 0", "UPDATE", "read only"),
    ("INSERT INTO t (id) SELECT 100 FROM dual WHERE 1 = 0", "INSERT INTO", "read only"),
    ("REPLACE INTO t (id) SELECT 100 FROM dual WHERE 1 = 0", "REPLACE INTO", "read only"),
    ("CREATE TABLE t2 AS SELECT id FROM t", "CREATE TABLE", None),
    ("DROP TABLE t", "DROP TABLE", None),
    ("ALTER TABLE t ADD COLUMN w INT", "ALTER TABLE", None),
    ("TRUNCATE TABLE t", "TRUNCATE TABLE", None),
    ("RENAME TABLE t TO t3", "RENAME TABLE", None),
    ("LOAD DATA INFILE '/tmp/t.csv' INTO TABLE t", "LOAD DATA", None),
    ("CALL refresh()", "CALL", None),
    ("LOCK TABLES t READ", "LOCK TABLES", None),
    ("UNLOCK TABLES", "UNLOCK TABLES", None),
    ("GRANT SELECT ON t TO reader", "GRANT", None),
    ("DO SLEEP(0)", "DO", None),
    ("SET @x = 1", "SET", None),
    ("HANDLER t OPEN", "HANDLER", None),
]


@st.composite
def locking_reads(draw: st.DrawFn, template: str, construct: str, effect: str | None) -> Spelling:
    query, line = draw(select_with("end", draw(spaced(template))))
    return Spelling(query, construct, line, "", effect)


@st.composite
def intos(draw: st.DrawFn, template: str, construct: str, effect: str | None) -> Spelling:
    into, target = template.split(" ", 1)
    clause = draw(cased(into)) + draw(_SEPARATOR) + draw(spaced(target))
    if target.startswith("@") and draw(st.booleans()):  # SELECT id INTO @x FROM t ...
        head = draw(_MAYBE_SEPARATOR) + draw(cased("SELECT")) + draw(_SEPARATOR) + "id" + draw(_SEPARATOR)
        query = head + clause + draw(_SEPARATOR) + draw(spaced("FROM t WHERE id = 1"))
        return Spelling(query, construct, _line(head), "", effect)
    # One column for one variable; @"x" is a user variable in every sql_mode.
    query, line = draw(select_with("end", clause, decoys=not target.startswith("@")))
    return Spelling(query, construct, line, "", effect)


@st.composite
def second_statements(draw: st.DrawFn, statement: str, name: str) -> Spelling:
    first, _ = draw(select_with("end", ""))
    start = first + ";" + draw(_MAYBE_SEPARATOR)
    query = start + draw(spaced(statement)) + draw(st.sampled_from(["", ";", "; -- end\n"]))
    effect = "second statement" if statement == "SELECT 2" else None  # never run a write after a read
    return Spelling(query, f"a second statement ({name}) at line {_line(start)}", _line(start), "", effect)


@st.composite
def writes(draw: st.DrawFn, statement: str, name: str, effect: str | None) -> Spelling:
    lead = draw(_MAYBE_SEPARATOR)
    if name in ("DELETE FROM", "UPDATE", "INSERT INTO") and draw(st.booleans()):
        # MySQL 8 runs WITH ... DELETE/UPDATE (and INSERT ... WITH): not MariaDB 10.11.
        lead += draw(spaced("WITH c AS (SELECT 1 AS id)")) + draw(_SEPARATOR)
        effect = None
    return Spelling(lead + draw(spaced(statement)), name, _line(lead), "", effect)


# Each refused construct: the strategy that spells it, and what it does on MariaDB (None: not run
# there). Tests are parametrized by construct, so that each gets its share of examples.
CONSTRUCTS: dict[str, tuple[st.SearchStrategy[Spelling], str | None]] = {
    **{f"{name}()": (lock_calls(name, arguments, effect), effect) for name, arguments, effect in _LOCK_CALLS},
    **{
        template: (locking_reads(template, name, effect), effect) for template, name, effect in _LOCKING_READS
    },
    **{template: (intos(template, name, effect), effect) for template, name, effect in _INTOS},
    "; SELECT 2": (second_statements("SELECT 2", "SELECT"), "second statement"),
    **{f"; {statement}": (second_statements(statement, name), None) for statement, name, _ in _WRITES},
    **{statement: (writes(statement, name, effect), effect) for statement, name, effect in _WRITES},
}
RUN_ON_MARIADB = [construct for construct, (_, effect) in CONSTRUCTS.items() if effect]


@st.composite
def look_alikes(draw: st.DrawFn) -> str:
    """A read with the refused words where they are not code: in strings, comments and names."""
    columns = draw(st.lists(st.sampled_from([*DECOYS, *_DEFAULT_MODE_DECOYS]), min_size=1, max_size=4))
    query = (
        draw(_MAYBE_SEPARATOR)
        + draw(cased("SELECT"))
        + draw(_SEPARATOR)
        + ("," + draw(_MAYBE_SEPARATOR)).join(columns)
        + draw(_SEPARATOR)
        + draw(spaced("FROM t WHERE id = 1"))
    )
    tail = draw(st.sampled_from(_TAILS))
    return query + (draw(_SEPARATOR) + tail if tail else "")


_DEFAULT_MODE_DECOYS = [  # strings in double quotes (names under ANSI_QUOTES)
    '"GET_LOCK" AS g',
    '"FOR UPDATE; DROP TABLE t" AS f',
    '1 AS "get_lock"',
]
_TAILS = [
    "",
    ";",
    "; -- then DELETE FROM t",
    "/* FOR UPDATE */",
    "# INTO OUTFILE '/tmp/x'\n",
    "AND 'x' <> 'LOCK IN SHARE MODE'",
    f"AND 'GET_LOCK(''{LOCK_NAME}'', 0)' <> ''",
    "ORDER BY t.update LIMIT 1",
    "-- ; SELECT 2",
]


@pytest.mark.parametrize("construct", CONSTRUCTS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_generated_spellings_of_refused_constructs_are_refused_with_construct_and_line(construct, data):
    spelling = data.draw(CONSTRUCTS[construct][0])
    message = refusal(spelling.query)
    assert message.startswith("the query is not a single read statement"), message
    assert f"{spelling.construct} at line {spelling.line}" in message or (
        spelling.construct.startswith("a second statement") and spelling.construct in message
    ), (spelling, message)


@settings(max_examples=400, deadline=None)
@given(look_alikes())
def test_generated_look_alikes_are_accepted(query):
    check_read_only(query)


@pytest.mark.parametrize("construct", RUN_ON_MARIADB)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_mariadb_reads_each_generated_spelling_as_the_construct(server, construct, data):
    """The corpus documents what the server does: each spelling is the construct there. (Not run:
    MySQL-only syntax, and writes a READ ONLY transaction does not stop, such as DDL.)"""
    spelling = data.draw(CONSTRUCTS[construct][0])
    if spelling.effect is None:
        return  # this spelling is MySQL-only (WITH ... DELETE)
    assert server.effect(spelling.query, spelling.sql_mode) == spelling.effect, spelling


@settings(max_examples=60, deadline=None)
@given(look_alikes())
def test_mariadb_runs_each_generated_look_alike_as_a_plain_read(server, query):
    assert server.effect(query, "") == "nothing", query
