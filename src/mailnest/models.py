"""The nouns every front door shares: messages, their envelope, addresses, attachments.

All frozen: a message is captured once and never rewritten. Mutable state (read flag, tags, IMAP flags)
lives in the store and comes back as fresh objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox as written in a header: display name (decoded) and addr-spec."""

    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True, slots=True)
class TLSInfo:
    version: str
    cipher: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the SMTP conversation said, as opposed to what the headers say."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    helo: str = ""
    peer: str = ""  # "host:port" of the client, as seen by the listener
    received: datetime | None = None  # aware, UTC; the store fills it in when None
    auth_user: str | None = None
    tls: TLSInfo | None = None
    smtputf8: bool = False
    source: str = "smtp"  # smtp | api | imap | import


@dataclass(frozen=True, slots=True)
class Attachment:
    """One non-body MIME leaf. `part_id` is the IMAP-style section number ("2", "1.2"), as Mailpit uses."""

    part_id: str
    filename: str
    content_type: str
    content_id: str
    size: int  # decoded size in bytes (estimated from the encoded length for base64)
    inline: bool = False


@dataclass(frozen=True, slots=True)
class Summary:
    """What a listing shows: only columns a list or search reads, never bodies."""

    id: str  # opaque public ID (Mailpit style)
    uid: int  # the store's ever-growing integer; the IMAP UID
    message_id: str
    read: bool
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]  # envelope recipients absent from To/Cc
    reply_to: tuple[Address, ...]
    subject: str
    created: datetime  # time received, aware UTC
    size: int
    attachments: int
    snippet: str
    tags: tuple[str, ...] = ()
    folder: str = ""  # '' for delivered mail, else the IMAP folder a client filed it in (see Store.folders)


@dataclass(frozen=True, slots=True)
class Message:
    """A whole parsed message. `raw` is not held here: fetch it from the store when needed."""

    summary: Summary
    date: datetime | None  # the Date header, when parseable
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    inline: tuple[Attachment, ...]
    envelope: Envelope
    return_path: str = ""
    list_unsubscribe: str = ""
    flags: tuple[str, ...] = field(default=())  # IMAP system flags and keywords, e.g. ("\\Seen", "$Label1")

    @property
    def id(self) -> str:
        return self.summary.id


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list or search."""

    total: int  # messages in the view (mailbox or all), before the query
    unread: int  # unread in the view
    messages_count: int  # messages matching the query
    start: int
    messages: tuple[Summary, ...]
    tags: tuple[str, ...] = ()
    messages_unread: int = 0  # unread among the messages matching the query

@dataclass(frozen=True, slots=True)
class Stats:
    total: int
    unread: int
    size: int
    tags: tuple[str, ...] = ()
