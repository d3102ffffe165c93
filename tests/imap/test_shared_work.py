"""Work that many sessions need at the same moment is done once: the view of a mailbox that a delivery made stale,
and the SEARCH haystacks of messages nobody has searched yet. Proven over real sockets, with ten imaplib sessions
asking at once, by counting the store reads behind them (the reads are slowed down so that the sessions overlap);
each read still gives every session the right answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from mailnest.runtime import ServerThread

from .helpers import deliver, login

SESSIONS = 10


def _spy(server: ServerThread, name: str, calls: list[Any]) -> None:
    """Count (and slow down) one store read, on the real store."""
    real = getattr(server.store, name)

    async def counted(*args: Any) -> Any:
        calls.append(args)
        await asyncio.sleep(0.3)
        return await real(*args)

    setattr(server.store, name, counted)


def _at_once(clients: list[Any], act: Callable[[Any], Any]) -> list[Any]:
    results: list[Any] = [None] * len(clients)
    barrier = threading.Barrier(len(clients))

    def run(index: int) -> None:
        barrier.wait()
        results[index] = act(clients[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _each_read_at_most_twice(calls: list[Any], messages: int) -> None:
    """Every one of `messages` header reads was asked for, none more than twice (a session may come in just
    after another's read ended), where ten sessions each reading would make ten."""
    reads: dict[int, int] = {}
    for (uids,) in calls:
        for uid in uids:
            reads[uid] = reads.get(uid, 0) + 1
    assert len(reads) == messages
    assert max(reads.values()) <= 2, f"a message's header was read {max(reads.values())} times"


def test_sessions_that_select_together_share_one_read_of_the_view(server: ServerThread) -> None:
    for n in range(5):
        deliver(server, subject=f"before {n}")
    clients = [login(server) for _ in range(SESSIONS)]
    calls: list[Any] = []
    try:
        deliver(server, subject="the one that makes every view stale")
        _spy(server, "imap_view", calls)
        answers = _at_once(clients, lambda c: c.select("INBOX"))
        assert [a for a in answers] == [("OK", [b"6"])] * SESSIONS
        assert 1 <= len(calls) <= 3, f"{len(calls)} reads of the same view for {SESSIONS} sessions"
    finally:
        for client in clients:
            client.logout()


def test_sessions_that_search_together_read_each_new_message_once(server: ServerThread) -> None:
    clients = [login(server) for _ in range(SESSIONS)]
    for client in clients:
        client.select("INBOX")
    for n in range(20):
        deliver(server, subject=f"new {n}", sender="alice@example.com" if n % 2 else "bob@example.com")
    for client in clients:
        client.noop()  # each session learns of the twenty (EXISTS) before it searches them
    calls: list[Any] = []
    _spy(server, "imap_headers", calls)
    try:
        answers = _at_once(clients, lambda c: c.search(None, 'FROM "alice"'))
        assert all(a[0] == "OK" for a in answers)
        assert len({a[1][0] for a in answers}) == 1  # every session found the same ten
        assert len(answers[0][1][0].split()) == 10
        _each_read_at_most_twice(calls, 20)
    finally:
        for client in clients:
            client.logout()


def test_sessions_that_fetch_the_same_new_mail_compute_each_envelope_once(server: ServerThread) -> None:
    clients = [login(server) for _ in range(SESSIONS)]
    for client in clients:
        client.select("INBOX")
    for n in range(20):
        deliver(server, subject=f"fresh {n}")
    for client in clients:
        client.noop()
    calls: list[Any] = []
    _spy(server, "imap_headers", calls)
    try:
        answers = _at_once(clients, lambda c: c.fetch("1:20", "(ENVELOPE)"))
        assert all(a[0] == "OK" and len(a[1]) == 20 for a in answers)
        assert len({tuple(a[1]) for a in answers}) == 1  # the same twenty envelopes for every session
        assert b"fresh 0" in answers[0][1][0]
        _each_read_at_most_twice(calls, 20)
    finally:
        for client in clients:
            client.logout()
