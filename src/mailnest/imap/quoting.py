"""IMAP string rendering: NIL, quoted strings, literals; the choice of form follows Dovecot's. Pure."""

from __future__ import annotations

import re

_ASTRING_SPECIALS = frozenset(b'(){ %*"\\')
_QUOTED_ESCAPES_BEFORE_LITERAL = 4
# Values that go out quoted exactly as they are: the common case, checked by one regular expression.
_PLAIN = re.compile(rb'[^"\\\r\n\x00\x80-\xff]*')
_WORD = rb"[\x21\x23-\x5b\x5d-\x7e\x01-\x08\x0b\x0c\x0e-\x1f\x7f]+"
_PLAIN_FOR_HUMANS = re.compile(rb"(?:" + _WORD + rb"(?: " + _WORD + rb")*)?")


def literal(data: bytes) -> bytes:
    """A literal. IMAP literals cannot carry NUL, so stored NUL bytes go out as 0x80 (as Dovecot sends them)."""
    if b"\0" in data:
        data = data.replace(b"\0", b"\x80")
    return b"{%d}\r\n" % len(data) + data


def nstring(value: bytes | None) -> bytes:
    """A string as quoted when it can be (a few escapes allowed), as a literal when it must be."""
    if value is None:
        return b"NIL"
    if _PLAIN.fullmatch(value):
        return b'"' + value + b'"'
    escapes = 0
    for byte in value:
        if byte in (0x22, 0x5C):
            escapes += 1
            if escapes > _QUOTED_ESCAPES_BEFORE_LITERAL:
                return literal(value)
        elif byte in (0x0D, 0x0A) or byte >= 0x80 or byte == 0:
            return literal(value)
    if escapes:
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b'"' + value + b'"'


def nstring_nolf(value: bytes | None) -> bytes:
    if value is not None and (b"\r" in value or b"\n" in value):
        value = value.replace(b"\r", b"").replace(b"\n", b"")
    return nstring(value)


def astring(value: bytes) -> bytes:
    if value and value.upper() != b"NIL" and all(0x20 < b < 0x7F and b not in _ASTRING_SPECIALS for b in value):
        return value
    return nstring(value)


def string_for_humans(value: bytes) -> bytes:
    """Subjects and display names: white space runs collapsed to one space, line breaks dropped, ends trimmed.

    Quoted as-is when nothing needed changing; otherwise a literal of the cleaned text (as Dovecot does, so
    that an 8-bit or quote-bearing name is never escaped inside quotes).
    """
    if _PLAIN_FOR_HUMANS.fullmatch(value):
        return b'"' + value + b'"'
    modify = False
    last_space = True
    for byte in value:
        if byte in (0x20, 0x09):
            if last_space or byte == 0x09:
                modify = True
                break
            last_space = True
        elif byte in (0x0D, 0x0A, 0x22, 0x5C, 0) or byte >= 0x80:
            modify = True
            break
        else:
            last_space = False
    if not modify and not (last_space and value):
        return b'"' + value + b'"'
    out = bytearray()
    last_space = True
    for byte in value:
        if byte in (0x20, 0x09):
            if not last_space:
                out.append(0x20)
            last_space = True
        elif byte in (0x0D, 0x0A):
            continue
        else:
            out.append(0x80 if byte == 0 else byte)
            last_space = False
    if last_space and out:
        out.pop()
    if not out:
        return b'""'
    return literal(bytes(out))
