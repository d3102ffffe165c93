"""The IMAP part of the SQLite store: views per login, folders, flags, APPEND/COPY/MOVE/EXPUNGE and the
hub events each change publishes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailnest.events import (
    Event,
    FlagsChanged,
    FolderRenamed,
    Hub,
    MessageAdded,
    MessagesDeleted,
    MessagesFiled,
    ReadChanged,
)
from mailnest.models import Envelope
from mailnest.store.base import INBOX, FolderError
from mailnest.store.sqlite import SQLiteStore

MESSAGE = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"


class Recorder:
    def __init__(self, hub: Hub) -> None:
        self.events: list[Event] = []
        hub.add_listener(self.events.append)

    def take(self) -> list[Event]:
        out = list(self.events)
        self.events.clear()
        return out


def run(scenario: Callable[[SQLiteStore, Recorder], Awaitable[None]], path: Path | None = None) -> None:
    async def main() -> None:
        hub = Hub()
        store = SQLiteStore(path, hub)
        await store.start()
        try:
            await scenario(store, Recorder(hub))
        finally:
            await store.close()

    asyncio.run(main())


async def deliver(store: SQLiteStore, *rcpts: str, raw: bytes = MESSAGE) -> int:
    return (await store.add(raw, Envelope("a@example.com", rcpts))).uid


def test_views_per_login_and_catch_all() -> None:
    async def scenario(store: SQLiteStore, events: Recorder) -> None:
        one = await deliver(store, "alice@example.com")
        two = await deliver(store, "bob@example.com", "alice@example.com")
        three = await deliver(store, "bob@example.com")
        assert (await store.imap_view("alice@example.com", INBOX)).uids == [one, two]
        assert (await store.imap_view("bob@example.com", INBOX)).uids == [two, three]
        assert (await store.imap_view(None, INBOX)).uids == [one, two, three]
        assert (await store.imap_view("carol@example.com", INBOX)).uids == []
        with pytest.raises(FolderError):
            await store.imap_view("alice@example.com", "Nope")
        status = await store.imap_status("alice@example.com", INBOX)
        assert (status.messages, status.unseen, status.recent, status.uidnext) == (2, 2, 2, three + 1)

    run(scenario)


def test_flags_are_per_message_and_seen_is_read() -> None:
    async def scenario(store: SQLiteStore, events: Recorder) -> None:
        uid = await deliver(store, "alice@example.com", "bob@example.com")
        events.take()
        result = await store.imap_store_flags([uid], "+", ["\\Seen", "\\Flagged", "$Work"])
        assert result == {uid: frozenset({"\\Seen", "\\Flagged", "$Work"})}
        assert (await store.imap_view("bob@example.com", INBOX)).flags == [result[uid]]
        message = await store.get((await store.list()).messages[0].id)
        assert message is not None and message.summary.read and set(message.flags) == set(result[uid])
        kinds = events.take()
        assert ReadChanged((message.id,), (uid,), True) in kinds
        assert FlagsChanged((message.id,), (uid,), (result[uid],)) in kinds
        await store.set_read([message.id], False)  # the API's read state is \Seen
        assert (await store.imap_view(None, INBOX)).flags == [frozenset({"\\Flagged", "$Work"})]
        assert (await store.imap_store_flags([uid], "=", ["\\Draft"]))[uid] == frozenset({"\\Draft"})
        assert (await store.imap_store_flags([uid], "-", ["\\Draft"]))[uid] == frozenset()
        assert await store.imap_store_flags([uid + 100], "+", ["\\Seen"]) == {}

    run(scenario)


def test_folders_and_subscriptions() -> None:
    async def scenario(store: SQLiteStore, events: Recorder) -> None:
        await store.imap_create_folder("alice@example.com", "Work")
        await store.imap_create_folder("alice@example.com", "Work/2024")
        with pytest.raises(FolderError, match="already exists"):
            await store.imap_create_folder("alice@example.com", "Work")
        assert await store.imap_folders("alice@example.com") == [INBOX, "Work", "Work/2024"]
        assert await store.imap_folders("bob@example.com") == [INBOX]  # folders belong to a login
        uid = await store.imap_append("alice@example.com", "Work/2024", MESSAGE, ["\\Seen"], None)
        with pytest.raises(FolderError, match="has children"):
            await store.imap_delete_folder("alice@example.com", "Work", "/")
        await store.imap_rename_folder("alice@example.com", "Work", "Jobs", "/")
        assert await store.imap_folders("alice@example.com") == [INBOX, "Jobs", "Jobs/2024"]
        assert (await store.imap_view("alice@example.com", "Jobs/2024")).uids == [uid]
        with pytest.raises(FolderError):
            await store.imap_rename_folder("alice@example.com", INBOX, "Old", "/")
        assert events.take()[-1] == FolderRenamed((uid,), "Work", "Jobs")  # the subfolder's message moved too
        await store.imap_delete_folder("alice@example.com", "Jobs/2024", "/")
        (gone,) = events.take()
        assert isinstance(gone, MessagesDeleted) and gone.uids == (uid,)  # the folder's messages went with it
        assert (await store.imap_raw([uid])) == {}
        await store.imap_subscribe("alice@example.com", "Later", True)
        await store.imap_subscribe("alice@example.com", INBOX, True)
        assert await store.imap_subscriptions("alice@example.com") == [INBOX, "Later"]
        await store.imap_subscribe("alice@example.com", "Later", False)
        assert await store.imap_subscriptions("alice@example.com") == [INBOX]

    run(scenario)


def test_append_copy_move_expunge_make_new_uids() -> None:
    async def scenario(store: SQLiteStore, events: Recorder) -> None:
        first = await deliver(store, "alice@example.com")
        await store.imap_create_folder("alice@example.com", "Keep")
        events.take()
        when = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
        appended = await store.imap_append("alice@example.com", INBOX, MESSAGE, ["\\Flagged"], when)
        assert appended > first
        assert [type(e) for e in events.take()] == [MessageAdded]  # one insert: the flags go with the message
        box = await store.imap_view("alice@example.com", INBOX)
        assert box.uids == [first, appended] and box.created[1] == when.timestamp()
        assert box.flags[1] == frozenset({"\\Flagged"})
        pairs = await store.imap_copy([first, appended], "alice@example.com", "Keep")
        assert [old for old, _ in pairs] == [first, appended] and all(new > appended for _, new in pairs)
        (filed,) = events.take()
        assert isinstance(filed, MessagesFiled)
        assert filed == MessagesFiled(filed.ids, tuple(new for _, new in pairs), "Keep")
        sources = {m.id for m in (await store.list()).messages}
        assert len(set(filed.ids)) == 2 and not sources & set(filed.ids)  # the copies' own IDs
        keep = await store.imap_view("alice@example.com", "Keep")
        assert keep.flags[1] == frozenset({"\\Flagged"})  # flags travel with the copy
        assert len((await store.list()).messages) == 2  # folder copies are not deliveries
        moved = await store.imap_copy([first], "alice@example.com", "Keep", move=True)
        assert (await store.imap_view("alice@example.com", INBOX)).uids == [appended]
        assert [type(e) for e in events.take()] == [MessagesDeleted, MessagesFiled]
        back = await store.imap_copy([moved[0][1]], "alice@example.com", INBOX)
        assert (await store.imap_view("alice@example.com", INBOX)).uids == [appended, back[0][1]]
        assert [type(e) for e in events.take()] == [MessageAdded]
        assert await store.imap_expunge([appended, 999]) == [appended]
        (gone,) = events.take()
        assert isinstance(gone, MessagesDeleted) and gone.uids == (appended,)
        assert await store.imap_uidnext() == back[0][1] + 1
        with pytest.raises(FolderError, match="TRYCREATE"):
            await store.imap_copy([back[0][1]], "alice@example.com", "Missing")

    run(scenario)


def test_recent_marks_and_headers() -> None:
    async def scenario(store: SQLiteStore, events: Recorder) -> None:
        uid = await deliver(store, "alice@example.com")
        big_header = b"X-Big: " + b"y" * 70_000 + b"\r\nSubject: big\r\n\r\nbody"
        big = await deliver(store, "alice@example.com", raw=big_header)
        assert await store.imap_claim_recent("alice@example.com", INBOX, uid) == 0
        assert await store.imap_claim_recent("alice@example.com", INBOX, big) == uid
        assert (await store.imap_view("alice@example.com", INBOX)).recent_mark == big
        assert (await store.imap_status("alice@example.com", INBOX)).recent == 0
        heads = await store.imap_headers([uid, big, 12345])
        assert heads == {uid: MESSAGE[:MESSAGE.index(b"\r\n\r\n") + 4], big: big_header[:-4]}

    run(scenario)


def test_uidvalidity_survives_a_restart_and_uids_are_never_reused(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    async def first(store: SQLiteStore, events: Recorder) -> None:
        seen["validity"] = store.uidvalidity
        seen["uid"] = await deliver(store, "alice@example.com")
        await store.imap_expunge([seen["uid"]])

    async def second(store: SQLiteStore, events: Recorder) -> None:
        assert store.uidvalidity == seen["validity"]
        assert await deliver(store, "alice@example.com") == seen["uid"] + 1

    run(first, tmp_path / "mail.db")
    run(second, tmp_path / "mail.db")



def test_totals_kept_by_triggers_match_a_count_through_every_change() -> None:
    """stats() reads totals that triggers keep (schema.py); after every kind of change they equal a count."""

    async def check(store: SQLiteStore) -> None:
        stats = await store.stats()
        with sqlite3.connect(store.path) as conn:
            counted = conn.execute("SELECT count(*), coalesce(sum(read = 0), 0), coalesce(sum(size), 0) "
                                   "FROM messages WHERE folder = '' AND owner = ''").fetchone()
        assert (stats.total, stats.unread, stats.size) == counted

    async def scenario(store: SQLiteStore, events: Recorder) -> None:
        await check(store)
        first = await deliver(store, "alice@example.com")
        second = await deliver(store, "bob@example.com", raw=MESSAGE + b"more\r\n")
        await check(store)
        await store.imap_create_folder("alice@example.com", "Keep")
        appended = await store.imap_append("alice@example.com", INBOX, MESSAGE, ["\\Seen"], None)
        await check(store)
        await store.imap_copy([first, appended], "alice@example.com", "Keep")
        await check(store)
        moved = await store.imap_copy([second], "alice@example.com", "Keep", move=True)
        await check(store)
        await store.imap_copy([moved[0][1]], "alice@example.com", INBOX)
        await check(store)
        await store.imap_store_flags([first], "+", ["\\Seen"])
        await check(store)
        ids = [m.id for m in (await store.list()).messages]
        await store.set_read(ids, False)
        await check(store)
        await store.imap_expunge([first])
        await check(store)
        await store.delete(ids)
        await check(store)
        assert (await store.stats()).total == 0

    run(scenario)


def test_appended_and_copied_messages_are_indexed_too() -> None:
    """APPEND and COPY write outside the ingest batches; they wake the indexer themselves."""

    def pending(store: SQLiteStore) -> int:
        with sqlite3.connect(store.path) as conn:
            return conn.execute("SELECT count(*) FROM search_pending").fetchone()[0]

    async def scenario(store: SQLiteStore, events: Recorder) -> None:
        await store.imap_create_folder("alice@example.com", "Keep")
        appended = await store.imap_append("alice@example.com", INBOX, MESSAGE, [], None)
        await store.imap_copy([appended], "alice@example.com", "Keep")
        for _ in range(500):
            if not pending(store):
                break
            await asyncio.sleep(0.01)
        assert pending(store) == 0
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("SELECT count(*) FROM search").fetchone()[0] == 2

    run(scenario)
