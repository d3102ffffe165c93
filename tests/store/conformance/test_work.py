"""Once-only work on every backend: rows written with each message when kinds are configured (none otherwise),
held by the receiving node, finished kind by kind, renewed by their holder, claimed by one other node only once
the lease has run out or the holder let them go, and deleted with their message."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sqlite3
import string
import threading
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from mailnest.events import Hub
from mailnest.models import Envelope, Summary
from mailnest.store.base import MessageRejectedError, Store

from .conftest import StoreMaker

pytestmark = pytest.mark.anyio

ALICE = "alice@example.com"
ENVELOPE = Envelope("from@example.com", (ALICE,), "helo.test", "127.0.0.1:1")
KINDS = ("webhook:http://hook.test/", "relay")


def message(subject: str) -> bytes:
    return f"From: a@example.com\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


@contextlib.asynccontextmanager
async def node(make_store: StoreMaker, holder: str, *, kinds: tuple[str, ...] = KINDS, lease: float = 30.0,
               database: str = "", max_messages: int = 0) -> AsyncIterator[Store]:
    """A started store configured for once-only work as node `holder`; `database` shares another node's."""
    store = make_store(database=database, max_messages=max_messages)
    store.configure_work(kinds, holder=holder, lease=lease)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def wait_for_claim(store: Store, count: int, timeout: float = 15.0) -> list[tuple[int, str]]:
    """Claim until `count` rows were claimed (a lease ends by the database's clock, a moment after ours)."""
    claimed: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while len(claimed) < count and time.monotonic() < deadline:
        claimed += [(item.uid, item.kind) for item in await store.claim_work()]
        await asyncio.sleep(0.05)
    return claimed


async def test_nothing_is_written_when_no_work_is_configured(make_store: StoreMaker) -> None:
    store = make_store()
    await store.start()
    try:
        await store.add(message("plain"), ENVELOPE)
        assert await store.pending_work() == []
        assert await store.claim_work() == []
        assert await store.renew_work() == 0
    finally:
        await store.close()


