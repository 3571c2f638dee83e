"""MySQL/MariaDB SQL text split into tokens the way the server's lexer does, so that words inside
comments, strings and quoted identifiers never count as keywords. The statement guard reads the
tokens; the wrappers that run a query inside another (counts, probes, descriptions) find where the
statement ends with them.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple, NoReturn


class QueryRefused(ValueError):
    """The query is not a single read statement; the message says what was found and where."""


class Unclosed(QueryRefused):
    """A string, quoted identifier or comment runs to the end of the query."""


class Token(NamedTuple):
    # "word" (keyword, name or number-like run), "number", "string", "ident" (`...`, and "..." under
    # ANSI_QUOTES), "punct"
    kind: str
    text: str
    line: int
    glued: bool  # nothing (no space, no comment) between this token and the one before
    start: int  # where it starts in the SQL text

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """The name this token spells where the server may read it as one, folded for comparison: a
        word, a `quoted` name, or a "double-quoted" one (a name under ANSI_QUOTES, a string
        otherwise), without its quotes, in capitals and without accents; '' for anything else.

        MariaDB and MySQL find built-in functions whatever the case; MySQL finds loadable functions
        (the locking service's) under utf8mb3_general_ci, which also ignores accents: folding them
        away can only make a name match more often.
        """
        if self.kind == "word":
            unquoted = self.text
        elif len(self.text) >= 2 and self.text[0] in '`"' and self.text[-1] == self.text[0]:
            unquoted = self.text[1:-1].replace(self.text[0] * 2, self.text[0])
        else:
            return ""
        decomposed = unicodedata.normalize("NFKD", unquoted)
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


PREFIX = "the query is not a single read statement"
_EXECUTABLE_COMMENT = (
    "MySQL and MariaDB run the text inside /*! ... */ (and /*M! ... */) as SQL, so it is code, not a "
    "comment, and cannot be checked; write its contents as plain SQL, or use /* ... */ for a comment"
)
_SPACE = " \t\n\r\v\f"  # the lexer's whitespace; anything from U+0080 up is an identifier character
_WORD = re.compile(r"[0-9A-Za-z_$\u0080-\U0010ffff]+")
# `1.5INTO` is the number 1.5 then INTO, while `1INTO` is one identifier: match numbers as the server does.
_NUMBER = re.compile(r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+")


# Where quoted text ends depends on the server's sql_mode, which the query cannot tell. Each reading
# is (backslashes escape, ANSI_QUOTES): the default mode; NO_BACKSLASH_ESCAPES; ANSI_QUOTES, where
# "..." is a name, in which a backslash is an ordinary character. Both modes at once end every quote
# where NO_BACKSLASH_ESCAPES alone does.
READINGS = ((True, False), (False, False), (True, True))


def has_top_level_limit(sql: str) -> bool:
    """Does the statement itself end in LIMIT (rather than only its subqueries)? Under every reading
    of quotes and backslashes, so that a doubt answers yes."""
    for backslash_escapes, ansi_quotes in READINGS:
        depth = 0
        try:
            tokens = split_tokens(sql, backslash_escapes=backslash_escapes, ansi_quotes=ansi_quotes)
        except QueryRefused:
            return True
        for token in tokens:
            if token.kind == "punct":
                depth += {"(": 1, ")": -1}.get(token.text, 0)
            elif depth == 0 and token.keyword == "LIMIT":
                return True
    return False


def statement_body(sql: str) -> str:
    """The statement without the semicolon that may end it, nor what follows that (comments,
    space): what goes inside `(...)` when the query runs within another."""
    try:
        found = split_tokens(sql, backslash_escapes=True)
    except QueryRefused:
        return sql.strip()
    if found and found[-1].kind == "punct" and found[-1].text == ";":
        return sql[: found[-1].start].rstrip()
    return sql.strip()


def derived_table(sql: str, alias: str) -> str:
    """`(sql) AS alias`, for a count or a probe. The newline before `)` ends a `-- comment` or
    `# comment` that closes the query, which would otherwise swallow the parenthesis."""
    return f"(\n{statement_body(sql)}\n) AS {alias}"


def split_tokens(sql: str, *, backslash_escapes: bool, ansi_quotes: bool = False) -> list[Token]:
    """Every token of `sql`. Something never closed is an error in the usual mode (backslashes
    escape, "..." is a string); in the other readings the tokens stop there, as the server would
    reject the rest. With `ansi_quotes`, "..." is a name (kind "ident"), where backslashes do not
    escape."""
    tokens: list[Token] = []
    try:
        tokens.extend(_lex(sql, 0, len(sql), (backslash_escapes, ansi_quotes), _line_finder(sql)))
    except Unclosed:
        if backslash_escapes and not ansi_quotes:
            raise
    return tokens


def _line_finder(sql: str) -> _LineFinder:
    return _LineFinder([i for i, ch in enumerate(sql) if ch == "\n"])


class _LineFinder(NamedTuple):
    newlines: list[int]

    def __call__(self, pos: int) -> int:
        return bisect.bisect_right(self.newlines, pos - 1) + 1


def _lex(sql: str, pos: int, end: int, reading: tuple[bool, bool], line_of: _LineFinder) -> Iterator[Token]:
    """Yield the tokens of sql[pos:end], dropping whitespace and comments (but not optimizer hints).
    `reading` is (backslash escapes, ANSI_QUOTES)."""
    backslash_escapes, ansi_quotes = reading
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
                refuse(f"an executable comment {opener}", line_of(pos), _EXECUTABLE_COMMENT)
            close = sql.find("*/", pos + 2, end)
            if close < 0:
                raise Unclosed(f"{PREFIX}: the comment starting at line {line_of(pos)} is never closed")
            if sql.startswith("/*+", pos) and previous == "SELECT":
                # An optimizer hint is read by the server, not skipped: check it like the rest.
                yield from _lex(sql, pos + 3, close, reading, line_of)
            pos = close + 2
            glued = False
            continue
        if ch in "'\"`":
            name = ch == "`" or (ch == '"' and ansi_quotes)  # a name, where backslashes do not escape
            pos = _close_quote(sql, pos, end, backslash_escapes and not name, line_of)
            kind = "ident" if name else "string"
        elif (number := _NUMBER.match(sql, pos, end)) and not (ch == "." and glued and previous):
            pos = number.end()
            kind = "number"
        elif word := _WORD.match(sql, pos, end):
            pos = word.end()
            kind = "word"
        else:
            pos += 1
            kind = "punct"
        token = Token(kind, sql[start:pos], line_of(start), glued, start)
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
    raise Unclosed(f"{PREFIX}: the {what} starting with {quote} at line {line_of(pos)} is never closed")


def refuse(what: str, line: int | None, advice: str) -> NoReturn:
    where = "" if line is None else f" at line {line}"
    raise QueryRefused(f"{PREFIX}: {what}{where}; {advice}")
