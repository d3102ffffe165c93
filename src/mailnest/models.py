"""The nouns every front door shares: messages, their envelope, addresses, attachments.

All frozen: a message is captured once and never rewritten. Mutable state (read flag, tags, IMAP flags)
lives in the store and comes back as fresh objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    username: str = ""  # the SMTP AUTH user it was sent with, "" when none (Mailpit's Username)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (an event between nodes carries them); `Summary.from_json` gives back an equal one.
        An address is [name, address]: a NOTIFY payload is small."""
        return {
            "id": self.id, "uid": self.uid, "message_id": self.message_id, "read": self.read,
            "from": [self.from_.name, self.from_.address] if self.from_ is not None else None,
            "to": _addresses_json(self.to), "cc": _addresses_json(self.cc), "bcc": _addresses_json(self.bcc),
            "reply_to": _addresses_json(self.reply_to), "subject": self.subject,
            "created": self.created.isoformat(), "size": self.size, "attachments": self.attachments,
            "snippet": self.snippet, "tags": list(self.tags), "folder": self.folder, "username": self.username,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Summary:
        """The Summary `to_json` wrote; ValueError naming the field when `data` is not one (it came from
        another process, so every field is checked)."""
        try:
            created = datetime.fromisoformat(_field(data, "created", str))
        except ValueError as exc:
            raise ValueError(f"summary field 'created': {exc}") from None
        sender = data.get("from")
        tags = _field(data, "tags", list)
        if not all(isinstance(t, str) for t in tags):
            raise ValueError(f"summary field 'tags': expected a list of str, got {tags!r}")
        return Summary(
            id=_field(data, "id", str), uid=_field(data, "uid", int), message_id=_field(data, "message_id", str),
            read=_field(data, "read", bool), from_=None if sender is None else _address_from_json(sender),
            to=_addresses_from_json(data, "to"), cc=_addresses_from_json(data, "cc"),
            bcc=_addresses_from_json(data, "bcc"), reply_to=_addresses_from_json(data, "reply_to"),
            subject=_field(data, "subject", str), created=created, size=_field(data, "size", int),
            attachments=_field(data, "attachments", int), snippet=_field(data, "snippet", str),
            tags=tuple(tags), folder=_field(data, "folder", str),
            # A node of an earlier version sends no username.
            username=_field(data, "username", str) if "username" in data else "")


def _addresses_json(addresses: tuple[Address, ...]) -> list[list[str]]:
    return [[a.name, a.address] for a in addresses]


def _field(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"summary field {key!r}: expected {kind.__name__}, got {value!r}")
    return value


def _address_from_json(value: Any) -> Address:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError(f"an address is [name, address], not {value!r}")
    return Address(value[0], value[1])


def _addresses_from_json(data: Mapping[str, Any], key: str) -> tuple[Address, ...]:
    return tuple(_address_from_json(v) for v in _field(data, key, list))


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
