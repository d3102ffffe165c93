"""What the MCP tools answer: typed shapes (their JSON schemas are the tools' output schemas), built from the
client's views of mailnest's JSON (`mailnest.received`).

Pure: no I/O. Bodies are cut to a caller-chosen number of characters, so one newsletter cannot fill an agent's
context; `truncated` says when that happened.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from mailnest.mime.content import visible_text
from mailnest.models import Address
from mailnest.received import Mail, MailPage, MailSummary

_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_SPACES = re.compile(r"[ \t\r\f\v]+")


class MessageSummary(BaseModel):
    """One message of a listing, search or wait, without bodies."""

    id: str = Field(description="The message ID: pass it to get_message or delete_messages")
    subject: str
    sender: str = Field(description="The From header, as 'Name <address>'")
    to: list[str]
    cc: list[str]
    bcc: list[str] = Field(description="Envelope recipients missing from the headers")
    created: str = Field(description="When mailnest received it (ISO 8601, UTC)")
    size: int = Field(description="Size in bytes, as received")
    snippet: str = Field(description="The start of the text")
    read: bool
    tags: list[str]
    attachments: int = Field(description="How many attachments it has")


class MessageList(BaseModel):
    """One page of matching messages, newest first."""

    matched: int = Field(description="How many messages match in all (the page may hold fewer)")
    start: int = Field(description="How many newer matches were skipped (the start argument)")
    messages: list[MessageSummary]


class AttachmentInfo(BaseModel):
    part_id: str
    filename: str
    content_type: str
    size: int
    inline: bool = Field(description="True for a part the HTML shows inline (cid:), False for an attachment")


class MessageDetail(BaseModel):
    """One whole message: text, HTML reduced to text, headers, links and one-time codes."""

    id: str
    message_id: str = Field(description="The Message-ID header")
    subject: str
    sender: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    reply_to: list[str]
    date: str = Field(description="The Date header (ISO 8601), empty when it has none")
    envelope_from: str = Field(description="MAIL FROM of the SMTP envelope ('<>' for bounces)")
    envelope_to: list[str] = Field(description="RCPT TO of the SMTP envelope")
    tags: list[str]
    text: str = Field(description="The plain-text body")
    html_text: str = Field(description="The HTML body reduced to its visible text")
    html: str | None = Field(description="The HTML source, only when include_html was true")
    truncated: bool = Field(description="True when a body was cut to max_chars")
    links: list[str] = Field(description="Every URL in the text and HTML (hrefs and visible text), in order")
    codes: list[str] = Field(description="One-time codes (4 to 8 digits unless code_pattern says otherwise)")
    headers: dict[str, list[str]] = Field(description="Every header, decoded; repeated headers keep every value")
    attachments: list[AttachmentInfo]


class WaitResult(BaseModel):
    """The messages a wait returned, newest first, in full."""

    messages: list[MessageDetail]


class DeleteResult(BaseModel):
    deleted: int = Field(description="For a query or all: how many messages matched just before the delete. "
                                     "For ids: how many IDs were given (an ID already gone is skipped)")
    scope: str = Field(description="What was deleted: the IDs, the query or everything")


class SendResult(BaseModel):
    id: str = Field(description="The ID of the stored message")


def _addresses(addresses: tuple[Address, ...]) -> list[str]:
    return [str(a) for a in addresses]


def summary(s: MailSummary) -> MessageSummary:
    return MessageSummary(id=s.id, subject=s.subject, sender=str(s.from_ or ""), to=_addresses(s.to),
                          cc=_addresses(s.cc), bcc=_addresses(s.bcc),
                          created=s.created.isoformat() if s.created else "", size=s.size, snippet=s.snippet,
                          read=s.read, tags=list(s.tags), attachments=s.attachments)


def page(p: MailPage) -> MessageList:
    return MessageList(matched=p.messages_count, start=p.start, messages=[summary(s) for s in p])


def readable(html: str) -> str:
    """The visible text of an HTML body, one blank line at most between paragraphs."""
    text = _SPACES.sub(" ", visible_text(html))
    return _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n"))).strip()


def _cut(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)


def detail(mail: Mail, *, max_chars: int, include_html: bool, code_pattern: str | None) -> MessageDetail:
    """`code_pattern` must already be known to compile (the tool checks it before fetching)."""
    text, text_cut = _cut(mail.text, max_chars)
    html_text, html_cut = _cut(readable(mail.html), max_chars) if mail.html else ("", False)
    html, source_cut = _cut(mail.html, max_chars) if include_html else (None, False)
    envelope = mail.envelope
    attachments = [AttachmentInfo(part_id=a.part_id, filename=a.filename, content_type=a.content_type,
                                  size=a.size, inline=a.inline) for a in (*mail.attachments, *mail.inline)]
    return MessageDetail(
        id=mail.id, message_id=mail.message_id, subject=mail.subject, sender=str(mail.from_ or ""),
        to=_addresses(mail.to), cc=_addresses(mail.cc), bcc=_addresses(mail.bcc),
        reply_to=_addresses(mail.reply_to), date=mail.date.isoformat() if mail.date else "",
        envelope_from=envelope.mail_from if envelope else "",
        envelope_to=list(envelope.rcpt_tos) if envelope else [], tags=list(mail.tags),
        text=text, html_text=html_text, html=html, truncated=text_cut or html_cut or source_cut,
        links=list(mail.links), codes=mail.codes(code_pattern) if code_pattern else mail.codes(),
        headers=mail.headers, attachments=attachments,
    )
