"""Part bodies: transfer decoding, charsets, decoded sizes, and the plain text of HTML for snippets.

Lenient throughout: bad base64 or quoted-printable decodes as far as it goes, unknown charsets fall back to
UTF-8 with replacement characters. Nothing here raises on malformed input.
"""

from __future__ import annotations

import binascii
import html as _html
import re

from .header import decode_bytes

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(sorted(set(range(256)) - set(_B64_ALPHABET)))
_WHITESPACE = b" \t\r\n"
# Bodies above this size get their decoded size from the line layout instead of a full pass over the bytes.
_EXACT_SIZE_LIMIT = 256 * 1024

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
# Linear on any input (ingest and the writer thread run this on whatever arrives): no pattern can rescan the rest
# of the text from each of many unclosed "<", "<script" or "<!--".
_HTML_HIDDEN = re.compile(r"<!--|<(script|style|head|title|template|noscript|svg)\b", re.I)
_HTML_HIDDEN_END = {"": re.compile(r"-->"), **{
    name: re.compile(rf"</{name}\s*>", re.I)
    for name in ("script", "style", "head", "title", "template", "noscript", "svg")}}
_HTML_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|tr|td|th|li|ul|ol|h[1-6]|table|tbody|thead|blockquote|hr|section|article|header|footer"
    r"|pre|center|dd|dt|dl)\b[^<>]*(?:>|\Z)",
    re.I,
)
_HTML_TAG = re.compile(r"<[A-Za-z/!?][^<>]*(?:>|\Z)")  # as HTML: "<" then a space is text
_BODY_START = re.compile(r"<body\b[^>]*>", re.I)


def _strip_invalid_base64(data: bytes) -> bytes:
    data = data.translate(None, _B64_JUNK)
    usable = len(data) - len(data) % 4
    rest = len(data) % 4
    if rest >= 2:  # 2 or 3 leftover characters still carry 1 or 2 bytes
        return data[:usable] + data[usable:] + b"=" * (4 - rest)
    return data[:usable]


def decode_base64(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        pass
    try:
        return binascii.a2b_base64(_strip_invalid_base64(data))
    except (binascii.Error, ValueError):
        return b""


def decode_transfer(data: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Transfer-Encoding; unknown or identity encodings return the bytes unchanged."""
    name = (encoding or "").lower()
    if name == "base64":
        return decode_base64(data)
    if name == "quoted-printable":
        try:
            return binascii.a2b_qp(data)
        except (binascii.Error, ValueError):
            return data
    return data


def _base64_size(raw: bytes, start: int, end: int) -> int:
    while end > start and raw[end - 1] in _WHITESPACE:
        end -= 1
    if end <= start:
        return 0
    pad = 2 if raw[end - 2:end] == b"==" else 1 if raw[end - 1] == 0x3D else 0
    if end - start <= _EXACT_SIZE_LIMIT:
        chars = len(raw[start:end].translate(None, _B64_JUNK))
        return chars * 3 // 4
    first_lf = raw.find(b"\n", start, end)
    if first_lf < 0:
        return (end - start - pad) * 3 // 4
    crlf = raw[first_lf - 1] == 0x0D
    line = first_lf - start - (1 if crlf else 0)
    stride = first_lf + 1 - start
    # Encoders write equal lines: check every line break sits where that layout puts it (a strided slice, a
    # fraction of the body) instead of counting characters across megabytes.
    breaks = raw[first_lf:end:stride]
    regular = line > 0 and breaks.count(b"\n") == len(breaks)
    if regular and crlf:
        crs = raw[first_lf - 1:end:stride]
        regular = crs.count(b"\r") == len(crs)
    if regular:
        regular = raw.find(b"\n", first_lf + (len(breaks) - 1) * stride + 1, end) < 0
    if regular:
        newline_bytes = len(breaks) * (2 if crlf else 1)
    else:
        newline_bytes = raw.count(b"\n", start, end) + raw.count(b"\r", start, end)
    return (end - start - newline_bytes - pad) * 3 // 4


def decoded_size(raw: bytes, start: int, end: int, encoding: str | None) -> int:
    """Size of raw[start:end] once transfer-decoded; base64 is computed from the encoded text, not decoded."""
    name = (encoding or "").lower()
    if name == "base64":
        return _base64_size(raw, start, end)
    if name == "quoted-printable":
        return len(decode_transfer(raw[start:end], name))
    return end - start


def text(data: bytes, charset: str, html: bool = False) -> str:
    """A text body as str. Without a usable charset label, UTF-8 if valid, else Windows-1252."""
    label = charset.lower()
    if html and not label:
        m = _META_CHARSET.search(data, 0, 2048)
        if m:
            label = m.group(1).decode("ascii", "replace").lower()
    if label in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown"):
        try:
            s = data.decode("utf-8")
        except UnicodeDecodeError:
            s = data.decode("cp1252", "replace")
    else:
        s = decode_bytes(data, label)
    if s.startswith("\ufeff"):
        s = s[1:]
    # NUL is valid in a message but not in text anyone wants to store, index or display.
    return s.replace("\0", "\ufffd") if "\0" in s else s


def collapse(s: str, limit: int) -> str:
    """Whitespace runs to single spaces, trimmed, cut to at most `limit` characters."""
    size = limit * 4
    while True:
        out = " ".join(s[:size].split())
        if len(out) > limit or size >= len(s):
            return out[:limit].rstrip()
        size *= 8


def visible_text(markup: str) -> str:
    """The text an HTML document shows: hidden sections (head, scripts, styles, comments...) dropped, block
    tags as spaces, other tags removed, entities decoded. An unclosed hidden section hides the rest, as a browser
    would. Used for snippets and for the search index."""
    shown: list[str] = []
    position = 0
    while (hidden := _HTML_HIDDEN.search(markup, position)) is not None:
        shown.append(markup[position:hidden.start()])
        end = _HTML_HIDDEN_END[(hidden.group(1) or "").lower()].search(markup, hidden.end())
        position = end.end() if end else len(markup)
    shown.append(markup[position:])
    text = _HTML_BLOCK_TAG.sub(" ", " ".join(shown))
    return _html.unescape(_HTML_TAG.sub("", text))


def unclosed_tail_as_text(markup: str) -> str:
    """`markup` with each "<" after its last ">" written "&lt;", for Python's HTMLParser.

    Past the last ">" no tag, comment or declaration can close, and HTMLParser (before Python 3.11.13, 3.12.11
    and 3.13.4) rescans that whole tail for each "<" in it: quadratic time on "<a<a<a...". Such a tail is
    text either way, which is what it becomes here.
    """
    last = markup.rfind(">")
    if markup.find("<", last + 1) < 0:
        return markup
    return markup[:last + 1] + markup[last + 1:].replace("<", "&lt;")


def html_text(markup: str, limit: int) -> str:
    """The first `limit` characters of visible text in an HTML document, whitespace collapsed.

    Only as much of the document as needed is looked at: long newsletters cost the same as short ones.
    """
    m = _BODY_START.search(markup, 0, 65536)
    start = m.end() if m else 0
    size = 8192
    while True:
        out = collapse(visible_text(markup[start:start + size]), limit)
        if len(out) >= limit or start + size >= len(markup):
            return out
        size *= 4
