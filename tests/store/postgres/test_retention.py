"""Retention once per database, however many nodes share it: max_messages is enforced in the ingest
transaction under an advisory lock (nodes take turns, so none prunes the same excess twice), max_age by whichever
node holds the lock that round. Every hub hears of each pruned message exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailnest import events
from mailnest.models import Envelope
from mailnest.store.postgres import PostgresStore

from .test_notify import Recorder

pytestmark = pytest.mark.anyio


def _raw(n: int) -> bytes:
    return f"From: a@example.com\r\nTo: b@example.org\r\nSubject: message {n}\r\n\r\nbody\r\n".encode()


def _pruned(recorder: Recorder) -> Counter[str]:
    seen: Counter[str] = Counter()
    while not recorder.queue.empty():
        event = recorder.queue.get_nowait()
        if isinstance(event, events.MessagesPruned):
            seen.update(event.ids)
    return seen


async def _settle(*stores: PostgresStore) -> None:
    """Until each node's listener has seen the newest change (so every NOTIFY has been handled)."""
    counter = (await stores[0]._counters())[0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while any(s.listener.seen_changes < counter for s in stores):
        assert loop.time() < deadline, "a node's listener never saw the newest change"
        await asyncio.sleep(0.05)


async def test_max_messages_across_nodes(pg_url: str, open_pg: Callable[..., Any]) -> None:
    one: PostgresStore = await open_pg(pg_url, max_messages=5)
    two: PostgresStore = await open_pg(pg_url, max_messages=5)
    await one.wait_listening()
    await two.wait_listening()
    envelope = Envelope("a@example.com", ("b@example.org",))
    with Recorder(one.hub) as here, Recorder(two.hub) as there:
        added = await asyncio.gather(*(store.add(_raw(n), envelope) for n in range(40)
                                       for store in (one, two)))
        await _settle(one, two)
        newest = sorted(s.uid for s in added)[-5:]
        assert await one.uids() == newest and await two.uids() == newest
        expected = {s.id for s in added if s.uid not in newest}
        for recorder in (here, there):
            pruned = _pruned(recorder)
            assert set(pruned) == expected and set(pruned.values()) == {1}


async def test_max_age_prunes_once_per_database(pg_url: str, open_pg: Callable[..., Any]) -> None:
    one: PostgresStore = await open_pg(pg_url, max_age=3600.0)
    two: PostgresStore = await open_pg(pg_url, max_age=3600.0)
    await one.wait_listening()
    await two.wait_listening()
    old = datetime.now(UTC) - timedelta(hours=2)
    with Recorder(one.hub) as here, Recorder(two.hub) as there:
        aged = [await one.add(_raw(n), Envelope("a@example.com", ("b@example.org",), received=old))
                for n in range(6)]
        fresh = await two.add(_raw(99), Envelope("a@example.com", ("b@example.org",)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30  # under pytest's 120 s, so this test's own message shows
        while await one.count() > 1:
            assert loop.time() < deadline, "the aged messages were never pruned"
            # both loops take a round at start; force more rounds without waiting for them
            await asyncio.gather(one._write(lambda tx: one._prune_older(tx, datetime.now(UTC).timestamp() - 3600)),
                                 two._write(lambda tx: two._prune_older(tx, datetime.now(UTC).timestamp() - 3600)))
            await asyncio.sleep(0.05)
        assert await one.uids() == [fresh.uid]
        await _settle(one, two)
        for recorder in (here, there):
            pruned = _pruned(recorder)
            assert set(pruned) == {s.id for s in aged} and set(pruned.values()) == {1}
