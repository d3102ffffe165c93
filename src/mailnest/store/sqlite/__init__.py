"""The embedded store: SQLite in WAL mode, one writer thread with group commit, read connections off the loop.

One module per job, composed by `SQLiteStore` (store.py):
- connections.py: the database file, its threads and connections;
- checkpoints.py: WAL checkpoints, off the writer, and the WAL's bounds;
- writes.py: every change as one transaction in the writer thread; a full disk as StoreFullError;
- rows.py: each table's columns named once, statements built from them, rows decoded by name;
- prepare.py: the parse/prepare path, from raw bytes to the rows the writer inserts;
- ingest.py: group-commit ingest (the SMTP 250 follows the commit);
- indexer.py: moving pending search rows into the full-text index;
- retention.py: the delivered count, the message and age limits, every deletion;
- views.py: WHERE clauses for mailboxes and queries;
- reads.py, changes.py, imap.py, tags.py: the Store protocol's methods, by subject;
- work.py: once-only work (webhooks, relay, file outputs) claimed with a lease;
- spaces.py: mailboxes on demand (POST /api/v1/mailboxes) and their retention.

Every name the single module this package replaced exported is still importable from here.
"""

from ... import events, mime, search
from ...events import Hub
from ...models import Address, Attachment, Envelope, Message, Page, Stats, Summary, TLSInfo
from ...tags import ingest_tags
from .. import schema
from ..base import FolderInfo, MailboxInfo, Query, StoreFullError
from ..faithful import faithful_envelope, faithful_text
from ..sqlite_failures import rollback, store_error
from .checkpoints import _CHECKPOINT_AFTER_BYTES, _CHECKPOINT_TICK, _WAL_REWIND_BYTES, _WAL_REWIND_FILE_BYTES
from .connections import _PARSE_THREADS
from .connections import BUSY_TIMEOUT_MS as _BUSY_TIMEOUT_MS
from .connections import WAL_SIZE_LIMIT as _WAL_SIZE_LIMIT
from .imap import ImapMethods
from .imap import ImapMethods as ImapStoreMixin
from .indexer import _INDEX_CHUNK_CHARS, _INDEX_CHUNK_ROWS, _PENDING_MAX_CHARS
from .ingest import _BATCH_MAX_BYTES, _BATCH_MAX_MESSAGES, _NUDGE
from .prepare import (
    BODIES_KEPT_UP_TO,
    PREPARE_ON_LOOP_UP_TO,
    _attachment_json,
    _bcc,
    _chars,
    _faithful_prepared,
    _parse_or_empty,
    _Pending,
    _Prepared,
    insert_prepared,
    prepare,
)
from .rows import (
    _INSERT_BODY,
    _INSERT_MESSAGE,
    _MESSAGE_EXTRA,
    _SUMMARY_COLUMNS,
    _SUMMARY_DECODE,
    _SUMMARY_ENCODE,
    _SUMMARY_WIDTH,
    BODY_COLUMNS,
    MESSAGE_COLUMNS,
    SUMMARY_COLUMNS,
    SUMMARY_FIELDS,
    _addr_json,
    _addr_load,
    _insert,
    _sender_json,
    _sender_load,
    _tags_json,
    _tags_load,
    _to_json,
    _utc,
    envelope_from_json,
    envelope_to_json,
    new_id,
    summary_from_row,
    summary_row,
)
from .store import SQLiteStore
from .tags import TagMethods
from .tags import TagMethods as TagStoreMixin
from .views import _mailbox_anywhere, mailbox_clause, view
from .writes import _FULL_REWIND_EVERY

__all__ = [
    "BODIES_KEPT_UP_TO",
    "BODY_COLUMNS",
    "MESSAGE_COLUMNS",
    "PREPARE_ON_LOOP_UP_TO",
    "SUMMARY_COLUMNS",
    "SUMMARY_FIELDS",
    "_BATCH_MAX_BYTES",
    "_BATCH_MAX_MESSAGES",
    "_BUSY_TIMEOUT_MS",
    "_CHECKPOINT_AFTER_BYTES",
    "_CHECKPOINT_TICK",
    "_FULL_REWIND_EVERY",
    "_INDEX_CHUNK_CHARS",
    "_INDEX_CHUNK_ROWS",
    "_INSERT_BODY",
    "_INSERT_MESSAGE",
    "_MESSAGE_EXTRA",
    "_NUDGE",
    "_PARSE_THREADS",
    "_PENDING_MAX_CHARS",
    "_SUMMARY_COLUMNS",
    "_SUMMARY_DECODE",
    "_SUMMARY_ENCODE",
    "_SUMMARY_WIDTH",
    "_WAL_REWIND_BYTES",
    "_WAL_REWIND_FILE_BYTES",
    "_WAL_SIZE_LIMIT",
    "Address",
    "Attachment",
    "Envelope",
    "FolderInfo",
    "Hub",
    "ImapMethods",
    "ImapStoreMixin",
    "MailboxInfo",
    "Message",
    "Page",
    "Query",
    "SQLiteStore",
    "Stats",
    "StoreFullError",
    "Summary",
    "TLSInfo",
    "TagMethods",
    "TagStoreMixin",
    "_Pending",
    "_Prepared",
    "_addr_json",
    "_addr_load",
    "_attachment_json",
    "_bcc",
    "_chars",
    "_faithful_prepared",
    "_insert",
    "_mailbox_anywhere",
    "_parse_or_empty",
    "_sender_json",
    "_sender_load",
    "_tags_json",
    "_tags_load",
    "_to_json",
    "_utc",
    "envelope_from_json",
    "envelope_to_json",
    "events",
    "faithful_envelope",
    "faithful_text",
    "ingest_tags",
    "insert_prepared",
    "mailbox_clause",
    "mime",
    "new_id",
    "prepare",
    "rollback",
    "schema",
    "search",
    "store_error",
    "summary_from_row",
    "summary_row",
    "view",
]
