"""Rendering mailnest's models as Mailpit-shaped JSON (field names as Mailpit's API v1 uses them)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..mime.wire import ProtocolWarning
from ..models import Address, Attachment, Envelope, Message, Page, Summary

INBOX = "INBOX"  # the folder of delivered mail; other folders are made by IMAP clients (moves, copies)
NULL_SENDER = "<>"  # the empty envelope sender (MAIL FROM:<>) of bounces and delivery reports


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def address(a: Address | None) -> dict[str, str] | None:
    return {"Name": a.name, "Address": a.address} if a else None


def addresses(items: tuple[Address, ...]) -> list[dict[str, str]]:
    return [{"Name": a.name, "Address": a.address} for a in items]


def folder(s: Summary) -> str:
    """The folder a message is in: "INBOX" for delivered mail, else the IMAP folder it was moved or copied to."""
    return s.folder or INBOX


def summary(s: Summary) -> dict[str, Any]:
    return {
        "ID": s.id,
        "MessageID": s.message_id,
        "Read": s.read,
        "From": address(s.from_) or {"Name": "", "Address": ""},
        "To": addresses(s.to),
        "Cc": addresses(s.cc),
        "Bcc": addresses(s.bcc),
        "ReplyTo": addresses(s.reply_to),
        "Subject": s.subject,
        "Created": rfc3339(s.created),
        "Tags": list(s.tags),
        "Size": s.size,
        "Attachments": s.attachments,
        "Snippet": s.snippet,
        "Folder": folder(s),
        "Username": s.username,
    }


def page(p: Page) -> dict[str, Any]:
    """Mailpit's MessagesSummary; `messages_unread` counts the unread among the matching messages."""
    return {
        "total": p.total,
        "unread": p.unread,
        "count": len(p.messages),
        "messages_count": p.messages_count,
        "messages_unread": p.messages_unread,
        "start": p.start,
        "tags": list(p.tags),
        "messages": [summary(s) for s in p.messages],
    }


def attachment(a: Attachment, checksums: Mapping[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"PartID": a.part_id, "FileName": a.filename or a.content_id,
                           "ContentType": a.content_type, "ContentID": a.content_id, "Size": a.size}
    if checksums is not None:
        out["Checksums"] = dict(checksums)
    return out


_ANGLE = re.compile(r"<([^<>]*)>")


def list_unsubscribe(header: str, post: str = "") -> dict[str, Any]:
    """Mailpit's ListUnsubscribe: the header, its <URI>s, and what is wrong with it (RFC 2369)."""
    links = [link.strip() for link in _ANGLE.findall(header) if link.strip()]
    errors = ""
    if header.strip() and not links:
        errors = "no <URI> found in List-Unsubscribe"
    elif any(not link.lower().startswith(("mailto:", "https:", "http:")) for link in links):
        errors = "List-Unsubscribe has a URI that is neither mailto: nor http(s):"
    return {"Header": header, "Links": links, "Errors": errors, "HeaderPost": post}


def envelope(e: Envelope) -> dict[str, Any]:
    return {
        "MailFrom": e.mail_from or NULL_SENDER,
        "RcptTo": list(e.rcpt_tos),
        "Helo": e.helo,
        "Peer": e.peer,
        "Received": rfc3339(e.received),
        "AuthUser": e.auth_user,
        "TLS": {"Version": e.tls.version, "Cipher": e.tls.cipher} if e.tls else None,
        "SMTPUTF8": e.smtputf8,
        "Source": e.source,
    }


def protocol_warnings(warnings: Iterable[ProtocolWarning]) -> list[dict[str, str]]:
    return [{"Code": w.code, "Text": w.text} for w in warnings]


def message(m: Message, checksums: Mapping[str, Mapping[str, str]] | None = None,
            warnings: Iterable[ProtocolWarning] = (), *, unsubscribe_post: str = "") -> dict[str, Any]:
    """Mailpit's Message, plus mailnest's Envelope, Folder and ProtocolWarnings (how the stored bytes break the
    line rules of RFC 5321/5322). `checksums` maps a part ID to its {MD5, SHA1, SHA256}."""
    s = m.summary
    sums = checksums or {}
    return {
        "ID": s.id,
        "MessageID": s.message_id,
        "From": address(s.from_) or {"Name": "", "Address": ""},
        "To": addresses(s.to),
        "Cc": addresses(s.cc),
        "Bcc": addresses(s.bcc),
        "ReplyTo": addresses(s.reply_to),
        # Mailpit's SMTP server writes the envelope sender as Return-Path; mailnest stores the bytes as sent, so
        # the API falls back to the envelope sender where the message has no Return-Path of its own.
        "ReturnPath": m.return_path or m.envelope.mail_from,
        "Subject": s.subject,
        "ListUnsubscribe": list_unsubscribe(m.list_unsubscribe, unsubscribe_post),
        "Date": rfc3339(m.date or s.created),
        "Created": rfc3339(s.created),
        "Tags": list(s.tags),
        "Username": s.username or m.envelope.auth_user or "",
        "Read": s.read,
        "Text": m.text,
        "HTML": m.html,
        "Size": s.size,
        "Inline": [attachment(a, sums.get(a.part_id)) for a in m.inline],
        "Attachments": [attachment(a, sums.get(a.part_id)) for a in m.attachments],
        "Envelope": envelope(m.envelope),
        "Folder": folder(s),
        "ProtocolWarnings": protocol_warnings(warnings),
    }


def canonical_header(name: str) -> str:
    """A header name as Mailpit (Go's net/textproto) spells it: `message-ID` -> `Message-Id`."""
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def headers(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Mailpit's MessageHeaders: each name (canonical spelling) with all its values, in message order."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(canonical_header(name), []).append(value)
    return grouped


def stats(total: int, unread: int, version: str) -> dict[str, Any]:
    """The data of Mailpit's `stats` event."""
    return {"Total": total, "Unread": unread, "Version": version}
