"""Text as SQLite can store it: envelope strings that carry bytes which were not UTF-8.

Pure: no I/O. Shared by every backend (a PostgreSQL text column refuses lone surrogates too).
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..models import Envelope

_SURROGATE = re.compile("[\ud800-\udfff]")


def _unescaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return chr(code - 0xDC00) if 0xDC80 <= code <= 0xDCFF else "\ufffd"


def faithful_text(text: str) -> str:
    """Text SQLite can store (UTF-8 has no lone surrogates). aiosmtpd decodes command arguments as UTF-8 with
    `surrogateescape`, so a byte that is not UTF-8 (a Latin-1 `ü` in RCPT TO) arrives as U+DC80-U+DCFF: it is
    stored as the Latin-1 character of that byte (so `j\xfcrgen` reads `jürgen`, and the byte value is kept).
    Any other lone surrogate (from a JSON `\\ud800` escape, say) has no byte behind it and becomes U+FFFD."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(_unescaped, text)


def faithful_envelope(envelope: Envelope) -> Envelope:
    return replace(
        envelope, mail_from=faithful_text(envelope.mail_from),
        rcpt_tos=tuple(faithful_text(r) for r in envelope.rcpt_tos), helo=faithful_text(envelope.helo),
        peer=faithful_text(envelope.peer),
        auth_user=faithful_text(envelope.auth_user) if envelope.auth_user is not None else None)
