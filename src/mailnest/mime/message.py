"""Raw message bytes -> the fields mailnest stores, shows and searches (`parse`), its headers, its parts.

Built for the SMTP hot path: only header blocks are parsed; bodies are located by offset and only the first
text/plain and text/html bodies are decoded; attachment sizes come from their encoded length.
"""

from __future__ import annotations

import email.utils
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from ..models import Address, Attachment
from . import content, header
from .address import parse_addresses
from .tree import MimePart, PartKind, find_part, scan

SNIPPET_LENGTH = 250
# "Tue, 5 Mar 2024 10:11:12 +0100", what nearly every mailer writes; anything else goes to email.utils.
_COMMON_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+([+-])(\d{2})(\d{2})"
    r"\s*(?:\([^()]*\)\s*)?\Z")
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"), start=1)}
_ADDRESS_HEADERS = (b"from", b"to", b"cc", b"reply-to")
_SINGLE_HEADERS = (b"subject", b"date", b"message-id", b"return-path", b"list-unsubscribe")


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


def headers(raw: bytes) -> list[tuple[str, str]]:
    """Every top-level header in order, as (name, value): unfolded, 8-bit and RFC 2047 decoded."""
    _, end = header.block_end(raw, 0)
    return [(header.text(name), header.value_text(value)) for name, value in header.fields(raw, 0, end)]


@functools.lru_cache(maxsize=64)
def _zone(sign: str, hours: int, minutes: int) -> timezone:
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if sign == "-" else offset) if offset else UTC


def _date(value: str) -> datetime | None:
    m = _COMMON_DATE.match(value)
    if m is not None:
        day, month, year, hour, minute, second, sign, zh, zm = m.groups()
        month_number = _MONTHS.get(month.lower())
        if month_number is not None:
            try:
                return datetime(int(year), month_number, int(day), int(hour), int(minute), int(second or 0),
                                tzinfo=_zone(sign, int(zh), int(zm)))
            except ValueError:
                pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": the zone is unknown, the time is UTC (RFC 5322 3.3)
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _angle_content(value: str) -> str:
    value = value.strip()
    start = value.find("<")
    if start >= 0:
        end = value.find(">", start)
        return value[start + 1:end if end >= 0 else len(value)].strip()
    return value


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def _is_body(node: MimePart) -> bool:
    return (node.content_type in ("text/plain", "text/html") and (node.disposition or "").lower() != "attachment"
            and not node.filename)


def _attachment(raw: bytes, node: MimePart, part_id: str) -> Attachment:
    disposition = (node.disposition or "").lower()
    content_id = _angle_content(header.text(node.content_id.encode("utf-8", "surrogateescape"))) \
        if node.content_id else ""
    inline = disposition == "inline" or (not disposition and bool(content_id))
    size = content.decoded_size(raw, node.body_start, node.body_end, node.encoding)
    return Attachment(part_id, node.filename, node.content_type, content_id, size, inline)


def _leaves(root: MimePart) -> list[tuple[MimePart, str]]:
    """The parts a reader sees, in order, with the section that downloads each; message/rfc822 stays whole."""
    out: list[tuple[MimePart, str]] = []
    stack: list[tuple[MimePart, str]] = [(root, "1")]
    while stack:
        node, section = stack.pop()
        if node.kind is PartKind.MULTIPART:
            stack.extend(reversed([(child, child.part_id) for child in node.children]))
        else:
            out.append((node, section))
    return out


def _body_text(raw: bytes, node: MimePart, html: bool) -> str:
    data = content.decode_transfer(raw[node.body_start:node.body_end], node.encoding)
    return content.text(data, node.charset, html)


def parse(raw: bytes) -> Parsed:
    """The fields of a raw message. Never raises; a message with no headers at all is still a message."""
    root, top_fields = scan(raw)
    found: dict[bytes, str] = {}
    addresses: dict[bytes, list[Address]] = {name: [] for name in _ADDRESS_HEADERS}
    tags: list[str] = []
    for name, value in top_fields:
        lname = name.lower()
        if lname in addresses:
            addresses[lname].extend(parse_addresses(header.text(header.unfold(value))))
        elif lname in _SINGLE_HEADERS:
            if lname not in found:
                found[lname] = header.value_text(value)
        elif lname == b"x-tags":
            tags.extend(_tags(header.value_text(value)))

    text = html = ""
    attachments: list[Attachment] = []
    inline: list[Attachment] = []
    for node, section in _leaves(root):
        if _is_body(node):
            if node.content_type == "text/plain" and not text:
                text = _body_text(raw, node, False)
                continue
            if node.content_type == "text/html" and not html:
                html = _body_text(raw, node, True)
                continue
        item = _attachment(raw, node, section)
        (inline if item.inline else attachments).append(item)

    if not top_fields and not text and not html and raw.strip():
        # Not one header line: IMAP (like Dovecot) sees it all as a header block, but a reader sees text, so the
        # list, snippet and search show it as the body.
        text = content.text(raw, "", False)
    snippet = content.collapse(text, SNIPPET_LENGTH) if text.strip() else content.html_text(html, SNIPPET_LENGTH)
    froms = addresses[b"from"]
    return Parsed(
        from_=froms[0] if froms else None,
        to=tuple(addresses[b"to"]),
        cc=tuple(addresses[b"cc"]),
        reply_to=tuple(addresses[b"reply-to"]),
        subject=found.get(b"subject", ""),
        date=_date(found[b"date"]) if b"date" in found else None,
        message_id=_angle_content(found.get(b"message-id", "")),
        text=text,
        html=html,
        attachments=tuple(attachments),
        inline=tuple(inline),
        snippet=snippet,
        return_path=_angle_content(found.get(b"return-path", "")),
        list_unsubscribe=found.get(b"list-unsubscribe", ""),
        x_tags=tuple(dict.fromkeys(tags)),
    )


def part(raw: bytes, part_id: str) -> PartContent | None:
    """One part's decoded content, by the section number given in Attachment.part_id; None when absent.

    A message/rfc822 part comes back whole (an .eml); a multipart has no content of its own.
    """
    node = find_part(scan(raw)[0], part_id)
    if node is None or node.kind is PartKind.MULTIPART:
        return None
    data = content.decode_transfer(raw[node.body_start:node.body_end], node.encoding)
    return PartContent(node.content_type, node.filename, data)
