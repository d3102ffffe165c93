"""IMAP for PostgresStore: folders, subscriptions, \\Recent marks, flags, APPEND/COPY/MOVE and EXPUNGE, with
SQLiteStore's semantics (imap_sql.py has the rules: views, owners, which events each change publishes).

uids come from the sequence, so UIDNEXT is the sequence's next value: like SQLite's AUTOINCREMENT it only grows
(a rolled-back insert may leave a gap, which IMAP allows)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ... import events
from ...models import Envelope, Summary
from ..base import INBOX, FolderError, FolderStatus, View, owner_of
from ..shared import check_rename, imap_view_where
from ..sqlite.imap import _flag_text, _flags
from ..sqlite.rows import _SUMMARY_COLUMNS, new_id, summary_from_row

if TYPE_CHECKING:
    from ...events import Hub
    from .ingest import Item, Prepared
    from .store import Tx

T = TypeVar("T")
_SEEN = "\\Seen"
_RECENT = "\\Recent"
_HEADER_PREFIX = 65536  # bytes read for a header block; a longer header means reading the whole message
_COPIED_COLUMNS = ("message_id, subject, from_json, to_json, cc_json, bcc_json, reply_to_json, created, sent, size, "
                   "attachments, inline, snippet, read, flags, tags, mail_from, auth_user, envelope_json")


def _view_where(login: str | None, folder: str, patterns: dict[str, tuple[str, ...]]) -> tuple[str, list[Any]]:
    return imap_view_where(login, folder, "%s", patterns.get(login) if login is not None else None)


async def _folder_exists(tx: Tx, owner: str, name: str) -> bool:
    return name == INBOX or await tx.one(
        "SELECT 1 FROM imap_folders WHERE owner = %s AND name = %s", (owner, name)) is not None


async def _uidnext(tx: Tx) -> int:
    row = await tx.one("SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM uid_seq")
    return int(row[0]) if row else 1


async def _recent_mark(tx: Tx, owner: str, folder: str) -> int:
    row = await tx.one("SELECT last_uid FROM imap_recent WHERE owner = %s AND folder = %s", (owner, folder))
    return int(row[0]) if row else 0


def _prefix(name: str, delimiter: str) -> tuple[str, int, str]:
    """(name + delimiter, its length, name): parameters of `left(name, n) = prefix` child tests."""
    return name + delimiter, len(name) + len(delimiter), name


class ImapMixin:
    hub: Hub
    login_patterns: dict[str, tuple[str, ...]]

    if TYPE_CHECKING:
        async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
        async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, announce: bool = True,
                         pipeline: bool = False) -> T: ...
        async def prepare_off_loop(self, item: Item) -> Prepared: ...
        async def _decoded(self, rows: list[tuple[Any, Any, int]], prefix: int | None = None
                           ) -> dict[Any, bytes]: ...
        compress: bool
        @classmethod
        async def _insert_prepared(cls, tx: Tx, prepared: Sequence[Prepared], *, folder: str = "", owner: str = "",
                                   flags: str = "", uids: Sequence[int] = ()) -> list[int]: ...
        @staticmethod
        async def _delete_rows(tx: Tx, where: str, params: Sequence[Any], *,
                               pruned: bool = False) -> list[tuple[int, str]]: ...

    # -- folders -----------------------------------------------------------------------------------------

    async def imap_folders(self, login: str | None) -> list[str]:
        owner = owner_of(login)

        async def run(tx: Tx) -> list[str]:
            rows = await tx.all("SELECT name FROM imap_folders WHERE owner = %s ORDER BY name COLLATE \"C\"", (owner,))
            return [INBOX, *(r[0] for r in rows)]

        return await self._read(run)

    async def imap_subscriptions(self, login: str | None) -> list[str]:
        owner = owner_of(login)

        async def run(tx: Tx) -> list[str]:
            rows = await tx.all("SELECT name FROM imap_subscriptions WHERE owner = %s ORDER BY name COLLATE \"C\"",
                                (owner,))
            return [r[0] for r in rows]

        return await self._read(run)

    async def imap_folder_exists(self, login: str | None, name: str) -> bool:
        owner = owner_of(login)
        return await self._read(lambda tx: _folder_exists(tx, owner, name))

    async def imap_create_folder(self, login: str | None, name: str) -> None:
        owner = owner_of(login)

        async def run(tx: Tx) -> None:
            if name == INBOX or not await tx.run(
                    "INSERT INTO imap_folders (owner, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (owner, name)):
                raise FolderError("Mailbox already exists")

        await self._write(run, announce=False)

    async def imap_delete_folder(self, login: str | None, name: str, delimiter: str) -> None:
        """Delete a folder and its messages. A folder with subfolders cannot go (RFC 3501 \\Noselect rule)."""
        owner = owner_of(login)
        if name == INBOX:
            raise FolderError("INBOX cannot be deleted")

        async def run(tx: Tx) -> None:
            if not await _folder_exists(tx, owner, name):
                raise FolderError("Mailbox doesn't exist")
            prefix, length, _ = _prefix(name, delimiter)
            if await tx.one("SELECT 1 FROM imap_folders WHERE owner = %s AND left(name, %s) = %s",
                            (owner, length, prefix)):
                raise FolderError("Mailbox has children, delete them first")
            await tx.run("DELETE FROM imap_folders WHERE owner = %s AND name = %s", (owner, name))
            await tx.run("DELETE FROM imap_recent WHERE owner = %s AND folder = %s", (owner, name))
            await self._delete_rows(tx, "m.folder = %s AND m.owner = %s", (name, owner))

        await self._write(run)

    async def imap_rename_folder(self, login: str | None, old: str, new: str, delimiter: str) -> None:
        owner = owner_of(login)
        check_rename(old, new)

        async def run(tx: Tx) -> None:
            if not await _folder_exists(tx, owner, old):
                raise FolderError("Mailbox doesn't exist")
            if await _folder_exists(tx, owner, new):
                raise FolderError("Mailbox already exists")
            prefix, length, _ = _prefix(old, delimiter)
            names = [r[0] for r in await tx.all(
                "SELECT name FROM imap_folders WHERE owner = %s AND (name = %s OR left(name, %s) = %s) "
                "ORDER BY name COLLATE \"C\"", (owner, old, length, prefix))]
            moved: list[int] = []
            for name in names:
                renamed = new + name[len(old):]
                await tx.run("UPDATE imap_folders SET name = %s WHERE owner = %s AND name = %s", (renamed, owner, name))
                await tx.run("UPDATE imap_recent SET folder = %s WHERE owner = %s AND folder = %s",
                             (renamed, owner, name))
                moved += sorted(int(r[0]) for r in await tx.all(
                    "UPDATE messages SET folder = %s WHERE owner = %s AND folder = %s RETURNING uid",
                    (renamed, owner, name)))
            tx.emit(events.FolderRenamed(tuple(moved), old, new))

        await self._write(run)

    async def imap_subscribe(self, login: str | None, name: str, subscribed: bool) -> None:
        owner = owner_of(login)

        async def run(tx: Tx) -> None:
            if subscribed:
                await tx.run("INSERT INTO imap_subscriptions (owner, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                             (owner, name))
            else:
                await tx.run("DELETE FROM imap_subscriptions WHERE owner = %s AND name = %s", (owner, name))

        await self._write(run, announce=False)

    # -- reading a view ----------------------------------------------------------------------------------

    async def imap_view(self, login: str | None, folder: str) -> View:
        where, params = _view_where(login, folder, self.login_patterns)
        owner = owner_of(login)

        async def run(tx: Tx) -> View:
            if not await _folder_exists(tx, owner, folder):
                raise FolderError("Mailbox doesn't exist: " + folder)
            rows = await tx.all(f"SELECT m.uid, m.read, m.flags, m.size, m.created FROM messages m WHERE {where} "
                                "ORDER BY m.uid", params)
            mark = await _recent_mark(tx, owner, folder)
            unseen = next((i for i, row in enumerate(rows) if not row[1]), -1)
            return View([int(r[0]) for r in rows], [_flags(r[1], r[2]) for r in rows], [int(r[3]) for r in rows],
                        [float(r[4]) for r in rows], mark, await _uidnext(tx), unseen)

        return await self._read(run)

    async def imap_status(self, login: str | None, folder: str) -> FolderStatus:
        where, params = _view_where(login, folder, self.login_patterns)
        owner = owner_of(login)

        async def run(tx: Tx) -> FolderStatus:
            if not await _folder_exists(tx, owner, folder):
                raise FolderError("Mailbox doesn't exist")
            last = await _recent_mark(tx, owner, folder)
            row = await tx.one(f"SELECT count(*), count(*) FILTER (WHERE m.read = 0), count(*) FILTER (WHERE "
                               f"m.uid > %s) FROM messages m WHERE {where}", [last, *params])
            assert row is not None
            return FolderStatus(int(row[0]), int(row[1]), int(row[2]), await _uidnext(tx))

        return await self._read(run)

    async def imap_uidnext(self) -> int:
        return await self._read(_uidnext)

    async def imap_claim_recent(self, login: str | None, folder: str, up_to: int) -> int:
        """Mark the view's messages up to uid `up_to` as seen by a session; returns the previous mark."""
        owner = owner_of(login)

        async def run(tx: Tx) -> int:
            row = await tx.one("SELECT last_uid FROM imap_recent WHERE owner = %s AND folder = %s FOR UPDATE",
                               (owner, folder))
            previous = int(row[0]) if row else 0
            if up_to > previous:
                await tx.run("INSERT INTO imap_recent (owner, folder, last_uid) VALUES (%s, %s, %s) "
                             "ON CONFLICT (owner, folder) DO UPDATE SET last_uid = greatest(imap_recent.last_uid, "
                             "excluded.last_uid)", (owner, folder, up_to))
            return previous

        return await self._write(run, announce=False)

    async def imap_raw(self, uids: Sequence[int]) -> dict[int, bytes]:
        async def run(tx: Tx) -> dict[int, bytes]:
            rows = await tx.all("SELECT uid, raw, raw_codec FROM bodies WHERE uid = ANY(%s)", (list(uids),))
            return {int(uid): raw for uid, raw in (await self._decoded(rows)).items()}

        return await self._read(run)

    async def imap_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Just the header block of each message (through the blank line); a big message is not read whole."""
        from ...mime.header import block_end

        async def run(tx: Tx) -> dict[int, bytes]:
            found: dict[int, bytes] = {}
            long_headers = []
            # A compressed row is read whole (its prefix is not the message's) and only its head decoded.
            rows = await tx.all(
                f"SELECT uid, CASE raw_codec WHEN 0 THEN substring(raw FROM 1 FOR {_HEADER_PREFIX}) ELSE raw END, "
                "raw_codec FROM bodies WHERE uid = ANY(%s)", (list(uids),))
            for uid, head in (await self._decoded(rows, _HEADER_PREFIX)).items():
                end = block_end(head, 0)[1]
                if end == len(head) == _HEADER_PREFIX:
                    long_headers.append(int(uid))
                found[int(uid)] = head[:end]
            if long_headers:
                rows = await tx.all("SELECT uid, raw, raw_codec FROM bodies WHERE uid = ANY(%s)", (long_headers,))
                for uid, raw in (await self._decoded(rows)).items():
                    found[int(uid)] = raw[:block_end(raw, 0)[1]]
            return found

        return await self._read(run)

    # -- changing --------------------------------------------------------------------------------------

    async def imap_store_flags(self, uids: Sequence[int], mode: str, flags: Sequence[str]) -> dict[int, frozenset[str]]:
        """mode '=' replaces, '+' adds, '-' removes. Returns the new flags of every message still there."""
        wanted = frozenset(f for f in flags if f != _RECENT)
        order = {uid: n for n, uid in enumerate(dict.fromkeys(uids))}

        async def run(tx: Tx) -> dict[int, frozenset[str]]:
            rows = await tx.all("SELECT uid, id, read, flags FROM messages WHERE uid = ANY(%s) ORDER BY uid FOR UPDATE",
                                (list(order),))
            rows.sort(key=lambda r: order[int(r[0])])
            result: dict[int, frozenset[str]] = {}
            changed: list[tuple[int, str, bool, bool]] = []  # uid, id, read changed, other flags changed
            for uid, id_, read, text in rows:
                old = _flags(read, text)
                new = wanted if mode == "=" else old | wanted if mode == "+" else old - wanted
                result[int(uid)] = new
                if new != old:
                    await tx.run("UPDATE messages SET read = %s, flags = %s WHERE uid = %s",
                                 (int(_SEEN in new), _flag_text(new), uid))
                    changed.append((int(uid), id_, (_SEEN in new) != (_SEEN in old), _flag_text(new) != _flag_text(old)))
            for read_now in (True, False):
                hits = [(u, i) for u, i, read_changed, _ in changed
                        if read_changed and (_SEEN in result[u]) == read_now]
                if hits:
                    tx.emit(events.ReadChanged(tuple(i for _, i in hits), tuple(u for u, _ in hits), read_now))
            others = [(u, i) for u, i, _, flags_changed in changed if flags_changed]
            if others:
                tx.emit(events.FlagsChanged(tuple(i for _, i in others), tuple(u for u, _ in others),
                                            tuple(result[u] for u, _ in others)))
            return result

        return await self._write(run)

    async def imap_expunge(self, uids: Sequence[int]) -> list[int]:
        wanted = list(dict.fromkeys(uids))
        deleted = await self._write(lambda tx: self._delete_rows(tx, "m.uid = ANY(%s)", (wanted,)))
        return [u for u, _ in deleted]

    async def imap_append(self, login: str | None, folder: str, raw: bytes, flags: Sequence[str],
                          date: datetime | None) -> int:
        """Store a message in a view; returns its uid. Appending to INBOX is a delivery to the login."""
        from .ingest import Item

        owner = owner_of(login)
        envelope = Envelope(mail_from="", rcpt_tos=(login,) if login else (), source="imap",
                            received=date or datetime.now(UTC))
        prepared = await self.prepare_off_loop(Item(bytes(raw), envelope, (), _SEEN in flags, compress=self.compress))
        extra = _flag_text(flags)
        inbox = folder == INBOX

        async def run(tx: Tx) -> int:
            if not await _folder_exists(tx, owner, folder):
                raise FolderError("[TRYCREATE] Mailbox doesn't exist")
            [uid] = await self._insert_prepared(tx, [prepared], folder="" if inbox else folder,
                                                owner="" if inbox else owner, flags=extra)
            summary = replace(prepared.summary, uid=uid, folder="" if inbox else folder)
            _announce(tx, folder, [(uid, summary.id)], [summary])
            return uid

        return await self._write(run)

    async def imap_copy(self, uids: Sequence[int], login: str | None, folder: str,
                        *, move: bool = False) -> list[tuple[int, int]]:
        """Copy (or move) messages into a view; returns (source uid, new uid) pairs in source order."""
        owner = owner_of(login)
        inbox = folder == INBOX

        async def run(tx: Tx) -> list[tuple[int, int]]:
            if not await _folder_exists(tx, owner, folder):
                raise FolderError("[TRYCREATE] Mailbox doesn't exist")
            pairs: list[tuple[int, int, str]] = []
            sources: list[int] = []
            for uid in uids:
                old = await tx.one("SELECT id FROM messages WHERE uid = %s", (uid,))
                if old is None:
                    continue
                id_ = new_id()
                row = await tx.one(
                    f"INSERT INTO messages (id, folder, owner, {_COPIED_COLUMNS}) SELECT %s, %s, %s, "
                    f"{_COPIED_COLUMNS} FROM messages WHERE uid = %s RETURNING uid",
                    (id_, "" if inbox else folder, "" if inbox else owner, uid))
                assert row is not None
                new_uid = int(row[0])
                await tx.run("INSERT INTO bodies (uid, raw, raw_codec, text, html, extra_json) "
                             "SELECT %s, raw, raw_codec, text, html, extra_json FROM bodies WHERE uid = %s",
                             (new_uid, uid))
                await tx.run("INSERT INTO search_index (uid, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, words) "
                             "SELECT %s, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, words "
                             "FROM search_index WHERE uid = %s", (new_uid, uid))
                if inbox and login is not None:
                    await tx.run("INSERT INTO recipients (mailbox, uid) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                 (login, new_uid))
                pairs.append((uid, new_uid, id_))
                sources.append(uid)
                tx.added.append(new_uid)
            summaries: list[Summary] = []
            if inbox and pairs:
                rows = await tx.all(f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE m.uid = ANY(%s) ORDER BY m.uid",
                                    ([new for _, new, _ in pairs],))
                by_uid = {int(r[0]): summary_from_row(r) for r in rows}
                summaries = [by_uid[new] for _, new, _ in pairs]
            if move and sources:
                await self._delete_rows(tx, "m.uid = ANY(%s)", (sources,))
            _announce(tx, folder, [(new, id_) for _, new, id_ in pairs], summaries)
            return [(old, new) for old, new, _ in pairs]

        return await self._write(run)


def _announce(tx: Tx, folder: str, added: list[tuple[int, str]], summaries: list[Summary]) -> None:
    """New rows in INBOX are deliveries (the web UI shows them); rows in folders only concern IMAP."""
    if not added:
        return
    if folder == INBOX:
        for summary in summaries:
            tx.emit(events.MessageAdded(summary))
    else:
        tx.emit(events.MessagesFiled(tuple(i for _, i in added), tuple(u for u, _ in added), folder))
