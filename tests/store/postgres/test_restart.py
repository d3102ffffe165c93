"""The database goes away and comes back (pg_ctl stop/start, pg_ctl restart) under running stores: meanwhile
every call raises StoreUnavailableError (SMTP answers 451, HTTP 503), and afterwards the pool and the LISTEN
connection recover by themselves, with no acknowledged message lost and no wake-up missed.

A cluster of its own: stopping the session's cluster would break other tests' stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from mailnest import events
from mailnest.models import Envelope, Summary
from mailnest.store.postgres import PostgresStore, StoreUnavailableError
from tests.pgcluster import PostgresServer, start_server

from .test_notify import Recorder, _next

pytestmark = pytest.mark.anyio
ENVELOPE = Envelope("a@example.com", ("b@example.org",))
RECOVERY = 60.0  # seconds a store may take to notice the server is back (generous: the CI machine is busy)


def _raw(n: int) -> bytes:
    return f"From: a@example.com\r\nTo: b@example.org\r\nSubject: message {n}\r\n\r\nbody\r\n".encode()


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    yield from start_server()


async def _add_when_back(store: PostgresStore, n: int) -> Summary:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY
    while True:
        try:
            return await store.add(_raw(n), ENVELOPE)
        except StoreUnavailableError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_down_then_back(own_server: PostgresServer, open_pg: Callable[..., Any]) -> None:
    url = own_server.create_database()
    one: PostgresStore = await open_pg(url)
    two: PostgresStore = await open_pg(url)
    await one.wait_listening()
    await two.wait_listening()
    before = await one.add(_raw(0), ENVELOPE)
    await asyncio.to_thread(own_server.stop)
    try:
        with pytest.raises(StoreUnavailableError):
            await one.add(_raw(1), ENVELOPE)
        with pytest.raises(StoreUnavailableError):
            await one.list()
        with pytest.raises(StoreUnavailableError):
            await one.set_read([before.id], True)
        with pytest.raises(StoreUnavailableError):
            await two.imap_view(None, "INBOX")
    finally:
        await asyncio.to_thread(own_server.start, same_port=True)
    with Recorder(two.hub) as there:
        after = await _add_when_back(one, 2)
        added = await _next(there, events.MessageAdded)  # by NOTIFY or, if it came first, by the catch-up
        assert added.summary == after
    assert [s.id for s in (await two.list()).messages] == [after.id, before.id]
    assert after.uid > before.uid
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY
    while not (one.listener.reconnects and two.listener.reconnects) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    assert one.listener.reconnects == two.listener.reconnects == 1


async def test_restart_under_load_loses_nothing_acknowledged(own_server: PostgresServer,
                                                             open_pg: Callable[..., Any]) -> None:
    """Adds keep coming while the server restarts: each either returns (and is then stored) or raises
    StoreUnavailableError; nothing else, and nothing acknowledged is missing afterwards."""
    url = own_server.create_database()
    store: PostgresStore = await open_pg(url)
    acknowledged: list[Summary] = []
    refused = 0
    stop = asyncio.Event()

    async def client(k: int) -> None:
        nonlocal refused
        n = 0
        while not stop.is_set():
            try:
                acknowledged.append(await store.add(_raw(k * 10_000 + n), ENVELOPE))
            except StoreUnavailableError:
                refused += 1
                await asyncio.sleep(0.05)
            n += 1

    clients = [asyncio.create_task(client(k)) for k in range(4)]
    await asyncio.sleep(0.3)
    await asyncio.to_thread(own_server.restart)
    await _add_when_back(store, 99_999)
    stop.set()
    await asyncio.gather(*clients)
    assert acknowledged
    with psycopg.connect(url, autocommit=True) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM mailnest.messages")}
    assert {s.id for s in acknowledged} <= stored
    assert (await store.stats()).total == len(stored)
