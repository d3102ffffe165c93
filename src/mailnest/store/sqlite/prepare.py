"""The parse/prepare path: one received message turned into the rows the writer inserts, before any transaction.

Parsing is the costly part of ingest, so it happens here, on the loop for a small message or in a parse thread
for a large one, never in the writer (whose every commit other clients' 250s wait for). `insert_prepared` is
the only statement sequence that files a message.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ... import mime, search
from ...models import Address, Attachment, Envelope, Summary
from ...tags import ingest_tags
from .. import codec
from ..faithful import faithful_envelope, faithful_text
from .rows import _INSERT_BODY, _INSERT_MESSAGE, _to_json, envelope_to_json, new_id, summary_row

log = logging.getLogger("mailnest.store.sqlite")

PREPARE_ON_LOOP_UP_TO = 16 * 1024  # bytes; larger messages are parsed in a parse thread, never the writer
BODIES_KEPT_UP_TO = 256 * 1024  # characters of decoded text + HTML stored beside the raw message


class _Prepared(NamedTuple):
    """One message ready for the writer: everything computed before the transaction."""

    row: dict[str, Any]  # `messages` columns by name (MESSAGE_COLUMNS but owner and flags, the insert's)
    body: dict[str, Any]  # `bodies` columns by name, the uid excepted
    fts: tuple[str, ...]  # the search row (search.index_values)
    mailboxes: list[str]  # the envelope recipients, lower-cased
    summary: Summary  # as published, once the uid is known


@dataclass(slots=True)
class _Pending:
    """One `add()` waiting for the writer; its future resolves after the commit."""

    raw: bytes
    envelope: Envelope
    tags: tuple[str, ...]
    read: bool
    future: asyncio.Future[Summary]
    prepared: _Prepared | None = None


def _chars(fts: Sequence[str]) -> int:
    """search_pending.n: the row's characters, at least 1 so that every pending row counts as work to do."""
    return max(1, sum(map(len, fts)))


def _parse_or_empty(raw: bytes) -> mime.Parsed:
    # mime.parse is built never to raise; if it ever does, the message is still stored (as received),
    # just with fewer fields, because a 250 must never be lost to a parser bug.
    try:
        return mime.parse(raw)
    except Exception:
        log.exception("could not parse a %d-byte message; storing it unparsed", len(raw))
        return mime.Parsed(from_=None, to=(), cc=(), reply_to=(), subject="", date=None, message_id="",
                           text=raw[:100_000].decode("utf-8", "replace"), html="", attachments=(), inline=(),
                           snippet="")


def _bcc(parsed: mime.Parsed, envelope: Envelope) -> tuple[Address, ...]:
    visible = {a.address.lower() for a in (*parsed.to, *parsed.cc)}
    seen: set[str] = set()
    bcc = []
    for rcpt in envelope.rcpt_tos:
        key = rcpt.lower()
        if key not in visible and key not in seen:
            seen.add(key)
            bcc.append(Address("", rcpt))
    return tuple(bcc)


def _attachment_json(a: Attachment) -> dict[str, Any]:
    return {"part_id": a.part_id, "filename": a.filename, "content_type": a.content_type,
            "content_id": a.content_id, "size": a.size, "inline": a.inline}


