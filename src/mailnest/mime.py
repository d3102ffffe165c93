"""Raw message bytes -> the fields mailnest shows and searches. Pure: no I/O, never raises on bad input.

INTERIM implementation on the stdlib parser; being replaced by the offset-based scanner (same interface).
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message as _EmailMessage

from .models import Address, Attachment


@dataclass(frozen=True, slots=True)
class Parsed:
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    date: datetime | None
    message_id: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    inline: tuple[Attachment, ...]
    snippet: str
    return_path: str = ""
    list_unsubscribe: str = ""
    x_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PartContent:
    content_type: str
    filename: str
    data: bytes


def decode_words(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


def _addresses(msg: _EmailMessage, name: str) -> tuple[Address, ...]:
    values = [str(v) for v in msg.get_all(name, [])]
    return tuple(Address(decode_words(n), a) for n, a in email.utils.getaddresses(values) if a or n)


def parse(raw: bytes) -> Parsed:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    froms = _addresses(msg, "From")
    text = html = ""
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disp = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        fname = part.get_filename() or ""
        payload = part.get_payload(decode=True) or b""
        if disp != "attachment" and not fname and ctype in ("text/plain", "text/html"):
            body = payload.decode(part.get_content_charset() or "utf-8", "replace")
            if ctype == "text/plain" and not text:
                text = body
            elif ctype == "text/html" and not html:
                html = body
            continue
        attachments.append(Attachment("", decode_words(fname), ctype, part.get("Content-ID", "").strip("<>"),
                                      len(payload), disp == "inline"))
    date = None
    try:
        date = email.utils.parsedate_to_datetime(msg.get("Date", ""))
    except Exception:
        pass
    return Parsed(
        from_=froms[0] if froms else None, to=_addresses(msg, "To"), cc=_addresses(msg, "Cc"),
        reply_to=_addresses(msg, "Reply-To"), subject=decode_words(msg.get("Subject", "")), date=date,
        message_id=(msg.get("Message-ID") or "").strip().strip("<>"), text=text, html=html,
        attachments=tuple(a for a in attachments if not a.inline), inline=tuple(a for a in attachments if a.inline),
        snippet=" ".join(text.split())[:250],
    )


def headers(raw: bytes) -> list[tuple[str, str]]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [(k, decode_words(str(v))) for k, v in msg.items()]


def part(raw: bytes, part_id: str) -> PartContent | None:
    return None
