"""The statement guard: refuse anything but one read-only SELECT, with no false alarms on real queries.

The accepted queries also run on a real MariaDB inside a READ ONLY transaction, which shows the guard
refuses nothing the server would run as a read.
"""

from __future__ import annotations

import os
import uuid

import pymysql
import pytest

from reverse_etl_assets.sql.lexer import has_top_level_limit
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
         properties JSON, `update` VARCHAR(20), `delete` VARCHAR(20), created_at DATETIME)""",
    """CREATE TABLE orders (
         id INT PRIMARY KEY, user_id INT, total DECIMAL(10, 2), status VARCHAR(20), created_at DATETIME,
         updated_at DATETIME)""",
    """INSERT INTO users VALUES
         (1, 'ada@example.com', 'Ada', 'L', 'pro', 'GB', 9.999, 0, 0, NULL, '{"tags": ["a", "b"]}',
          NOW(), NOW(), NOW(), NOW()),
         (2, 'bob_b@example.com', 'Bob', 'B', 'free', 'US', 1.5, 0, 0, 1, '{"tags": []}',
          NOW(), NOW(), NOW(), NOW())""",
    """INSERT INTO events VALUES
         (1, 1, 'Signed Up', '10.0.0.1', 'curl', '{"plan": "pro"}', 'u', 'd', NOW())""",
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
