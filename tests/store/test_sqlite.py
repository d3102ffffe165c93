"""SQLiteStore directly: ingest, group commit, retention, ids, persistence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mailnest import events
from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store.sqlite import BODIES_KEPT_UP_TO, SQLiteStore

ENVELOPE = Envelope("from@example.com", ("to@example.com",), "helo.test", "127.0.0.1:1")


def message(subject: str, body: str = "body\r\n") -> bytes:
    return f"From: a@example.com\r\nTo: to@example.com\r\nSubject: {subject}\r\n\r\n{body}".encode()


def with_store(test: Callable[[SQLiteStore], Awaitable[Any]], path: Path | None = None, **options: Any) -> Any:
    async def main() -> Any:
        store = SQLiteStore(path, Hub(), **options)
        await store.start()
        try:
            return await test(store)
        finally:
            await store.close()

    return asyncio.run(main())


def test_concurrent_adds_share_commits_and_all_land() -> None:
    async def test(store: SQLiteStore) -> None:
        summaries = await asyncio.gather(*(store.add(message(f"m{i}"), ENVELOPE) for i in range(300)))
        assert len({s.id for s in summaries}) == 300
        uids = [s.uid for s in summaries]
        assert uids == sorted(uids) and len(set(uids)) == 300
        page = await store.list(limit=1000)
        assert page.total == 300

    with_store(test)


def test_uids_are_never_reused_and_uidvalidity_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"

    async def first(store: SQLiteStore) -> tuple[int, int]:
        await store.add(message("a"), ENVELOPE)
        b = await store.add(message("b"), ENVELOPE)
        await store.delete([b.id])
        return store.uidvalidity, b.uid

    validity, last_uid = with_store(first, db)

    async def second(store: SQLiteStore) -> None:
        assert store.uidvalidity == validity
        c = await store.add(message("c"), ENVELOPE)
        assert c.uid > last_uid
        assert [s.subject for s in (await store.list()).messages] == ["c", "a"]

    with_store(second, db)


def test_huge_bodies_are_read_back_from_the_raw_message() -> None:
    big = "line of text " * (BODIES_KEPT_UP_TO // 10)

    async def test(store: SQLiteStore) -> None:
        summary = await store.add(message("big", big), ENVELOPE)
        got = await store.get(summary.id)
        assert got is not None
        assert got.text == big
        assert got.summary.snippet.startswith("line of text")

    with_store(test)


def test_max_age_prunes_old_messages_and_says_so() -> None:
    async def test(store: SQLiteStore) -> None:
        seen: list[events.Event] = []
        store.hub.add_listener(seen.append)
        old = Envelope("a@example.com", ("b@example.com",), received=None)
        first = await store.add(message("old"), old)
        await asyncio.sleep(1.2)
        await store.add(message("new"), ENVELOPE)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (await store.count()) != 1:
            await asyncio.sleep(0.1)
        assert [s.subject for s in (await store.list()).messages] == ["new"]
        pruned = [e for e in seen if isinstance(e, events.MessagesPruned)]
        assert [(e.ids, e.uids) for e in pruned] == [((first.id,), (first.uid,))]

    with_store(test, max_age=1.0)


def test_close_finishes_queued_messages(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"

    async def test(store: SQLiteStore) -> None:
        pending = [asyncio.ensure_future(store.add(message(f"q{i}"), ENVELOPE)) for i in range(50)]
        await asyncio.sleep(0)
        await store.close()
        assert all(p.done() and not p.exception() for p in pending)

    with_store(test, db)

    async def check(store: SQLiteStore) -> None:
        assert await store.count() == 50

    with_store(check, db)


def test_mailboxes_and_read_state() -> None:
    async def test(store: SQLiteStore) -> None:
        a = await store.add(message("x"), Envelope("s@example.com", ("One@Example.com", "two@example.com")))
        await store.add(message("y"), Envelope("s@example.com", ("two@example.com",)))
        boxes = {b.address: (b.total, b.unread) for b in await store.mailboxes()}
        assert boxes == {"one@example.com": (1, 1), "two@example.com": (2, 2)}
        assert await store.set_read([a.id], True) == [a.id]
        assert await store.set_read([a.id], True) == []  # unchanged: nothing to report
        boxes = {b.address: (b.total, b.unread) for b in await store.mailboxes()}
        assert boxes == {"one@example.com": (1, 0), "two@example.com": (2, 1)}

    with_store(test)


def test_a_mailbox_can_be_a_whole_domain() -> None:
    async def test(store: SQLiteStore) -> None:
        await store.add(message("mine"), Envelope("s@example.com", ("Alice@T1.test", "bob@t1.test")))
        await store.add(message("sub"), Envelope("s@example.com", ("carol@sub.t1.test",)))
        await store.add(message("like"), Envelope("s@example.com", ("dave@t1_test", "eve@xt1.test")))
        assert [s.subject for s in (await store.list(mailbox="@t1.test")).messages] == ["mine"]
        assert [s.subject for s in (await store.list(mailbox="@T1.TEST")).messages] == ["mine"]
        assert await store.count(mailbox="@sub.t1.test") == 1
        assert await store.count(mailbox="@t1_test") == 1  # "_" is not a wildcard
        assert await store.count(mailbox="alice@t1.test") == 1

    with_store(test)


def test_every_column_is_named_once_and_every_summary_field_is_stored(tmp_path: Path) -> None:
    """The column tables (rows are built and decoded from them) agree with the real table and with Summary: a
    column added in a migration but not here, or a Summary field with no column, fails."""
    import dataclasses
    import sqlite3

    from mailnest.models import Summary
    from mailnest.store import sqlite as sqlite_store

    async def test(store: SQLiteStore) -> None:
        await store.add(message("x"), ENVELOPE)

    with_store(test, tmp_path / "mail.db")
    conn = sqlite3.connect(tmp_path / "mail.db")
    try:
        columns = {table: [r[1] for r in conn.execute(f"PRAGMA table_info({table})")] for table in ("messages",
                                                                                                  "bodies")}
    finally:
        conn.close()
    assert sorted(("uid", *sqlite_store.MESSAGE_COLUMNS)) == sorted(columns["messages"])
    assert sorted(sqlite_store.BODY_COLUMNS) == sorted(columns["bodies"])
    assert sorted(field for _, field, *_ in sqlite_store.SUMMARY_FIELDS) == sorted(
        f.name for f in dataclasses.fields(Summary))


def test_the_names_other_code_imports_from_the_sqlite_module_still_import() -> None:
    """The package replaced one module: what the PostgreSQL backend and the benchmarks import from it is still
    there."""

    from mailnest.store import sqlite as sqlite_store
    from mailnest.store.imap_sql import _flag_text, _flags

    for name in ("_SUMMARY_COLUMNS", "_SUMMARY_WIDTH", "_parse_or_empty", "envelope_from_json", "envelope_to_json",
                 "summary_from_row", "_utc", "PREPARE_ON_LOOP_UP_TO", "BODIES_KEPT_UP_TO", "SQLiteStore", "new_id",
                 "_bcc", "_Pending", "_Prepared", "mailbox_clause", "_faithful_prepared", "_attachment_json"):
        assert hasattr(sqlite_store, name), name
    assert _flags(1, "$Work") == frozenset({"\\Seen", "$Work"}) and _flag_text({"\\Seen", "b", "a"}) == "a b"
    assert SQLiteStore._view(None, "")[0] == "m.folder = '' AND m.owner = ''"