async def test_each_message_gets_a_row_per_kind_held_by_the_receiving_node(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a") as store:
        before = time.time()
        added = [await store.add(message(f"m{i}"), ENVELOPE) for i in range(3)]
        rows = await store.pending_work()
        assert sorted((r.uid, r.kind) for r in rows) == sorted((m.uid, k) for m in added for k in KINDS)
        assert {r.holder for r in rows} == {"node-a"} and {r.attempts for r in rows} == {0}
        assert all(before + 20 < r.lease_until < time.time() + 40 for r in rows)
        assert await store.claim_work() == []  # every lease still runs: nothing for anybody to claim


async def test_finishing_a_kind_removes_that_kind_only(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a") as store:
        first = await store.add(message("one"), ENVELOPE)
        second = await store.add(message("two"), ENVELOPE)
        assert await store.finish_work([(first.uid, "relay"), (second.uid, KINDS[0]), (second.uid, "relay")]) == 3
        assert [(r.uid, r.kind) for r in await store.pending_work()] == [(first.uid, KINDS[0])]
        assert await store.finish_work([(first.uid, "relay"), (999_999, "relay")]) == 0  # done already, unknown
        assert await store.finish_work([(first.uid, KINDS[0])]) == 1
        assert await store.pending_work() == []


async def test_an_expired_lease_is_claimed_by_another_node_once(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a", lease=0.3) as first:
        added = await first.add(message("orphan"), ENVELOPE)
        async with node(make_store, "node-b", database=make_store.last) as second, \
                node(make_store, "node-c", database=make_store.last) as third:
            claims = await asyncio.gather(wait_for_claim(second, 2), wait_for_claim(third, 2, timeout=2.0))
            assert sorted(claims[0] + claims[1]) == sorted((added.uid, k) for k in KINDS)
            rows = await second.pending_work()
            taken = {(r.uid, r.kind): r for r in rows}
            for owner, claimed in zip(("node-b", "node-c"), claims, strict=True):
                assert all(taken[pair].holder == owner and taken[pair].attempts == 1 for pair in claimed)
            assert await first.renew_work() == 0  # the old holder does not take them back
            assert await second.claim_work() == [] and await third.claim_work() == []


async def test_the_holder_renewing_keeps_its_work(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a", lease=1.0) as first:
        added = await first.add(message("in progress"), ENVELOPE)
        async with node(make_store, "node-b", database=make_store.last) as second:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:  # three leases long, renewed every fifth of one
                await first.renew_work()
                assert await second.claim_work() == []
                await asyncio.sleep(0.2)
            assert {(r.uid, r.holder) for r in await second.pending_work()} == {(added.uid, "node-a")}


async def test_released_work_is_claimable_at_once(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a") as first:
        added = await first.add(message("let go"), ENVELOPE)
        assert await first.release_work() == 2
        async with node(make_store, "node-b", database=make_store.last) as second:
            claimed = await second.claim_work()
            assert sorted((c.uid, c.kind, c.holder) for c in claimed) == sorted(
                (added.uid, k, "node-b") for k in KINDS)


async def test_a_node_claims_only_the_kinds_it_does(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a", lease=0.2) as first:
        added = await first.add(message("relay only here"), ENVELOPE)
        async with node(make_store, "node-b", kinds=("relay",), database=make_store.last) as second:
            claimed = await wait_for_claim(second, 1)
            await asyncio.sleep(0.3)
            claimed += [(c.uid, c.kind) for c in await second.claim_work()]
            assert claimed == [(added.uid, "relay")]


async def test_a_claim_takes_at_most_its_limit(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a", kinds=("relay",)) as first:
        for i in range(5):
            await first.add(message(f"m{i}"), ENVELOPE)
        await first.release_work()
        assert len(await first.claim_work(limit=2)) == 2
        assert len(await first.claim_work(limit=10)) == 3


async def test_deleting_a_message_deletes_its_work(make_store: StoreMaker) -> None:
    async with node(make_store, "node-a", max_messages=3) as store:
        kept = [await store.add(message(f"m{i}"), ENVELOPE) for i in range(4)]  # the first is pruned
        await store.delete([kept[1].id])
        await store.delete_matching(query="subject:m2")
        assert {r.uid for r in await store.pending_work()} == {kept[3].uid}
        await store.delete_all()
        assert await store.pending_work() == []
        await store.release_work()
        assert await store.claim_work() == []


# -- ingest outcomes: a message no database can take fails alone, and for good ------------------------------

async def refusing(store: Store, backend: str) -> tuple[bytes, Envelope]:
    """A message this backend can never store as it is: on PostgreSQL a 3,000-character recipient (its index row
    is beyond btree's limit); on SQLite, whose limits are far away, a message longer than the writer connection
    is told to allow (SQLITE_LIMIT_LENGTH, the limit SQLITE_TOOBIG enforces)."""
    if backend == "postgres":
        letters = "".join(random.choice(string.ascii_lowercase) for _ in range(3000))
        return message("too long a recipient"), Envelope("from@example.com", (f"{letters}@example.com",))
    connections = store.connections  # type: ignore[attr-defined]

    def limit() -> None:
        connections.writer_conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 50_000)

    await connections.in_writer(limit)
    return message("too big " + "x" * 100_000), ENVELOPE


async def test_a_message_the_database_can_never_store_is_rejected_alone(store: Store, backend: str) -> None:
    bad_raw, bad_envelope = await refusing(store, backend)
    results = await asyncio.gather(store.add(message("good one"), ENVELOPE), store.add(bad_raw, bad_envelope),
                                   store.add(message("good two"), ENVELOPE), return_exceptions=True)
    assert isinstance(results[1], MessageRejectedError), results[1]
    assert all(isinstance(r, Summary) for r in (results[0], results[2])), results
    assert sorted(m.subject for m in (await store.list()).messages) == ["good one", "good two"]
    with pytest.raises(MessageRejectedError):  # the same message again: the same permanent answer
        await store.add(bad_raw, bad_envelope)
    assert (await store.add(message("after"), ENVELOPE)).subject == "after"  # the store is not down


class CommitCutter:
    """A TCP proxy in front of PostgreSQL that, once `armed`, lets the next COMMIT through to the server and cuts
    that connection before any answer comes back: the server commits, the client only sees its connection lost."""

    def __init__(self, port: int) -> None:
        self._target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.armed = threading.Event()
        self.cuts = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            cut = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, cut, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, cut, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, cut: threading.Event, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream and self.armed.is_set() and b"COMMIT" in data:
                    self.armed.clear()
                    cut.set()  # nothing the server answers from here on reaches the client
                    sink.sendall(data)
                    time.sleep(0.5)  # the server has committed by now
                    self.cuts += 1
                    for end in (source, sink):
                        with contextlib.suppress(OSError):
                            end.shutdown(socket.SHUT_RDWR)
                    return
                if not cut.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


async def test_a_commit_whose_answer_was_lost_is_acknowledged_once(request: pytest.FixtureRequest) -> None:
    """PostgreSQL only (SQLite has no connection to lose): the client's retry after a 451 would store it twice."""
    from tests.store.conformance.conftest import postgres_databases

    url = urlsplit(postgres_databases(request)())
    assert url.port is not None
    cutter = CommitCutter(url.port)
    try:
        from mailnest.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store = PostgresStore(url._replace(netloc=f"{url.username}@127.0.0.1:{cutter.port}").geturl(), Hub())
        await store.start()
        try:
            await store.add(message("before"), ENVELOPE)
            cutter.armed.set()
            summary = await store.add(message("committed, answer lost"), ENVELOPE)  # not StoreUnavailableError
            assert cutter.cuts == 1
            assert [m.subject for m in (await store.list(query="answer")).messages] == ["committed, answer lost"]
            assert (await store.list(query="answer")).messages[0].id == summary.id and summary.uid > 0
            assert (await store.add(message("after"), ENVELOPE)).subject == "after"
        finally:
            await store.close()
    finally:
        cutter.close()
