"""SEARCH key grammar (RFC 3501 section 6.4.4) -> a tree of SearchKey. Pure."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import date

from .sequence import parse_sequence_set
from .tokens import Atom, ListToken, ParseError, Str, Token

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_SEQUENCE = re.compile(r"[0-9*:,]+")

# key -> (flag, wanted state)
FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
    "RECENT": ("\\Recent", True), "OLD": ("\\Recent", False),
}
HEADER_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "TO": "To"}
DATE_KEYS = {
    "BEFORE": ("internal", "<"), "ON": ("internal", "="), "SINCE": ("internal", ">="),
    "SENTBEFORE": ("sent", "<"), "SENTON": ("sent", "="), "SENTSINCE": ("sent", ">="),
}
CHARSETS = ("US-ASCII", "UTF-8")


@dataclass(frozen=True, slots=True)
class SearchKey:
    """op is one of: AND, OR, NOT, ALL, NEW, FLAG, KEYWORD, ADDRESS, SUBJECT, HEADER, BODY, TEXT, DATE, SIZE,
    UID, SEQ."""

    op: str
    args: tuple[object, ...] = ()


class BadCharset(ParseError):
    """An unsupported CHARSET: answered NO [BADCHARSET ...], not BAD."""

    status = "NO"


def parse_date(text: str) -> date:
    match = _DATE.fullmatch(text)
    if not match or match.group(2).upper() not in _MONTHS:
        raise ParseError(f"Invalid search date {text!r}")
    try:
        return date(int(match.group(3)), _MONTHS.index(match.group(2).upper()) + 1, int(match.group(1)))
    except ValueError:
        raise ParseError(f"Invalid search date {text!r}") from None


class _Keys:
    def __init__(self, tokens: list[Token], charset: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.charset = charset

    def take(self, what: str) -> Token:
        if self.pos >= len(self.tokens):
            raise ParseError(f"SEARCH: missing {what}")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def string(self, what: str) -> str:
        token = self.take(what)
        if isinstance(token, Str) or (isinstance(token, Atom) and token.section is None):
            try:
                return token.value.decode(self.charset)
            except UnicodeDecodeError:
                raise ParseError(f"SEARCH: {what} is not valid {self.charset}") from None
        raise ParseError(f"SEARCH: {what} must be a string")

    def key(self, depth: int = 0) -> SearchKey:
        if depth > 100:
            raise ParseError("SEARCH: keys nested too deeply")
        token = self.take("search key")
        if isinstance(token, ListToken):
            inner = _Keys(token.items, self.charset)
            keys = []
            while inner.pos < len(inner.tokens):
                keys.append(inner.key(depth + 1))
            if not keys:
                raise ParseError("SEARCH: empty parenthesized list")
            return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
        if not isinstance(token, Atom) or token.section is not None:
            raise ParseError("SEARCH: expected a search key")
        name = token.text.upper()
        if name == "ALL":
            return SearchKey("ALL")
        if name == "NEW":
            return SearchKey("NEW")
        if name in FLAG_KEYS:
            flag, wanted = FLAG_KEYS[name]
            return SearchKey("FLAG", (flag, wanted))
        if name in ("KEYWORD", "UNKEYWORD"):
            keyword = self.string("keyword")
            return SearchKey("KEYWORD", (keyword, name == "KEYWORD"))
        if name == "SUBJECT":
            return SearchKey("SUBJECT", ("Subject", self.string("SUBJECT value")))
        if name in HEADER_KEYS:
            return SearchKey("ADDRESS", (HEADER_KEYS[name], self.string(f"{name} value")))
        if name == "HEADER":
            field = self.string("header name")
            return SearchKey("HEADER", (field, self.string("header value")))
        if name in ("BODY", "TEXT"):
            return SearchKey(name, (self.string(f"{name} value"),))
        if name in DATE_KEYS:
            which, op = DATE_KEYS[name]
            return SearchKey("DATE", (which, op, parse_date(self.string("date"))))
        if name in ("LARGER", "SMALLER"):
            text = self.string("size")
            if not text.isdigit() or len(text) > 12:
                raise ParseError(f"SEARCH: {name} needs a number")
            return SearchKey("SIZE", (">" if name == "LARGER" else "<", int(text)))
        if name == "NOT":
            return SearchKey("NOT", (self.key(depth + 1),))
        if name == "OR":
            first = self.key(depth + 1)
            return SearchKey("OR", (first, self.key(depth + 1)))
        if name == "UID":
            return SearchKey("UID", (parse_sequence_set(self.string("UID set")),))
        if _SEQUENCE.fullmatch(name):
            return SearchKey("SEQ", (parse_sequence_set(name),))
        raise ParseError(f"SEARCH: unknown search key {name[:40]}")


def parse_search(tokens: list[Token], charset: str | None) -> SearchKey:
    chosen = (charset or "US-ASCII").upper()
    try:
        if not codecs.lookup(chosen)._is_text_encoding:
            raise LookupError(chosen)
    except LookupError:
        raise BadCharset(f"[BADCHARSET ({' '.join(CHARSETS)})] Unsupported charset {charset}") from None
    keys = _Keys(tokens, chosen)
    found = []
    while keys.pos < len(tokens):
        found.append(keys.key())
    if not found:
        raise ParseError("SEARCH: no search keys")
    return found[0] if len(found) == 1 else SearchKey("AND", tuple(found))
