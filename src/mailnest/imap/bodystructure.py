"""FETCH BODY and BODYSTRUCTURE from the MIME tree (`mailnest.mime.structure`). Pure.

Values are written the way Dovecot, our reference server, writes them (case as in the message, default
charset us-ascii for text parts, NIL for what is absent). One deliberate difference: sizes are of the stored
bytes, so a message with bare LF line ends reports the sizes mailnest actually sends, where Dovecot reports
the sizes after its LF -> CRLF conversion.
"""

from __future__ import annotations

from ..mime import MimePart, PartKind
from .envelope import envelope
from .quoting import nstring, nstring_nolf

_DEFAULT_CHARSET = b'"charset" "us-ascii"'
_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_BODYSTRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(text: str | None) -> bytes:
    return nstring(None if text is None else _b(text))


def _params(params: tuple[tuple[str, str], ...], default_charset: bool) -> bytes:
    if not params and not default_charset:
        return b"NIL"
    items = [_s(name) + b" " + _s(value) for name, value in params]
    if default_charset and not any(name.lower() == "charset" for name, _ in params):
        items.append(_DEFAULT_CHARSET)
    return b"(" + b" ".join(items) + b")"


def _common_extension(part: MimePart) -> bytes:
    """Disposition, language and location: the extension data every part type shares."""
    out = bytearray(b" ")
    if part.disposition is None:
        out += b"NIL"
    else:
        out += b"(" + _s(part.disposition) + b" " + _params(part.disposition_params, False) + b")"
    out += b" "
    out += b"(" + b" ".join(_s(tag) for tag in part.language) + b")" if part.language else b"NIL"
    out += b" " + nstring_nolf(None if part.location is None else _b(part.location))
    return bytes(out)


def _multipart(raw: bytes, part: MimePart, extended: bool) -> bytes:
    out = bytearray()
    if part.children:
        for child in part.children:
            out += b"(" + _write(raw, child, extended) + b")"
    else:  # a multipart without parts is not allowed; show one empty text part instead
        out += _EMPTY_BODYSTRUCTURE if extended else _EMPTY_BODY
    out += b" " + (_s(part.media_subtype) if part.media_subtype is not None else b'"x-unknown"')
    if extended:
        out += b" " + _params(part.params, False) + _common_extension(part)
    return bytes(out)


def _leaf(raw: bytes, part: MimePart, extended: bool) -> bytes:
    out = bytearray()
    if part.kind is PartKind.MESSAGE:
        out += b'"message" "rfc822"'
        text = False
    elif part.media_type is None:
        out += b'"text" "plain"'
        text = True
    else:
        text = part.kind is PartKind.TEXT
        out += _s(part.media_type) + b" " + (_s(part.media_subtype) if part.media_subtype is not None else b"NIL")
    out += b" " + _params(part.params, text)
    out += b" " + nstring_nolf(None if part.content_id is None else _b(part.content_id))
    out += b" " + nstring_nolf(None if part.description is None else _b(part.description))
    out += b" " + (_s(part.encoding) if part.encoding is not None else b'"7bit"')
    out += b" %d" % part.body_size
    if text:
        out += b" %d" % part.body_lines
    elif part.kind is PartKind.MESSAGE and part.children:
        child = part.children[0]
        out += b" " + envelope(raw, child.header_start, child.header_end)
        out += b" (" + _write(raw, child, extended) + b")"
        out += b" %d" % part.body_lines
    if extended:
        out += b" " + nstring_nolf(None if part.md5 is None else _b(part.md5)) + _common_extension(part)
    return bytes(out)


def _write(raw: bytes, part: MimePart, extended: bool) -> bytes:
    return _multipart(raw, part, extended) if part.kind is PartKind.MULTIPART else _leaf(raw, part, extended)


def body_structure(raw: bytes, root: MimePart, *, extended: bool) -> bytes:
    """The parenthesized BODYSTRUCTURE (extended) or BODY (not extended) of a whole message."""
    return b"(" + _write(raw, root, extended) + b")"