def prepare(raw: bytes, envelope: Envelope, tags: Sequence[str] = (), read: bool = False, *,
            use_message_dates: bool = False, compress: bool = False) -> _Prepared:
    """Everything one message needs before the transaction: parse once, build the rows. `created` is the arrival
    time, or with `use_message_dates` the Date header when it parses (the envelope keeps the arrival). With
    `compress` the raw bytes are stored as codec.py compresses them (here, off the writer: in a parse thread for
    a large message); the size stays the message's own."""
    envelope = faithful_envelope(envelope)
    if envelope.received is None:
        envelope = replace(envelope, received=datetime.now(UTC))
    assert envelope.received is not None
    parsed = _parse_or_empty(raw)
    created = parsed.date if use_message_dates and parsed.date is not None else envelope.received  # aware
    bcc = _bcc(parsed, envelope)
    all_tags = ingest_tags(x_tags=parsed.x_tags, to=parsed.to, cc=parsed.cc, envelope=envelope,
                           explicit=tuple(faithful_text(t) for t in tags))
    mailboxes = sorted({r.lower() for r in envelope.rcpt_tos})
    summary = Summary(
        id=new_id(), uid=0, message_id=parsed.message_id, read=read, from_=parsed.from_, to=parsed.to,
        cc=parsed.cc, bcc=bcc, reply_to=parsed.reply_to, subject=parsed.subject, created=created,
        size=len(raw), attachments=len(parsed.attachments), snippet=parsed.snippet, tags=all_tags,
        username=envelope.auth_user or "",
    )
    row = summary_row(summary)
    row.update(sent=parsed.date.timestamp() if parsed.date else None, inline=len(parsed.inline),
               mail_from=envelope.mail_from.lower(), envelope_json=envelope_to_json(envelope))
    extra: dict[str, object] = {
        "attachments": [_attachment_json(a) for a in parsed.attachments],
        "inline": [_attachment_json(a) for a in parsed.inline],
        "return_path": parsed.return_path,
        "list_unsubscribe": parsed.list_unsubscribe,
    }
    if len(parsed.text) + len(parsed.html) > BODIES_KEPT_UP_TO:
        # Keeping a copy of a huge decoded body would double what a big message writes; reading it back is
        # one parse of the raw bytes (about a millisecond for 5 MB), so get() re-derives it instead.
        extra["bodies_in_raw"] = True
        body: dict[str, Any] = {"text": "", "html": "", "extra_json": _to_json(extra)}
    else:
        body = {"text": parsed.text, "html": parsed.html, "extra_json": _to_json(extra)}
    body["raw"], body["raw_codec"] = codec.encode(raw, compress)
    fts = search.index_values(
        subject=parsed.subject, from_=parsed.from_, to=parsed.to, cc=parsed.cc, bcc=bcc,
        reply_to=parsed.reply_to, message_id=parsed.message_id, text=parsed.text, html=parsed.html,
        envelope_from=envelope.mail_from, mailboxes=mailboxes,
        attachment_names=[a.filename for a in parsed.attachments],
    )
    return _Prepared(row, body, fts, mailboxes, summary)


def _faithful_prepared(prepared: _Prepared) -> _Prepared:
    """The same rows with every text SQLite can store (see faithful_text): for a parsed field that kept a lone
    surrogate, so that the message is stored rather than refused."""
    def clean(values: dict[str, Any]) -> dict[str, Any]:
        return {k: faithful_text(v) if isinstance(v, str) else v for k, v in values.items()}

    return prepared._replace(row=clean(prepared.row), body=clean(prepared.body),
                             fts=tuple(faithful_text(v) for v in prepared.fts),
                             mailboxes=[faithful_text(m) for m in prepared.mailboxes])


def insert_prepared(conn: sqlite3.Connection, prepared: _Prepared, *, folder: str = "", owner: str = "",
                    flags: str = "") -> int:
    """Write one prepared message; returns its uid. Delivered mail (folder '') is also filed under each envelope
    recipient's mailbox; IMAP folder copies are not."""
    uid = conn.execute(_INSERT_MESSAGE, {**prepared.row, "folder": folder, "owner": owner, "flags": flags}
                       ).lastrowid
    assert uid is not None
    conn.execute(_INSERT_BODY, {**prepared.body, "uid": uid})
    conn.execute(search.INSERT_PENDING, (uid, _chars(prepared.fts), *prepared.fts))
    if not folder:
        conn.executemany("INSERT OR IGNORE INTO recipients (mailbox, uid) VALUES (?, ?)",
                         [(mb, uid) for mb in prepared.mailboxes])
    return uid
