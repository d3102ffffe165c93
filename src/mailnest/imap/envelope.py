"""FETCH ENVELOPE: the RFC 3501 envelope structure of a header block. Pure.

Header values are sent as written (encoded words stay encoded). When a field appears more than once, the
last Date, Subject, In-Reply-To or Message-ID counts while the addresses of every From, To, Cc... field are
listed together (as Dovecot does); Sender and Reply-To default to From.
"""

from __future__ import annotations

import functools
import re

from . import headers
from .addresses import parse_addresses
from .quoting import nstring, nstring_nolf, string_for_humans

_STRING_FIELDS = (b"date", b"subject", b"in-reply-to", b"message-id")
_ADDRESS_FIELDS = (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")
# The envelope's fields straight from the header block: a field starts a line (continuation lines start with
# white space, so they never match) and runs over its continuation lines.
_ENVELOPE_FIELD = re.compile(
    rb"^(date|subject|from|sender|reply-to|to|cc|bcc|in-reply-to|message-id)[ \t]*:([ \t]*)"
    rb"([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)


@functools.lru_cache(maxsize=8192)
def _address_items(value: bytes) -> bytes:
    """The rendered addresses of one header value. Cached: a test suite's mail mostly repeats a few From and To
    values, and parsing them dominates ENVELOPE."""
    out = bytearray()
    for a in parse_addresses(value):
        out += b"("
        out += string_for_humans(a.name) if a.name is not None else b"NIL"
        out += b" " + nstring(a.route) + b" " + nstring(a.mailbox) + b" " + nstring(a.domain) + b")"
    return bytes(out)


def _address_list(values: list[bytes] | None) -> bytes:
    items = b"".join(_address_items(v) for v in values) if values else b""
    return b"(" + items + b")" if items else b"NIL"


def envelope(raw: bytes, start: int = 0, end: int | None = None) -> bytes:
    """The parenthesized envelope of the header block raw[start:end]."""
    values: dict[bytes, bytes] = {}
    addresses: dict[bytes, list[bytes]] = {}
    end = headers.header_end(raw, start) if end is None else end
    for match in _ENVELOPE_FIELD.finditer(raw, start, end):
        name = match.group(1).lower()
        value = match.group(3)
        if not value and match.group(2):
            value = match.group(2)[1:]  # a value of white space only loses just its first character
        if name in _STRING_FIELDS:
            values[name] = value
        else:
            addresses.setdefault(name, []).append(value)
    from_ = _address_list(addresses.get(b"from"))
    sender = _address_list(addresses.get(b"sender"))
    reply_to = _address_list(addresses.get(b"reply-to"))
    subject = values.get(b"subject")
    parts = [
        nstring_nolf(values.get(b"date")),
        string_for_humans(subject) if subject is not None else b"NIL",
        from_,
        from_ if sender == b"NIL" else sender,
        from_ if reply_to == b"NIL" else reply_to,
        _address_list(addresses.get(b"to")),
        _address_list(addresses.get(b"cc")),
        _address_list(addresses.get(b"bcc")),
        nstring_nolf(values.get(b"in-reply-to")),
        nstring_nolf(values.get(b"message-id")),
    ]
    return b"(" + b" ".join(parts) + b")"
