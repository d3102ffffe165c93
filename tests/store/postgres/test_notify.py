"""Live events across nodes: two PostgresStores on one database, each with its own hub. A change made through
one is published once on its own hub and, through NOTIFY, once on the other's; a long list of ids is split
across payloads; a node whose LISTEN connection was cut catches up on what it missed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from mailnest import events
from mailnest.events import Event, Hub
from mailnest.models import Envelope
from mailnest.store.postgres import PostgresStore, notify

pytestmark = pytest.mark.anyio
ENVELOPE = Envelope("a@example.com", ("b@example.org",))
WAIT = 30.0  # seconds; generous, the CI machine is busy


def _raw(n: int) -> bytes:
    return f"From: a@example.com\r\nTo: b@example.org\r\nSubject: message {n}\r\n\r\nbody {n}\r\n".encode()


class Recorder:
    """Every event a hub publishes, in order, from the moment it is made (a hub listener: nothing is dropped)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        hub.add_listener(self.queue.put_nowait)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.remove_listener(self.queue.put_nowait)


async def _next(recorder: Recorder, kind: type[Event]) -> Any:
    """The next event of `kind` (others, such as stats ticks, are skipped)."""
    skipped = []
    while True:
        try:
            event = await asyncio.wait_for(recorder.queue.get(), WAIT)
        except TimeoutError:
            raise AssertionError(f"no {kind.__name__} within {WAIT} s (only {skipped})") from None
        if isinstance(event, kind):
            return event
        skipped.append(event)


async def _quiet(recorder: Recorder, kind: type[Event], seconds: float = 0.5) -> None:
    """No event of `kind` arrives for a while (a duplicate would)."""
    await asyncio.sleep(seconds)
    while not recorder.queue.empty():
        event = recorder.queue.get_nowait()
        assert not isinstance(event, kind), f"unexpected {event!r}"


@pytest.fixture
async def nodes(pg_url: str, open_pg: Callable[..., Any]) -> tuple[PostgresStore, PostgresStore]:
    one: PostgresStore = await open_pg(pg_url)
    two: PostgresStore = await open_pg(pg_url)
    await one.wait_listening()
    await two.wait_listening()
    return one, two


async def test_changes_reach_the_other_node_once(nodes: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = nodes
    with Recorder(one.hub) as here, Recorder(two.hub) as there:
        summary = await one.add(_raw(1), ENVELOPE)
        assert (await _next(here, events.MessageAdded)).summary == summary
        assert (await _next(there, events.MessageAdded)).summary == summary
        assert await one.set_read([summary.id], True) == [summary.id]
        assert await _next(there, events.ReadChanged) == events.ReadChanged((summary.id,), (summary.uid,), True)
        assert await one.set_tags([summary.id], ["urgent"]) == [summary.id]
        assert await _next(there, events.TagsChanged) == events.TagsChanged((summary.id,), ("urgent",))
        flags = await two.imap_store_flags([summary.uid], "+", ["\\Flagged"])
        changed = await _next(here, events.FlagsChanged)
        assert (changed.ids, changed.flags) == ((summary.id,), (flags[summary.uid],))
        assert await two.delete([summary.id]) == [summary.id]
        assert await _next(here, events.MessagesDeleted) == events.MessagesDeleted((summary.id,), (summary.uid,))
        await one.delete_all()
        assert isinstance(await _next(there, events.AllDeleted), events.AllDeleted)
        await _quiet(here, events.MessageAdded)  # its own add was published once, not again from NOTIFY
        assert (await two.stats()).tags == ()  # the other node's tag cache was reset by the remote events


async def test_a_long_list_of_ids_is_split_across_payloads(nodes: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = nodes
    added = [await one.add(_raw(n), ENVELOPE) for n in range(600)]
    assert len(notify.payloads("n", 1, [events.MessagesDeleted(tuple(s.id for s in added),
                                                               tuple(s.uid for s in added))])) > 1
    with Recorder(two.hub) as there:
        deleted = await one.delete_matching(query="message")
        assert len(deleted) == 600
        ids: set[str] = set()
        uids: set[int] = set()
        while len(ids) < 600:
            event = await _next(there, events.MessagesDeleted)
            assert len(event.ids) == len(event.uids)
            ids.update(event.ids)
            uids.update(event.uids)
        assert ids == {s.id for s in added} and uids == {s.uid for s in added}


def _add_from_another_thread(url: str, n: int) -> int:
    """Store a message through a third node on a loop of its own, while the caller's loop is blocked."""
    result: list[int] = []

    async def run() -> None:
        store = PostgresStore(url, Hub())
        await store.start()
        try:
            result.append((await store.add(_raw(n), ENVELOPE)).uid)
            await store.set_read([s.id for s in (await store.list()).messages], True)
        finally:
            await store.close()

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    thread.join(60)
    return result[0]


async def test_a_node_that_lost_its_listener_catches_up(pg_url: str,
                                                         nodes: tuple[PostgresStore, PostgresStore]) -> None:
    """The LISTEN connection is cut, and another node commits before this one can listen again (its loop is
    blocked meanwhile): the NOTIFY is gone, so only the catch-up can tell this node, and it does."""
    _, two = nodes
    with psycopg.connect(pg_url, autocommit=True) as conn, Recorder(two.hub) as there:
        # Blocking calls on purpose: nothing on this loop runs until the third node has committed.
        cut = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s "
                           "AND datname = current_database()", (f'LISTEN "{two.channel}"',)).fetchall()
        assert cut == [(True,), (True,)]  # both nodes' listeners
        uid = _add_from_another_thread(pg_url, 7)
        added = await _next(there, events.MessageAdded)
        assert (added.summary.uid, added.summary.subject) == (uid, "message 7")
        # the read change has no rows to show for it: the node is told to look again
        assert isinstance(await _next(there, events.StatsChanged), events.StatsChanged)
        await _quiet(there, events.MessageAdded)
    assert two.listener.reconnects == 1
