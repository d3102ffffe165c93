"""The lexical layer of IMAP commands: atoms, quoted strings, literals, parenthesized lists. Pure.

Only FETCH has bracketed sections, as in `BODY.PEEK[HEADER.FIELDS (From To)]<0.100>`: there the part before
`[` is the atom's text, the bracket's contents are tokenized into `section`, what follows `]` is `suffix`.
Everywhere else `[` and `]` are ordinary characters of an atom or astring (RFC 3501 section 9: `[` is no
atom-special, `]` is a resp-special allowed in ASTRING-CHAR), so `SELECT [Gmail]/Sent` names a mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ATOM_END = frozenset(b' ()"\r\n')
_MAX_DEPTH = 50


class ParseError(ValueError):
    """A command that cannot be understood. `tag` is set when the tag could still be read."""

    status = "BAD"  # a subclass answering NO (a well-formed request the server declines) overrides it

    def __init__(self, reason: str, tag: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag


@dataclass(frozen=True, slots=True)
class Atom:
    value: bytes
    section: list[Token] | None = None
    suffix: bytes = b""

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Str:
    value: bytes
    literal: bool = False


@dataclass(frozen=True, slots=True)
class ListToken:
    items: list[Token] = field(default_factory=list)


Token = Atom | Str | ListToken


class _Lexer:
    def __init__(self, data: bytes, sections: bool) -> None:
        self.data = data
        self.pos = 0
        self.sections = sections

    def fail(self, reason: str) -> ParseError:
        return ParseError(reason)

    def at_end(self) -> bool:
        return self.pos >= len(self.data) or self.data[self.pos:] in (b"\r\n", b"\n")

    def tokens(self, closer: int | None, depth: int) -> list[Token]:
        if depth > _MAX_DEPTH:
            raise self.fail("Lists nested too deeply")
        out: list[Token] = []
        while True:
            if self.at_end():
                if closer is None:
                    return out
                raise self.fail("Missing ')'" if closer == 0x29 else "Missing ']'")
            byte = self.data[self.pos]
            if closer is not None and byte == closer:
                self.pos += 1
                return out
            if out:
                if byte != 0x20:
                    raise self.fail("Expected a space between arguments")
                self.pos += 1
                if self.pos < len(self.data) and self.data[self.pos] == closer:
                    raise self.fail("Unexpected space before closing bracket")
                byte = self.data[self.pos] if self.pos < len(self.data) else -1
            out.append(self.token(byte, depth, closer == 0x5D))

    def token(self, byte: int, depth: int, in_section: bool = False) -> Token:
        if byte == 0x28:  # (
            self.pos += 1
            return ListToken(self.tokens(0x29, depth + 1))
        if byte == 0x22:  # "
            return self.quoted()
        if byte == 0x7B:  # {
            return self.literal()
        return self.atom(depth, in_section)

    def quoted(self) -> Str:
        self.pos += 1
        out = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise self.fail("Unterminated quoted string")
            byte = data[self.pos]
            if byte == 0x22:
                self.pos += 1
                return Str(bytes(out))
            if byte in (0x0D, 0x0A):
                raise self.fail("Line break inside a quoted string")
            if byte == 0x5C:  # backslash escapes only quoted-specials
                self.pos += 1
                if self.pos >= len(data) or data[self.pos] not in (0x22, 0x5C):
                    raise self.fail("Invalid escape in quoted string")
                byte = data[self.pos]
            out.append(byte)
            self.pos += 1

    def literal(self) -> Str:
        end = self.data.find(b"}", self.pos)
        if end < 0:
            raise self.fail("Invalid literal")
        spec = self.data[self.pos + 1:end]
        if spec.endswith(b"+"):
            spec = spec[:-1]
        if not spec.isdigit() or len(spec) > 20:
            raise self.fail("Invalid literal size")
        size = int(spec)
        pos = end + 1
        if self.data[pos:pos + 2] == b"\r\n":
            pos += 2
        elif self.data[pos:pos + 1] == b"\n":
            pos += 1
        else:
            raise self.fail("A literal announcement must end the line")
        if pos + size > len(self.data):
            raise self.fail("Literal shorter than announced")
        self.pos = pos + size
        return Str(self.data[pos:pos + size], literal=True)

    def atom(self, depth: int, in_section: bool = False) -> Atom:
        start = self.pos
        data = self.data
        sections = self.sections
        while (self.pos < len(data) and data[self.pos] not in _ATOM_END
               and not (sections and (data[self.pos] == 0x5B or (in_section and data[self.pos] == 0x5D)))):
            if data[self.pos] < 0x20 or data[self.pos] == 0x7F or data[self.pos] == 0x7B:
                raise self.fail("Invalid character in atom")
            self.pos += 1
        value = data[start:self.pos]
        if sections and self.pos < len(data) and data[self.pos] == 0x5B:  # [ opens a section
            self.pos += 1
            section = self.tokens(0x5D, depth + 1)
            suffix_start = self.pos
            while self.pos < len(data) and data[self.pos] not in _ATOM_END:
                self.pos += 1
            if not value:
                raise self.fail("Unexpected '['")
            return Atom(value, section, data[suffix_start:self.pos])
        if not value:
            raise self.fail(f"Unexpected character {chr(data[self.pos])!r}" if self.pos < len(data) else
                            "Unexpected end of command")
        return Atom(value)


def tokenize(data: bytes, *, sections: bool = False) -> list[Token]:
    """Everything after the command name, up to the final CRLF. `sections`: FETCH's `BODY[...]` syntax."""
    lexer = _Lexer(data, sections)
    return lexer.tokens(None, 0)
