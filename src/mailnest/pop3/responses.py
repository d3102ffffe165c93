"""POP3 replies as bytes (RFC 1939, RFC 2449). Pure: no I/O, no clock, no store.

The message text a POP3 client receives is the stored raw message with every line ending made CRLF (SMTP
delivers CRLF, but imported or API-added mail may carry bare LFs) and a final CRLF added when the message does
not end with one. `maildrop_octets` is the length of exactly that text, so the sizes in STAT and LIST are
the octets RETR sends before dot-stuffing, which is what RFC 1939 asks for and what poplib counts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

CRLF = b"\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def ok(text: str = "") -> bytes:
    return b"+OK" + (b" " + _encode(text) if text else b"") + CRLF


def err(text: str) -> bytes:
    return b"-ERR " + _encode(text) + CRLF


def _encode(text: str) -> bytes:
    # Reply text is ours, but it may quote a user name; never let a CR or LF split the reply line.
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def multiline(first: str, body: bytes) -> bytes:
    """A `+OK` line, the body dot-stuffed (body must already be CRLF lines, ending in CRLF), then `.`."""
    return ok(first) + dot_stuff(body) + b"." + CRLF


def multiline_lines(first: str, lines: Iterable[str]) -> bytes:
    """A `+OK` line followed by short protocol lines (LIST, UIDL, CAPA), then the terminating `.`."""
    body = b"".join(_encode(line) + CRLF for line in lines)
    return multiline(first, body)


def normalize_crlf(raw: bytes) -> bytes:
    """Every line ending CRLF, and a CRLF at the end so that the terminating `.` is a line of its own."""
    text = _BARE_LF.sub(CRLF, raw)
    if text and not text.endswith(CRLF):
        text += CRLF
    return text


def maildrop_octets(raw: bytes) -> int:
    """The size POP3 reports for a stored message: the length of `normalize_crlf(raw)`."""
    return len(normalize_crlf(raw))


def dot_stuff(text: bytes) -> bytes:
    """RFC 1939 section 3: a line starting with `.` gets one more `.` in front."""
    return _LEADING_DOT.sub(b"..", text)


def top(text: bytes, lines: int) -> bytes:
    """The header section, the blank line after it, and the first `lines` lines of the body.

    `text` must be normalised (CRLF). A message with no blank line is all header and is returned whole.
    """
    if text.startswith(CRLF):
        header_end = len(CRLF)
    else:
        blank = text.find(CRLF + CRLF)
        if blank < 0:
            return text
        header_end = blank + 2 * len(CRLF)
    end = header_end
    for _ in range(lines):
        next_end = text.find(CRLF, end)
        if next_end < 0:
            return text
        end = next_end + len(CRLF)
    return text[:end]


def greeting(hostname: str, timestamp: str) -> bytes:
    """The banner; the `<...>` timestamp is what APOP digests are computed over (RFC 1939 section 7)."""
    return ok(f"{hostname} POP3 server ready {timestamp}")


def apop_digest(timestamp: str, secret: str) -> str:
    """The digest a client sends with APOP: hex MD5 of the banner timestamp followed by the shared secret."""
    return hashlib.md5((timestamp + secret).encode("utf-8"), usedforsecurity=False).hexdigest()


def scan_listing(number: int, value: int | str) -> str:
    """One `LIST` or `UIDL` line: the message number and its size or unique id."""
    return f"{number} {value}"
