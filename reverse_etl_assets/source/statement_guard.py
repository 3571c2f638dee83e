"""Refuse a sync's SQL unless it is one read-only SELECT, before anything reaches the database.

The session is already a READ ONLY transaction, but that does not stop `SELECT ... INTO OUTFILE`,
`INTO @var` or named locks (GET_LOCK), nor every server's locking reads, and a mistake deserves a
message naming the culprit, sent before the database is touched. The check splits the query into
tokens the way the MySQL/MariaDB lexer does, so words inside comments, strings and quoted identifiers
never count as keywords.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import NamedTuple, NoReturn

from reverse_etl_assets.source.query import LAST_SYNC_TIME


class QueryRefused(ValueError):
    """The query is not a single read statement; the message says what was found and where."""


class _Unclosed(QueryRefused):
    """A string, quoted identifier or comment runs to the end of the query."""


class _Token(NamedTuple):
    kind: str  # "word" (keyword, name or number-like run), "number", "string", "ident" (`...`), "punct"
    text: str
    line: int
    glued: bool  # nothing (no space, no comment) between this token and the one before

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PREFIX = "the query is not a single read statement"
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
_EXECUTABLE_COMMENT = (
    "MySQL and MariaDB run the text inside /*! ... */ (and /*M! ... */) as SQL, so it is code, not a "
    "comment, and cannot be checked; write its contents as plain SQL, or use /* ... */ for a comment"
)
# Reserved words (in MySQL and MariaDB) that start a writing or administrative statement: unquoted,
# they cannot appear anywhere in a valid SELECT, except INSERT( and REPLACE( as string functions.
_STATEMENT_WORDS = _words(
    "ALTER CALL CREATE DELETE DROP GRANT INSERT KILL LOAD LOCK RENAME REPLACE REVOKE UNLOCK UPDATE"
)
_ALSO_FUNCTIONS = _words("INSERT REPLACE")
_LOCK_FUNCTIONS = _words(
    "GET_LOCK RELEASE_LOCK RELEASE_ALL_LOCKS SERVICE_GET_READ_LOCKS SERVICE_GET_WRITE_LOCKS "
    "SERVICE_RELEASE_LOCKS"
)
# Second words worth naming in a message: "TRUNCATE TABLE", "LOAD DATA", "DELETE FROM".
_SECOND_WORDS = _words(
    "DATA DATABASE DUMPFILE FROM FUNCTION INDEX INTO OUTFILE PROCEDURE SCHEMA TABLE TABLES TRIGGER USER "
    "VIEW XML"
)

_SPACE = " \t\n\r\v\f"  # the lexer's whitespace; anything from U+0080 up is an identifier character
_WORD = re.compile(r"[0-9A-Za-z_$\u0080-\U0010ffff]+")
# `1.5INTO` is the number 1.5 then INTO, while `1INTO` is one identifier: match numbers as the server does.
_NUMBER = re.compile(r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+")


def check_read_only(query: str) -> None:
    """Raise QueryRefused unless `query` is one read-only SELECT (or WITH ... SELECT) statement."""
    # The placeholder becomes a number, as render_query does; newlines it spans keep the line numbers.
    sql = LAST_SYNC_TIME.sub(lambda match: "1" + "\n" * match.group().count("\n"), query)
    _check(_tokens(sql, backslash_escapes=True))
    if "\\'" in sql or '\\"' in sql:
        # Where quotes end depends on the server's sql_mode: refuse what is unsafe under either reading.
        try:
            _check(_tokens(sql, backslash_escapes=False))
        except QueryRefused as refused:
            detail = str(refused).removeprefix(f"{_PREFIX}: ")
            raise QueryRefused(
                f"{_PREFIX} on a server whose sql_mode includes NO_BACKSLASH_ESCAPES, where \\' ends a "
                f"string: {detail} (write '' rather than \\' for a quote inside a string: it means the same "
                "in every mode)"
            ) from None


def has_top_level_limit(sql: str) -> bool:
    """Does the statement itself end in LIMIT (rather than only its subqueries)? Under either reading
    of backslashes, so that a doubt answers yes."""
    for backslash_escapes in (True, False):
        depth = 0
        try:
            tokens = _tokens(sql, backslash_escapes=backslash_escapes)
        except QueryRefused:
            return True
        for token in tokens:
            if token.kind == "punct":
                depth += {"(": 1, ")": -1}.get(token.text, 0)
            elif depth == 0 and token.keyword == "LIMIT":
                return True
    return False


def _tokens(sql: str, *, backslash_escapes: bool) -> list[_Token]:
    """Every token of `sql`. Something never closed is an error when backslashes escape (the usual
    mode); in the other reading the tokens stop there, as the server would reject the rest."""
    tokens: list[_Token] = []
    try:
        tokens.extend(_lex(sql, 0, len(sql), backslash_escapes, _line_finder(sql)))
    except _Unclosed:
        if backslash_escapes:
            raise
    return tokens


def _line_finder(sql: str) -> _LineFinder:
    return _LineFinder([i for i, ch in enumerate(sql) if ch == "\n"])


class _LineFinder(NamedTuple):
    newlines: list[int]

    def __call__(self, pos: int) -> int:
        return bisect.bisect_right(self.newlines, pos - 1) + 1


def _lex(sql: str, pos: int, end: int, backslash_escapes: bool, line_of: _LineFinder) -> Iterator[_Token]:
    """Yield the tokens of sql[pos:end], dropping whitespace and comments (but not optimizer hints)."""
    glued = False
    previous = ""
    while pos < end:
        ch = sql[pos]
        nxt = sql[pos + 1] if pos + 1 < end else ""
        start = pos
        if ch in _SPACE:
            pos += 1
            glued = False
            continue
        if ch == "#" or (ch == "-" and nxt == "-" and (pos + 2 >= end or _starts_dash_comment(sql[pos + 2]))):
            newline = sql.find("\n", pos, end)
            pos = end if newline < 0 else newline
            glued = False
            continue
        if ch == "/" and nxt == "*":
            if sql.startswith(("/*!", "/*M!"), pos):
                opener = "/*!" if sql[pos + 2] == "!" else "/*M!"
                _refuse(f"an executable comment {opener}", line_of(pos), _EXECUTABLE_COMMENT)
            close = sql.find("*/", pos + 2, end)
            if close < 0:
                raise _Unclosed(f"{_PREFIX}: the comment starting at line {line_of(pos)} is never closed")
            if sql.startswith("/*+", pos) and previous == "SELECT":
                # An optimizer hint is read by the server, not skipped: check it like the rest.
                yield from _lex(sql, pos + 3, close, backslash_escapes, line_of)
            pos = close + 2
            glued = False
            continue
        if ch in "'\"`":
            pos = _close_quote(sql, pos, end, backslash_escapes and ch != "`", line_of)
            kind = "ident" if ch == "`" else "string"
        elif (number := _NUMBER.match(sql, pos, end)) and not (ch == "." and glued and previous):
            pos = number.end()
            kind = "number"
        elif word := _WORD.match(sql, pos, end):
            pos = word.end()
            kind = "word"
        else:
            pos += 1
            kind = "punct"
        token = _Token(kind, sql[start:pos], line_of(start), glued)
        previous = token.keyword or (token.kind if token.kind == "ident" else "")
        glued = True
        yield token


def _starts_dash_comment(ch: str) -> bool:
    """`-- ` is a comment only when a space or control character follows: `1--1` is 1 minus -1."""
    return ch in _SPACE or ord(ch) < 32 or ord(ch) == 127


def _close_quote(sql: str, pos: int, end: int, backslash_escapes: bool, line_of: _LineFinder) -> int:
    """The position after the quoted text starting at `pos` (doubled quotes and, if on, \\x escapes)."""
    quote = sql[pos]
    i = pos + 1
    while i < end:
        ch = sql[i]
        if ch == "\\" and backslash_escapes:
            i += 2
        elif ch == quote:
            if i + 1 < end and sql[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    what = "quoted identifier" if quote == "`" else "string"
    raise _Unclosed(f"{_PREFIX}: the {what} starting with {quote} at line {line_of(pos)} is never closed")


def _check(tokens: list[_Token]) -> None:
    for i, token in enumerate(tokens[:-1]):
        if token.text == ";" and token.kind == "punct":
            second = tokens[i + 1]
            _refuse(
                f"a second statement ({_name(tokens, i + 1)}) at line {second.line}, "
                f"after the semicolon on line {token.line}",
                None,
                _ONE_STATEMENT,
            )
    body = tokens[:-1] if tokens and tokens[-1].text == ";" and tokens[-1].kind == "punct" else tokens
    if not body:
        raise QueryRefused(f"{_PREFIX}: the query is empty (or only comments); write one SELECT")
    for i in range(len(body)):
        _check_word(body, i)
    _check_start(body, 0)


def _check_word(tokens: list[_Token], i: int) -> None:
    """Refuse the keywords that make a SELECT write, lock, or stop being a SELECT, wherever they are."""
    word = tokens[i].keyword
    if not word or _is_name(tokens, i):
        return
    line = tokens[i].line
    after = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ""
    if word == "INTO":
        target = after if after in ("OUTFILE", "DUMPFILE") else "@variable" if after == "@" else ""
        _refuse(f"INTO {target}".strip(), line, _INTO)
    if word == "FOR" and after in ("UPDATE", "SHARE"):
        _refuse(f"FOR {after}", line, _LOCKING_READ)
    if word == "LOCK" and after == "IN":
        _refuse("LOCK IN SHARE MODE", line, _LOCKING_READ)
    if word in _LOCK_FUNCTIONS:
        _refuse(f"{word}()", line, _LOCK_FUNCTION)
    if word in _STATEMENT_WORDS and not (word in _ALSO_FUNCTIONS and after == "("):
        _refuse(_name(tokens, i), line, _ONLY_SELECT)


def _is_name(tokens: list[_Token], i: int) -> bool:
    """`t.update` and `@into` are names: the server reads a word glued after `name.` or `@` as one."""
    if i == 0 or not tokens[i].glued:
        return False
    before = tokens[i - 1]
    if before.text == "@":
        return True
    return before.text == "." and before.glued and i >= 2 and tokens[i - 2].kind in ("word", "ident")


def _check_start(tokens: list[_Token], i: int) -> None:
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
    _refuse(_name(tokens, i), tokens[i].line, _ONLY_SELECT)


def _after_with(tokens: list[_Token], i: int) -> int | None:
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


def _after_group(tokens: list[_Token], i: int) -> int:
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


def _refuse_in_with(tokens: list[_Token], i: int, expected: str) -> NoReturn:
    _refuse(
        f"{_name(tokens, i)} where the WITH clause needs {expected}",
        tokens[i].line,
        "write WITH name AS (SELECT ...) SELECT ...",
    )


def _name(tokens: list[_Token], i: int) -> str:
    """How a message names the token at `i`: `TRUNCATE TABLE`, `DELETE FROM`, `';'`."""
    token = tokens[i]
    if not token.keyword:
        text = token.text if len(token.text) <= 30 else token.text[:27] + "..."
        return repr(text)
    if i + 1 < len(tokens) and tokens[i + 1].keyword in _SECOND_WORDS:
        return f"{token.keyword} {tokens[i + 1].keyword}"
    return token.keyword


def _refuse(what: str, line: int | None, advice: str) -> NoReturn:
    where = "" if line is None else f" at line {line}"
    raise QueryRefused(f"{_PREFIX}: {what}{where}; {advice}")
