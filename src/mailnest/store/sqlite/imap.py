"""IMAP over SQLite: flags, folders, subscriptions, \\Recent, APPEND/COPY/MOVE, EXPUNGE.

Views. A view is what one IMAP mailbox shows to one login:
- INBOX of a login: delivered mail (folder '') whose envelope named that login (`recipients`);
- INBOX of the catch-all login (`login=None` here): all delivered mail;
- any other folder: rows with that folder name owned by that login (owner '*' for the catch-all).
A message is stored once; flags and deletion belong to the message, so every view showing it agrees, and
\\Seen is the API's read state. APPEND, COPY and MOVE create new rows with new uids; uids are never reused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ... import search
from ...events import (
    FlagsChanged,
    FolderRenamed,
    Hub,
    MessageAdded,
    MessagesDeleted,
    MessagesFiled,
    ReadChanged,
)
from ...mime.header import block_end
from ...models import Envelope, Summary
from .. import codec
from ..base import INBOX, FolderError, FolderStatus, View, owner_of
from ..shared import check_rename, imap_view_where
from .connections import Connections
from .ingest import Ingest
from .prepare import insert_prepared
from .retention import Deleted, Retention, rows_where_in
from .rows import _SUMMARY_COLUMNS, BODY_COLUMNS, MESSAGE_COLUMNS, new_id, summary_from_row
from .writes import Writer

_SEEN = "\\Seen"
_RECENT = "\\Recent"
_CHUNK = 500
_HEADER_PREFIX = 65536  # bytes read for a header block; a longer header means reading the whole message
# Columns a copy takes over unchanged; uid, id, folder and owner are new for the copy.
_NEW_COLUMNS = frozenset({"uid", "id", "folder", "owner"})
_COPIED = ", ".join(c for c in MESSAGE_COLUMNS if c not in _NEW_COLUMNS)
_COPIED_BODY = ", ".join(c for c in BODY_COLUMNS if c != "uid")


def _view_where(login: str | None, folder: str, patterns: dict[str, tuple[str, ...]]) -> tuple[str, list[Any]]:
    return imap_view_where(login, folder, "?", patterns.get(login) if login is not None else None)


_FLAG_SETS: dict[tuple[int, str], frozenset[str]] = {}


def _flags(read: int, text: str) -> frozenset[str]:
    """The flag set of one row; the few distinct combinations are shared rather than built per message."""
    found = _FLAG_SETS.get((read, text))
    if found is None:
        flags = set(text.split())
        if read:
            flags.add(_SEEN)
        found = frozenset(flags)
        if len(_FLAG_SETS) < 10_000:
            _FLAG_SETS[(read, text)] = found
    return found


def _flag_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(f for f in flags if f not in (_SEEN, _RECENT)))


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def _folder_exists(conn: sqlite3.Connection, owner: str, name: str) -> bool:
    return name == INBOX or conn.execute(
        "SELECT 1 FROM imap_folders WHERE owner = ? AND name = ?", (owner, name)).fetchone() is not None


class ImapMethods:
    """The Store protocol's IMAP methods. Composed into SQLiteStore, which provides these collaborators."""

    connections: Connections
    writer: Writer
    login_patterns: dict[str, tuple[str, ...]]
    hub: Hub
    retention: Retention
    ingest: Ingest

    # -- folders -----------------------------------------------------------------------------------------

    async def imap_folders(self, login: str | None) -> list[str]:
        owner = owner_of(login)
        rows = await self.connections.read(lambda conn: conn.execute(
            "SELECT name FROM imap_folders WHERE owner = ? ORDER BY name", (owner,)).fetchall())
        return [INBOX, *(r[0] for r in rows)]

    async def imap_subscriptions(self, login: str | None) -> list[str]:
        owner = owner_of(login)
        rows = await self.connections.read(lambda conn: conn.execute(
            "SELECT name FROM imap_subscriptions WHERE owner = ? ORDER BY name", (owner,)).fetchall())
        return [r[0] for r in rows]

    async def imap_folder_exists(self, login: str | None, name: str) -> bool:
        owner = owner_of(login)
        return bool(await self.connections.read(_folder_exists, owner, name))

    async def imap_create_folder(self, login: str | None, name: str) -> None:
        owner = owner_of(login)

        def run(conn: sqlite3.Connection) -> None:
            if _folder_exists(conn, owner, name):
                raise FolderError("Mailbox already exists")
            conn.execute("INSERT INTO imap_folders (owner, name) VALUES (?, ?)", (owner, name))

        await self.writer.write(run)

    async def imap_delete_folder(self, login: str | None, name: str, delimiter: str) -> None:
        """Delete a folder and its messages. A folder with subfolders cannot go (RFC 3501 \\Noselect rule)."""
        owner = owner_of(login)
        if name == INBOX:
            raise FolderError("INBOX cannot be deleted")

        def run(conn: sqlite3.Connection) -> dict[str, list[Any]] | None:
            if not _folder_exists(conn, owner, name):
                raise FolderError("Mailbox doesn't exist")
            if conn.execute("SELECT 1 FROM imap_folders WHERE owner = ? AND substr(name, 1, ?) = ?",
                            (owner, len(name) + len(delimiter), name + delimiter)).fetchone():
                raise FolderError("Mailbox has children, delete them first")
            conn.execute("DELETE FROM imap_folders WHERE owner = ? AND name = ?", (owner, name))
            conn.execute("DELETE FROM imap_recent WHERE owner = ? AND folder = ?", (owner, name))
            rows = conn.execute("SELECT uid, id FROM messages WHERE folder = ? AND owner = ?",
                                (name, owner)).fetchall()
            return self.retention.delete_rows(conn, rows)

        deleted = await self.writer.write(run)
        if deleted:
            self.hub.publish(MessagesDeleted(tuple(deleted["ids"]), tuple(deleted["uids"])))

    async def imap_rename_folder(self, login: str | None, old: str, new: str, delimiter: str) -> None:
        owner = owner_of(login)
        check_rename(old, new)

        def run(conn: sqlite3.Connection) -> list[int]:
            if not _folder_exists(conn, owner, old):
                raise FolderError("Mailbox doesn't exist")
            if _folder_exists(conn, owner, new):
                raise FolderError("Mailbox already exists")
            names = [r[0] for r in conn.execute(
                "SELECT name FROM imap_folders WHERE owner = ? AND (name = ? OR substr(name, 1, ?) = ?)",
                (owner, old, len(old) + len(delimiter), old + delimiter))]
            moved = []
            for name in names:
                renamed = new + name[len(old):]
                conn.execute("UPDATE imap_folders SET name = ? WHERE owner = ? AND name = ?", (renamed, owner, name))
                conn.execute("UPDATE imap_recent SET folder = ? WHERE owner = ? AND folder = ?",
                             (renamed, owner, name))
                moved += [r[0] for r in conn.execute(
                    "UPDATE messages SET folder = ? WHERE owner = ? AND folder = ? RETURNING uid",
                    (renamed, owner, name))]
            return moved

        moved = await self.writer.write(run)
        self.hub.publish(FolderRenamed(tuple(moved), old, new))

    async def imap_subscribe(self, login: str | None, name: str, subscribed: bool) -> None:
        owner = owner_of(login)

        def run(conn: sqlite3.Connection) -> None:
            if subscribed:
                conn.execute("INSERT OR IGNORE INTO imap_subscriptions (owner, name) VALUES (?, ?)", (owner, name))
            else:
                conn.execute("DELETE FROM imap_subscriptions WHERE owner = ? AND name = ?", (owner, name))

        await self.writer.write(run)

    # -- reading a view ----------------------------------------------------------------------------------

    async def imap_view(self, login: str | None, folder: str) -> View:
        """Every message of the view in uid order, with flags, sizes and dates; FolderError if there is none."""
        where, params = _view_where(login, folder, self.login_patterns)
        owner = owner_of(login)

        def run(conn: sqlite3.Connection) -> View:
            if not _folder_exists(conn, owner, folder):
                raise FolderError("Mailbox doesn't exist: " + folder)
            rows = conn.execute(f"SELECT m.uid, m.read, m.flags, m.size, m.created FROM messages m WHERE {where} "
                                "ORDER BY m.uid", params).fetchall()
            mark = conn.execute("SELECT last_uid FROM imap_recent WHERE owner = ? AND folder = ?",
                                (owner, folder)).fetchone()
            columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
            unseen = next((i for i, read in enumerate(columns[1]) if not read), -1)
            return View(list(columns[0]), [_flags(r, f) for r, f in zip(columns[1], columns[2], strict=True)],
                        list(columns[3]), list(columns[4]), mark[0] if mark else 0, _uidnext(conn), unseen)

        return await self.connections.read(run)

    async def imap_status(self, login: str | None, folder: str) -> FolderStatus:
        where, params = _view_where(login, folder, self.login_patterns)
        owner = owner_of(login)

        def run(conn: sqlite3.Connection) -> FolderStatus:
            if not _folder_exists(conn, owner, folder):
                raise FolderError("Mailbox doesn't exist")
            last = conn.execute("SELECT last_uid FROM imap_recent WHERE owner = ? AND folder = ?",
                                (owner, folder)).fetchone()
            messages, unseen, recent = conn.execute(
                f"SELECT count(*), coalesce(sum(m.read = 0), 0), coalesce(sum(m.uid > ?), 0) FROM messages m "
                f"WHERE {where}", [last[0] if last else 0, *params]).fetchone()
            return FolderStatus(messages, unseen, recent, _uidnext(conn))

        return await self.connections.read(run)

    async def imap_uidnext(self) -> int:
        return int(await self.connections.read(_uidnext))

    async def imap_claim_recent(self, login: str | None, folder: str, up_to: int) -> int:
        """Mark the view's messages up to uid `up_to` as seen by a session; returns the previous mark.

        Messages above the previous mark are \\Recent for the one session that claimed them."""
        owner = owner_of(login)

        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT last_uid FROM imap_recent WHERE owner = ? AND folder = ?",
                               (owner, folder)).fetchone()
            previous = row[0] if row else 0
            if up_to > previous:
                conn.execute("INSERT OR REPLACE INTO imap_recent (owner, folder, last_uid) VALUES (?, ?, ?)",
                             (owner, folder, up_to))
            return int(previous)

        return int(await self.writer.write(run))

    async def imap_raw(self, uids: Sequence[int]) -> dict[int, bytes]:
        def run(conn: sqlite3.Connection) -> dict[int, bytes]:
            found = {}
            for part in _chunks(list(uids)):
                for uid, raw, raw_codec in conn.execute(
                        f"SELECT uid, raw, raw_codec FROM bodies WHERE uid IN ({','.join('?' * len(part))})", part):
                    found[uid] = codec.decode(raw, raw_codec)
            return found

        return dict(await self.connections.read(run))

    async def imap_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Just the header block of each message (up to and including the blank line); a big message is not
        read whole for its header."""

        def run(conn: sqlite3.Connection) -> dict[int, bytes]:
            found = {}
            long_headers = []
            for part in _chunks(list(uids)):
                # A compressed row is read whole (its prefix is not the message's) and only its head decoded.
                for uid, head, raw_codec in conn.execute(
                        f"SELECT uid, CASE raw_codec WHEN 0 THEN substr(raw, 1, {_HEADER_PREFIX}) ELSE raw END, "
                        f"raw_codec FROM bodies WHERE uid IN ({','.join('?' * len(part))})", part):
                    head = codec.decode_prefix(head, raw_codec, _HEADER_PREFIX)
                    end = block_end(head, 0)[1]
                    if end == len(head) == _HEADER_PREFIX:
                        long_headers.append(uid)
                    found[uid] = head[:end]
            for part in _chunks(long_headers):
                for uid, stored, raw_codec in conn.execute(
                        f"SELECT uid, raw, raw_codec FROM bodies WHERE uid IN ({','.join('?' * len(part))})", part):
                    raw = codec.decode(stored, raw_codec)
                    found[uid] = raw[:block_end(raw, 0)[1]]
            return found

        return dict(await self.connections.read(run))

    # -- changing --------------------------------------------------------------------------------------

    async def imap_store_flags(self, uids: Sequence[int], mode: str, flags: Sequence[str]) -> dict[int, frozenset[str]]:
        """mode '=' replaces, '+' adds, '-' removes. Returns the new flags of every message still there."""
        wanted = frozenset(f for f in flags if f != _RECENT)

        def run(conn: sqlite3.Connection) -> tuple[dict[int, frozenset[str]], list[tuple[int, str, bool, bool]]]:
            result: dict[int, frozenset[str]] = {}
            changed: list[tuple[int, str, bool, bool]] = []  # uid, id, read changed, other flags changed
            for part in _chunks(list(uids)):
                rows = conn.execute(f"SELECT uid, id, read, flags FROM messages WHERE uid IN "
                                    f"({','.join('?' * len(part))})", part).fetchall()
                for uid, id_, read, text in rows:
                    old = _flags(read, text)
                    new = wanted if mode == "=" else old | wanted if mode == "+" else old - wanted
                    result[uid] = new
                    if new != old:
                        conn.execute("UPDATE messages SET read = ?, flags = ? WHERE uid = ?",
                                     (int(_SEEN in new), _flag_text(new), uid))
                        changed.append((uid, id_, (_SEEN in new) != (_SEEN in old),
                                        _flag_text(new) != _flag_text(old)))
            return result, changed

        result, changed = await self.writer.write(run)
        for read in (True, False):
            hits = [(u, i) for u, i, read_changed, _ in changed if read_changed and (_SEEN in result[u]) == read]
            if hits:
                self.hub.publish(ReadChanged(tuple(i for _, i in hits), tuple(u for u, _ in hits), read))
        others = [(u, i) for u, i, _, flags_changed in changed if flags_changed]
        if others:
            self.hub.publish(FlagsChanged(tuple(i for _, i in others), tuple(u for u, _ in others),
                                          tuple(result[u] for u, _ in others)))
        return result

    async def imap_expunge(self, uids: Sequence[int]) -> list[int]:
        deleted = await self.retention.delete_found(lambda conn: rows_where_in(conn, "uid", uids))
        return list(deleted["uids"]) if deleted else []

    async def imap_append(self, login: str | None, folder: str, raw: bytes, flags: Sequence[str],
                          date: datetime | None) -> int:
        """Store a message in a view; returns its uid. Appending to INBOX is a delivery to the login."""
        owner = owner_of(login)
        envelope = Envelope(mail_from="", rcpt_tos=(login,) if login else (), source="imap",
                            received=date or datetime.now(UTC))
        extra = _flag_text(flags)
        # Parsed before the writer, which others' mail waits on.
        prepared = await self.ingest.prepare_off_loop(raw, envelope, _SEEN in flags)

        def run(conn: sqlite3.Connection) -> tuple[int, str, Summary]:
            if not _folder_exists(conn, owner, folder):
                raise FolderError("[TRYCREATE] Mailbox doesn't exist")
            summary = prepared.summary
            uid = insert_prepared(conn, prepared, folder="" if folder == INBOX else folder,
                                  owner="" if folder == INBOX else owner, flags=extra)
            if folder == INBOX:
                self.retention.recount(conn)
            return uid, summary.id, replace(summary, uid=uid, folder="" if folder == INBOX else folder)

        uid, id_, summary = await self.writer.write(run)
        self.ingest.nudge()
        self._announce(folder, [(uid, id_)], [summary])
        return int(uid)

    async def imap_copy(self, uids: Sequence[int], login: str | None, folder: str,
                        *, move: bool = False) -> list[tuple[int, int]]:
        """Copy (or move) messages into a view; returns (source uid, new uid) pairs in source order."""
        owner = owner_of(login)

        def run(conn: sqlite3.Connection) -> tuple[list[tuple[int, int, str]], list[Summary], Deleted | None]:
            if not _folder_exists(conn, owner, folder):
                raise FolderError("[TRYCREATE] Mailbox doesn't exist")
            pairs: list[tuple[int, int, str]] = []
            sources: list[tuple[int, str]] = []
            for uid in uids:
                old = conn.execute("SELECT id FROM messages WHERE uid = ?", (uid,)).fetchone()
                if old is None:
                    continue
                id_ = new_id()
                new_uid = conn.execute(
                    f"INSERT INTO messages (id, folder, owner, {_COPIED}) SELECT ?, ?, ?, {_COPIED} "
                    f"FROM messages WHERE uid = ?",
                    (id_, "" if folder == INBOX else folder, "" if folder == INBOX else owner, uid)).lastrowid
                assert new_uid is not None
                conn.execute(f"INSERT INTO bodies (uid, {_COPIED_BODY}) SELECT ?, {_COPIED_BODY} FROM bodies "
                             "WHERE uid = ?", (new_uid, uid))
                conn.execute(search.COPY_PENDING, (new_uid, uid))
                if folder == INBOX and login is not None:
                    conn.execute("INSERT OR IGNORE INTO recipients (mailbox, uid) VALUES (?, ?)", (login, new_uid))
                pairs.append((uid, new_uid, id_))
                sources.append((uid, old[0]))
            summaries = []
            if folder == INBOX:
                for _, new_uid, _ in pairs:
                    summaries.append(summary_from_row(conn.execute(
                        f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE m.uid = ?", (new_uid,)).fetchone()))
            deleted = self.retention.delete_rows(conn, sources) if move else None
            self.retention.recount(conn)
            return pairs, summaries, deleted

        pairs, summaries, deleted = await self.writer.write(run)
        self.ingest.nudge()
        if deleted:
            self.hub.publish(MessagesDeleted(tuple(deleted["ids"]), tuple(deleted["uids"])))
        self._announce(folder, [(new, id_) for _, new, id_ in pairs], summaries)
        return [(old, new) for old, new, _ in pairs]

    def _announce(self, folder: str, added: list[tuple[int, str]], summaries: list[Summary]) -> None:
        """New rows in INBOX are deliveries (the web UI shows them); rows in folders only concern IMAP."""
        if not added:
            return
        if folder == INBOX:
            for summary in summaries:
                self.hub.publish(MessageAdded(summary))
        else:
            self.hub.publish(MessagesFiled(tuple(i for _, i in added), tuple(u for u, _ in added), folder))


def _uidnext(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return (int(row[0]) if row else 0) + 1

