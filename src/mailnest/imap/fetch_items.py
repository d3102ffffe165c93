"""FETCH attribute grammar: `(FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.100>)` -> FetchItem values. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .tokens import Atom, ListToken, ParseError, Str, Token

SIMPLE_ITEMS = frozenset({
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT", "BODY",
    "BODYSTRUCTURE", "UID",
})
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_PARTIAL = re.compile(rb"<(\d{1,10})\.(\d{1,10})>")
_HEADER_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # printable US-ASCII except ':'


@dataclass(frozen=True, slots=True)
class Section:
    part: tuple[int, ...] = ()  # () is the whole message
    text: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()  # header names
    fields_echo: str = ""  # the header list as the client wrote it, upper-cased, for the response

    def spec(self) -> str:
        """The section as echoed back in the response: `1.2.HEADER.FIELDS (FROM TO)`."""
        pieces = [".".join(str(p) for p in self.part)] if self.part else []
        if self.text:
            pieces.append(self.text)
        out = ".".join(pieces)
        if self.text.startswith("HEADER.FIELDS"):
            out += " (" + self.fields_echo + ")"
        return out


@dataclass(frozen=True, slots=True)
class FetchItem:
    name: str  # one of SIMPLE_ITEMS, or "BODY[]" for a section fetch (with or without PEEK)
    section: Section | None = None
    partial: tuple[int, int] | None = None  # (origin, length)
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        return (self.section is not None and not self.peek) or self.name in ("RFC822", "RFC822.TEXT")


def _section(tokens: list[Token]) -> Section:
    if not tokens:
        return Section()
    first = tokens[0]
    if not isinstance(first, Atom) or first.section is not None:
        raise ParseError("Invalid section")
    words = first.value.decode("ascii", "replace").split(".")
    part: list[int] = []
    while words and words[0].isdigit():
        if len(words[0]) > 9:
            raise ParseError("Invalid section part number")
        part.append(int(words[0]))  # 0 is accepted and names no part, as in Dovecot
        words.pop(0)
    text = ".".join(words).upper()
    if text not in ("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
        raise ParseError(f"Invalid section {text}")
    if text == "MIME" and not part:
        raise ParseError("MIME needs a part number")
    if text.startswith("HEADER.FIELDS"):
        if len(tokens) != 2 or not isinstance(tokens[1], ListToken) or not tokens[1].items:
            raise ParseError(f"{text} needs a list of header names")
        names = []
        echo = []
        for token in tokens[1].items:
            if (isinstance(token, Atom) and token.section is None) or isinstance(token, Str):
                value = token.value
            else:
                raise ParseError("Invalid header name")
            if not _HEADER_NAME.fullmatch(value):
                raise ParseError("Invalid header name")
            name = value.decode("ascii")
            names.append(name)
            echo.append(f'"{name.upper()}"' if isinstance(token, Str) else name.upper())
        return Section(tuple(part), text, tuple(names), " ".join(echo))
    if len(tokens) != 1:
        raise ParseError("Invalid section")
    return Section(tuple(part), text)


def _item(token: Token) -> FetchItem:
    if not isinstance(token, Atom):
        raise ParseError("Invalid fetch item")
    name = token.text.upper()
    if token.section is None:
        if name not in SIMPLE_ITEMS:
            raise ParseError(f"Unknown fetch item {name[:40]}")
        return FetchItem(name)
    if name not in ("BODY", "BODY.PEEK"):
        raise ParseError(f"Unknown fetch item {name[:40]}[]")
    partial = None
    if token.suffix:
        match = _PARTIAL.fullmatch(token.suffix)
        if not match or int(match.group(2)) == 0:
            raise ParseError("Invalid partial range")
        partial = (int(match.group(1)), int(match.group(2)))
    return FetchItem("BODY[]", _section(token.section), partial, name == "BODY.PEEK")


def parse_fetch_items(token: Token) -> tuple[FetchItem, ...]:
    if isinstance(token, Atom) and token.section is None and token.text.upper() in MACROS:
        return tuple(FetchItem(n) for n in MACROS[token.text.upper()])
    items = token.items if isinstance(token, ListToken) else [token]
    if not items:
        raise ParseError("Empty fetch item list")
    return tuple(_item(t) for t in items)
