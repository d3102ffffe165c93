"""The database layout and its migrations, keyed by `PRAGMA user_version`.

Summary columns live in `messages`; raw bytes and bodies live in `bodies`, so lists and searches never
touch message bodies. `uid` is AUTOINCREMENT so it is never reused, even after the newest message is deleted.

Each version's SQL is written out here literally, once, and never edited after it ships: an old database is
upgraded by exactly the statements that built a new one at that version. A change is a new version at the end.
The layout of the search tables is search.py's contract (FTS_COLUMNS, c0..c9 in that order); a test checks that
the two agree. Each version is applied in its own BEGIN IMMEDIATE ... COMMIT, so a failure part-way leaves the
database at the version before, and the next start tries again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

log = logging.getLogger(__name__)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE messages (
            uid INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            folder TEXT NOT NULL DEFAULT '',
            owner TEXT NOT NULL DEFAULT '',
            message_id TEXT NOT NULL DEFAULT '',
            subject TEXT NOT NULL DEFAULT '',
            from_json TEXT,
            to_json TEXT NOT NULL DEFAULT '[]',
            cc_json TEXT NOT NULL DEFAULT '[]',
            bcc_json TEXT NOT NULL DEFAULT '[]',
            reply_to_json TEXT NOT NULL DEFAULT '[]',
            created REAL NOT NULL,
            sent REAL,
            size INTEGER NOT NULL,
            attachments INTEGER NOT NULL DEFAULT 0,
            inline INTEGER NOT NULL DEFAULT 0,
            snippet TEXT NOT NULL DEFAULT '',
            read INTEGER NOT NULL DEFAULT 0,
            flags TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            mail_from TEXT NOT NULL DEFAULT '',
            auth_user TEXT,
            envelope_json TEXT NOT NULL
        )""",
        "CREATE INDEX messages_folder_uid ON messages (folder, owner, uid)",
        # Totals and unread counts of a view read only this index.
        "CREATE INDEX messages_folder_read ON messages (folder, owner, read)",
        "CREATE INDEX messages_created ON messages (created)",
        """CREATE TABLE bodies (
            uid INTEGER PRIMARY KEY,
            raw BLOB NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            html TEXT NOT NULL DEFAULT '',
            extra_json TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE recipients (
            mailbox TEXT NOT NULL,
            uid INTEGER NOT NULL,
            PRIMARY KEY (mailbox, uid)
        ) WITHOUT ROWID""",
        "CREATE INDEX recipients_uid ON recipients (uid)",
        "CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(subject, from_addr, to_addr, cc_addr, bcc_addr, "
        "reply_to_addr, body, message_id, envelope_from, rcpt, tokenize='trigram case_sensitive 1', detail=full, "
        "columnsize=0)",
        """CREATE TRIGGER messages_cleanup AFTER DELETE ON messages BEGIN
            DELETE FROM bodies WHERE uid = old.uid;
            DELETE FROM recipients WHERE uid = old.uid;
            DELETE FROM search WHERE rowid = old.uid;
        END""",
    ),
    (  # 2: IMAP folders, subscriptions and \Recent marks per login
        """CREATE TABLE IF NOT EXISTS imap_folders (
        owner TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (owner, name)) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS imap_subscriptions (
        owner TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (owner, name)) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS imap_recent (
        owner TEXT NOT NULL, folder TEXT NOT NULL, last_uid INTEGER NOT NULL,
        PRIMARY KEY (owner, folder)) WITHOUT ROWID""",
    ),
    (  # 3: rows wait in search_pending until indexed in bulk (see search.py)
        "CREATE TABLE IF NOT EXISTS search_pending (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, c0 TEXT NOT NULL, "
        "c1 TEXT NOT NULL, c2 TEXT NOT NULL, c3 TEXT NOT NULL, c4 TEXT NOT NULL, c5 TEXT NOT NULL, c6 TEXT NOT NULL, "
        "c7 TEXT NOT NULL, c8 TEXT NOT NULL, c9 TEXT NOT NULL)",
        "CREATE VIEW IF NOT EXISTS search_text AS SELECT id, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 FROM "
        "search_content UNION ALL SELECT id, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 FROM search_pending",
        # FTS5 merges segments 16 at a time instead of 4: a third less index work per message (prose, chunks of
        # 16 messages: 457 -> 310 µs), with queries on 20,000 messages as fast (benchmarks/README.md).
        "INSERT INTO search (search, rank) VALUES ('automerge', 16)",
        # Totals of delivered mail (the `info` call, every live `stats` event), kept by triggers: counting
        # 100,000 rows took 42 ms, twice a second while mail arrived and a browser watched.
        "CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 1), total INTEGER NOT NULL, "
        "unread INTEGER NOT NULL, size INTEGER NOT NULL)",
        "INSERT INTO totals SELECT 1, count(*), coalesce(sum(read = 0), 0), coalesce(sum(size), 0) FROM messages "
        "WHERE folder = '' AND owner = ''",
        """CREATE TRIGGER totals_insert AFTER INSERT ON messages WHEN new.folder = '' AND new.owner = '' BEGIN
            UPDATE totals SET total = total + 1, unread = unread + (new.read = 0), size = size + new.size;
        END""",
        """CREATE TRIGGER totals_delete AFTER DELETE ON messages WHEN old.folder = '' AND old.owner = '' BEGIN
            UPDATE totals SET total = total - 1, unread = unread - (old.read = 0), size = size - old.size;
        END""",
        """CREATE TRIGGER totals_update AFTER UPDATE OF read, size, folder, owner ON messages BEGIN
            UPDATE totals SET
                total = total - (old.folder = '' AND old.owner = '') + (new.folder = '' AND new.owner = ''),
                unread = unread - (old.folder = '' AND old.owner = '' AND old.read = 0)
                                + (new.folder = '' AND new.owner = '' AND new.read = 0),
                size = size - (CASE WHEN old.folder = '' AND old.owner = '' THEN old.size ELSE 0 END)
                            + (CASE WHEN new.folder = '' AND new.owner = '' THEN new.size ELSE 0 END);
        END""",
        "DROP TRIGGER messages_cleanup",
        """CREATE TRIGGER messages_cleanup AFTER DELETE ON messages BEGIN
            DELETE FROM bodies WHERE uid = old.uid;
            DELETE FROM recipients WHERE uid = old.uid;
            DELETE FROM search WHERE rowid = old.uid;
            DELETE FROM search_pending WHERE id = old.uid;
        END""",
    ),
    (  # 4: once-only work (webhooks, relay, file outputs) still to do, one row per message and kind (base.WorkItem)
        """CREATE TABLE work (uid INTEGER NOT NULL, kind TEXT NOT NULL, holder TEXT NOT NULL,
            lease_until REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (uid, kind)) WITHOUT ROWID""",
        "CREATE INDEX work_lease ON work (lease_until)",
        "DROP TRIGGER messages_cleanup",
        """CREATE TRIGGER messages_cleanup AFTER DELETE ON messages BEGIN
            DELETE FROM bodies WHERE uid = old.uid;
            DELETE FROM recipients WHERE uid = old.uid;
            DELETE FROM search WHERE rowid = old.uid;
            DELETE FROM search_pending WHERE id = old.uid;
            DELETE FROM work WHERE uid = old.uid;
        END""",
    ),
    (  # 5: the Message-IDs of delivered mail, claimed at ingest with --ignore-duplicate-ids only (empty without)
        """CREATE TABLE IF NOT EXISTS message_ids (message_id TEXT PRIMARY KEY, uid INTEGER NOT NULL) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS message_ids_uid ON message_ids (uid)",
        "DROP TRIGGER messages_cleanup",
        """CREATE TRIGGER messages_cleanup AFTER DELETE ON messages BEGIN
            DELETE FROM bodies WHERE uid = old.uid;
            DELETE FROM recipients WHERE uid = old.uid;
            DELETE FROM search WHERE rowid = old.uid;
            DELETE FROM search_pending WHERE id = old.uid;
            DELETE FROM work WHERE uid = old.uid;
            DELETE FROM message_ids WHERE uid = old.uid;
        END""",
    ),
    (  # 6: how each row's raw bytes are stored (store/codec.py): 0 as received, 1 one zstd frame (--compress)
        "ALTER TABLE bodies ADD COLUMN raw_codec INTEGER NOT NULL DEFAULT 0",
    ),
    (  # 7: spaces, the throwaway address spaces of POST /api/v1/mailboxes (store/base.py Space)
        """CREATE TABLE spaces (domain TEXT PRIMARY KEY, created REAL NOT NULL,
            max_messages INTEGER NOT NULL DEFAULT 0, max_age REAL, webhook TEXT) WITHOUT ROWID""",
    ),
)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> None:
    """Bring a database (on an autocommit connection) to the newest layout, one version per transaction.

    `migrations` is for tests: a prefix of MIGRATIONS builds a database of an earlier version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise RuntimeError(
            f"this database was written by a newer mailnest (schema {version}, this one knows {len(migrations)})"
        )
    for number, statements in enumerate(migrations[version:], start=version + 1):
        # IMMEDIATE takes the write lock first, so two processes opening one new file cannot both migrate it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:  # another process got here first
                conn.execute("ROLLBACK")
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.error("migrating the database to schema %d failed; it stays at schema %d", number, number - 1)
            raise
        conn.execute("COMMIT")
