"""Rows: each table's columns named once, the statements built from them, and every row decoded by name here.

Pure (no connection, no I/O): the encodings of addresses, tags, times and envelopes as they sit in columns.
A backend that stores the same shapes (PostgreSQL) may share them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ...models import Address, Envelope, Summary, TLSInfo


def new_id() -> str:
    """22 URL-safe characters from 132 random bits, the shape of Mailpit's IDs."""
    return base64.urlsafe_b64encode(os.urandom(17))[:22].decode()


# json.dumps with keyword arguments builds a new encoder on every call; ingest encodes eight values a message.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _addr_json(addresses: Sequence[Address]) -> str:
    return _to_json([[a.name, a.address] for a in addresses])


def _addr_load(text: str | None) -> tuple[Address, ...]:
    # Most address lists are empty (Cc, Bcc, Reply-To): '[]' costs no JSON parse.
    return tuple(Address(n, a) for n, a in json.loads(text)) if text and text != "[]" else ()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _sender_json(sender: Address | None) -> str | None:
    return _addr_json([sender]) if sender is not None else None


def _sender_load(text: str | None) -> Address | None:
    found = json.loads(text) if text else None
    return Address(*found[0]) if found else None


def _tags_json(tags: Sequence[str]) -> str:
    return _to_json(list(tags))


def _tags_load(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text != "[]" else ()


def _null_if_empty(text: str) -> str | None:
    return text or None


def _empty_if_null(text: str | None) -> str:
    return text or ""


# -- rows: each table's columns are named once, statements are built from them, rows are decoded by name --

# (column of `messages`, field of Summary, to SQL, from SQL; None: stored as it is): what a summary is made of.
# A new Summary field is a line here (and its column in a migration); every SELECT and INSERT follows.
SUMMARY_FIELDS: tuple[tuple[str, str, Callable[[Any], Any] | None, Callable[[Any], Any] | None], ...] = (
    ("uid", "uid", None, None),  # given by the database; never written
    ("id", "id", None, None),
    ("message_id", "message_id", None, None),
    ("read", "read", int, bool),
    ("from_json", "from_", _sender_json, _sender_load),
    ("to_json", "to", _addr_json, _addr_load),
    ("cc_json", "cc", _addr_json, _addr_load),
    ("bcc_json", "bcc", _addr_json, _addr_load),
    ("reply_to_json", "reply_to", _addr_json, _addr_load),
    ("subject", "subject", None, None),
    ("created", "created", datetime.timestamp, _utc),
    ("size", "size", None, None),
    ("attachments", "attachments", None, None),
    ("snippet", "snippet", None, None),
    ("tags", "tags", _tags_json, _tags_load),
    ("folder", "folder", None, None),
    ("auth_user", "username", _null_if_empty, _empty_if_null),
)
SUMMARY_COLUMNS = tuple(column for column, *_ in SUMMARY_FIELDS)
_SUMMARY_COLUMNS = ", ".join(f"m.{column}" for column in SUMMARY_COLUMNS)  # a SELECT list over `messages m`
_SUMMARY_WIDTH = len(SUMMARY_COLUMNS)
_SUMMARY_DECODE = tuple((field, decode) for _, field, _, decode in SUMMARY_FIELDS)
_SUMMARY_ENCODE = tuple((column, field, encode) for column, field, encode, _ in SUMMARY_FIELDS if column != "uid")
# Every column an ingest writes: the summary's, then what only a whole message shows. `folder`, `owner` and
# `flags` are the insert's (an IMAP APPEND files the message), not the parse's.
MESSAGE_COLUMNS = (*(column for column, _, _ in _SUMMARY_ENCODE), "sent", "inline", "mail_from", "envelope_json",
                   "owner", "flags")
BODY_COLUMNS = ("uid", "raw", "raw_codec", "text", "html", "extra_json")  # raw as codec.py stores it
# What `get` reads besides the summary: (column as selected, its name in the decoded row).
_MESSAGE_EXTRA = (("m.sent", "sent"), ("m.envelope_json", "envelope_json"), ("m.flags", "flags"),
                  ("b.text", "text"), ("b.html", "html"), ("b.extra_json", "extra_json"))


def _insert(table: str, columns: Sequence[str]) -> str:
    """An INSERT of named parameters: the values are a dict by column name, never a tuple matched by position."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


_INSERT_MESSAGE = _insert("messages", MESSAGE_COLUMNS)
_INSERT_BODY = _insert("bodies", BODY_COLUMNS)


def summary_row(summary: Summary) -> dict[str, Any]:
    """The `messages` columns of a summary, by name (not the uid, which the database gives)."""
    return {column: getattr(summary, field) if encode is None else encode(getattr(summary, field))
            for column, field, encode in _SUMMARY_ENCODE}


def envelope_to_json(envelope: Envelope) -> str:
    return _to_json(
        {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "helo": envelope.helo,
            "peer": envelope.peer,
            "received": envelope.received.timestamp() if envelope.received else None,
            "auth_user": envelope.auth_user,
            "tls": [envelope.tls.version, envelope.tls.cipher] if envelope.tls else None,
            "smtputf8": envelope.smtputf8,
            "source": envelope.source,
        }
    )


def envelope_from_json(text: str) -> Envelope:
    data = json.loads(text)
    return Envelope(
        mail_from=data["mail_from"],
        rcpt_tos=tuple(data["rcpt_tos"]),
        helo=data.get("helo", ""),
        peer=data.get("peer", ""),
        received=_utc(data["received"]) if data.get("received") is not None else None,
        auth_user=data.get("auth_user"),
        tls=TLSInfo(*data["tls"]) if data.get("tls") else None,
        smtputf8=bool(data.get("smtputf8")),
        source=data.get("source", "smtp"),
    )


def summary_from_row(row: Sequence[Any]) -> Summary:
    """The Summary of a row selected as `SELECT {_SUMMARY_COLUMNS}` (the columns SUMMARY_FIELDS names, in its
    order; columns after those are left to the caller)."""
    return Summary(**{field: value if decode is None else decode(value)
                      for (field, decode), value in zip(_SUMMARY_DECODE, row, strict=False)})

