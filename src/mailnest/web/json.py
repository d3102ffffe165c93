"""Rendering mailnest's models as Mailpit-shaped JSON (field names as Mailpit's API v1 uses them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..models import Address, Attachment, Envelope, Message, Page, Summary


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def address(a: Address | None) -> dict[str, str] | None:
    return {"Name": a.name, "Address": a.address} if a else None


def addresses(items: tuple[Address, ...]) -> list[dict[str, str]]:
    return [{"Name": a.name, "Address": a.address} for a in items]


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
    }


def page(p: Page) -> dict[str, Any]:
    return {
        "total": p.total,
        "unread": p.unread,
        "count": len(p.messages),
        "messages_count": p.messages_count,
        "start": p.start,
        "tags": list(p.tags),
        "messages": [summary(s) for s in p.messages],
    }


def attachment(a: Attachment) -> dict[str, Any]:
    return {"PartID": a.part_id, "FileName": a.filename, "ContentType": a.content_type,
            "ContentID": a.content_id, "Size": a.size}


def envelope(e: Envelope) -> dict[str, Any]:
    return {
        "MailFrom": e.mail_from,
        "RcptTo": list(e.rcpt_tos),
        "Helo": e.helo,
        "Peer": e.peer,
        "Received": rfc3339(e.received),
        "AuthUser": e.auth_user,
        "TLS": {"Version": e.tls.version, "Cipher": e.tls.cipher} if e.tls else None,
        "SMTPUTF8": e.smtputf8,
        "Source": e.source,
    }


def message(m: Message) -> dict[str, Any]:
    s = m.summary
    return {
        "ID": s.id,
        "MessageID": s.message_id,
        "From": address(s.from_) or {"Name": "", "Address": ""},
        "To": addresses(s.to),
        "Cc": addresses(s.cc),
        "Bcc": addresses(s.bcc),
        "ReplyTo": addresses(s.reply_to),
        "ReturnPath": m.return_path,
        "Subject": s.subject,
        "ListUnsubscribe": {"Header": m.list_unsubscribe, "Links": [], "Errors": "", "HeaderPost": ""},
        "Date": rfc3339(m.date or s.created),
        "Created": rfc3339(s.created),
        "Tags": list(s.tags),
        "Username": m.envelope.auth_user or "",
        "Read": s.read,
        "Text": m.text,
        "HTML": m.html,
        "Size": s.size,
        "Inline": [attachment(a) for a in m.inline],
        "Attachments": [attachment(a) for a in m.attachments],
        "Envelope": envelope(m.envelope),
    }
