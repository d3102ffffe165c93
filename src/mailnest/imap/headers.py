"""A header block as IMAP sees it: fields with raw offsets, for ENVELOPE, HEADER.FIELDS and SEARCH. Pure.

Values keep their folding line breaks (callers decide whether to drop them); the white space right after the
colon is skipped. A line without a colon counts as a field named by the whole line, with no value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..mime.header import block_end

_LWSP = b" \t"
# A field ends at a line break not followed by a space or tab (continuation lines belong to their field).
_FIELD_START = re.compile(rb"\n(?![ \t])")


@dataclass(frozen=True, slots=True)
class HeaderField:
    name: bytes
    value: bytes
    start: int  # offset of the field's first byte in the message
    end: int  # offset just past the field's last line break


def header_end(raw: bytes, start: int = 0) -> int:
    """Where the body starts: just past the empty line ending the header."""
    return block_end(raw, start)[1]


def fields(raw: bytes, start: int = 0, end: int | None = None) -> Iterator[HeaderField]:
    """The fields of the header block raw[start:end]; `end` is the body start (the blank line is skipped)."""
    end = len(raw) if end is None else end
    pos = start
    for match in _FIELD_START.finditer(raw, start, end):
        stop = match.end()
        if stop <= pos:
            continue
        field = _field(raw, pos, stop)
        if field is None:
            return
        yield field
        pos = stop
    if pos < end:
        field = _field(raw, pos, end)
        if field is not None:
            yield field


def _field(raw: bytes, start: int, stop: int) -> HeaderField | None:
    text = raw[start:stop]
    stripped = text.rstrip(b"\r\n")
    if not stripped:
        return None  # the empty line ending the header
    colon = stripped.find(b":")
    if colon < 0:
        return HeaderField(stripped, b"", start, stop)
    name = stripped[:colon].rstrip(_LWSP)
    value = stripped[colon + 1:]
    skipped = value.lstrip(_LWSP)
    # a value of white space only loses just the first white space character
    value = skipped if skipped else value[1:] if value[:1] in (b" ", b"\t") else value
    return HeaderField(name, value, start, stop)


def unfold(value: bytes) -> bytes:
    """Drop the line breaks of a folded value, keeping the white space that follows them."""
    return value.replace(b"\r", b"").replace(b"\n", b"") if b"\n" in value or b"\r" in value else value

