"""Group commit: concurrent add() calls share transactions, and each returns only once its row is committed
(another connection sees it). The change counter (`totals.changes`) is bumped once per write transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store.postgres import PostgresStore

pytestmark = pytest.mark.anyio
ENVELOPE = Envelope("a@example.com", ("b@example.org",))


def _raw(n: int, size: int = 0) -> bytes:
    return (f"From: a@example.com\r\nTo: b@example.org\r\nSubject: message {n}\r\n\r\n".encode()
            + b"x" * size + b"\r\n")


def _changes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT changes FROM mailnest.totals").fetchone()
        assert row is not None
        return int(row[0])


async def test_concurrent_adds_share_transactions(pg_url: str, open_pg: Callable[..., Any]) -> None:
    store: PostgresStore = await open_pg(pg_url)
    before = _changes(pg_url)
    summaries = await asyncio.gather(*(store.add(_raw(n), ENVELOPE) for n in range(200)))
    transactions = _changes(pg_url) - before
    assert len({s.uid for s in summaries}) == 200
    # One writer: 200 adds queued in one loop turn go in a handful of commits (batches of up to 500; the first
    # may start before the rest are queued), never one per message.
    assert 1 <= transactions <= 20, transactions
    assert [s.subject for s in summaries] == [f"message {n}" for n in range(200)]
    assert (await store.stats()).total == 200


async def test_add_returns_after_the_commit(pg_url: str, open_pg: Callable[..., Any]) -> None:
    store: PostgresStore = await open_pg(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as other:
        for n in range(5):
            summary = await store.add(_raw(n, 20_000 * n), ENVELOPE)  # small ones on the loop, big ones off it
            row = other.execute("SELECT m.subject, length(b.raw) FROM mailnest.messages m JOIN mailnest.bodies b "
                                "USING (uid) WHERE m.id = %s", (summary.id,)).fetchone()
            assert row == (f"message {n}", len(_raw(n, 20_000 * n)))


async def test_one_bad_message_fails_alone(pg_url: str, open_pg: Callable[..., Any]) -> None:
    """A row PostgreSQL refuses fails its own add(); the others of its batch are stored."""
    store: PostgresStore = await open_pg(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # refuse one subject, as a constraint would
        conn.execute("ALTER TABLE mailnest.messages ADD CONSTRAINT no_poison CHECK (subject != 'message 13')")
    results = await asyncio.gather(*(store.add(_raw(n), ENVELOPE) for n in range(30)), return_exceptions=True)
    failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [13]
    assert isinstance(results[13], psycopg.errors.CheckViolation)
    assert await store.count() == 29


async def test_close_stores_what_was_queued(pg_url: str) -> None:
    store = PostgresStore(pg_url, Hub())
    await store.start()
    adds = [asyncio.create_task(store.add(_raw(n, 30_000 if n % 3 == 0 else 0), ENVELOPE)) for n in range(40)]
    await asyncio.sleep(0)
    await store.close()
    assert len({(await a).uid for a in adds}) == 40
    reopened = PostgresStore(pg_url, Hub())
    await reopened.start()
    try:
        assert await reopened.count() == 40
    finally:
        await reopened.close()


async def test_totals_are_kept_without_counting_rows(pg_url: str, open_pg: Callable[..., Any]) -> None:
    """stats() reads the counter row, which triggers keep right through reads, deletes, IMAP folders."""
    store: PostgresStore = await open_pg(pg_url)
    summaries = [await store.add(_raw(n, n * 10), ENVELOPE) for n in range(6)]
    await store.set_read([summaries[0].id, summaries[1].id], True)
    await store.delete([summaries[2].id])
    await store.imap_create_folder(None, "Archive")
    await store.imap_copy([summaries[3].uid], None, "Archive", move=True)
    left = [s for s in summaries if s.id not in (summaries[2].id, summaries[3].id)]
    expected = (len(left), len([s for s in left if s.id not in (summaries[0].id, summaries[1].id)]),
                sum(s.size for s in left))
    stats = await store.stats()
    assert (stats.total, stats.unread, stats.size) == expected
    with psycopg.connect(pg_url, autocommit=True) as conn:
        counted = conn.execute("SELECT count(*), count(*) FILTER (WHERE read = 0), coalesce(sum(size), 0) "
                               "FROM mailnest.messages WHERE folder = '' AND owner = ''").fetchone()
    assert counted == expected
