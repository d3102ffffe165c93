"""The POP3 state machine over a real SQLiteStore, without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from mailnest.config import Config
from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.pop3 import responses
from mailnest.pop3.parser import ARITY
from mailnest.pop3.session import ALLOWED, Credentials, Session, SizeCache, State
from mailnest.store.sqlite import SQLiteStore

RAW = b"From: a@example.com\nTo: b@example.com\nSubject: s\n\nbody\n"


def run_with_store(tmp_path: Path, scenario: Callable[[SQLiteStore, Hub], Awaitable[None]]) -> None:
    async def main() -> None:
        hub = Hub()
        store = SQLiteStore(tmp_path / "mail.db", hub)
        await store.start()
        try:
            await scenario(store, hub)
        finally:
            await store.close()

    asyncio.run(main())


def test_state_table_covers_every_command() -> None:
    allowed_somewhere = set().union(*ALLOWED.values())
    assert allowed_somewhere == set(ARITY)
    assert ALLOWED[State.UPDATE] == frozenset()
    assert "PASS" not in ALLOWED[State.TRANSACTION]
    assert "RETR" not in ALLOWED[State.AUTHORIZATION]


def test_authenticate_hook_sees_credentials_and_can_refuse(tmp_path: Path) -> None:
    offered: list[Credentials] = []

    async def only_bob_with_pw(credentials: Credentials) -> bool:
        offered.append(credentials)
        if credentials.mechanism == "APOP":
            assert credentials.timestamp is not None
            return credentials.digest == responses.apop_digest(credentials.timestamp, "pw")
        return credentials.username == "bob@example.com" and credentials.password == "pw"

    async def scenario(store: SQLiteStore, hub: Hub) -> None:
        await store.add(RAW, Envelope("a@example.com", ("bob@example.com",)))
        session = Session(store, Config(), timestamp="<t.1@mailnest>", authenticate=only_bob_with_pw,
                          peer_host="192.0.2.7")
        assert b"<t.1@mailnest>" in session.greeting()
        await session.handle_line(b"USER bob@example.com\r\n")
        reply = await session.handle_line(b"PASS wrong\r\n")
        assert reply.data.startswith(b"-ERR [AUTH]")
        assert session.state is State.AUTHORIZATION
        # A failed PASS forgets the user name: the client must start again with USER.
        assert (await session.handle_line(b"PASS pw\r\n")).data.startswith(b"-ERR send USER first")
        bad_digest = responses.apop_digest("<t.1@mailnest>", "nope")
        assert (await session.handle_line(f"APOP bob@example.com {bad_digest}".encode())).data.startswith(b"-ERR")
        good_digest = responses.apop_digest("<t.1@mailnest>", "pw").upper()
        reply = await session.handle_line(f"APOP bob@example.com {good_digest}".encode())
        assert reply.data == b"+OK bob@example.com has 1 message(s)\r\n"
        assert session.state is State.TRANSACTION
        assert [c.mechanism for c in offered] == ["USER", "APOP", "APOP"]
        assert offered[0].password == "wrong"
        assert {c.peer_host for c in offered} == {"192.0.2.7"}  # failed logins are slowed down by address

    run_with_store(tmp_path, scenario)


def test_quit_enters_update_and_deletes_only_marked(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore, hub: Hub) -> None:
        kept = await store.add(RAW, Envelope("a@example.com", ("b@example.com",)))
        doomed = await store.add(RAW, Envelope("a@example.com", ("b@example.com",)))
        session = Session(store, Config(), timestamp="<t@x>")
        await session.handle_line(b"USER *")
        await session.handle_line(b"PASS x")
        assert (await session.handle_line(b"DELE 2")).data == b"+OK message 2 deleted\r\n"
        reply = await session.handle_line(b"QUIT")
        assert reply.close and reply.data.startswith(b"+OK") and b"1 message(s) deleted" in reply.data
        assert session.state is State.UPDATE
        assert (await session.handle_line(b"STAT")).data.startswith(b"-ERR")
        assert await store.raw(doomed.id) is None
        assert await store.raw(kept.id) == RAW

    run_with_store(tmp_path, scenario)


def test_quit_before_login_closes_without_update(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore, hub: Hub) -> None:
        session = Session(store, Config(), timestamp="<t@x>")
        reply = await session.handle_line(b"QUIT")
        assert reply.close and reply.data.startswith(b"+OK")
        assert session.state is State.AUTHORIZATION

    run_with_store(tmp_path, scenario)


def test_size_cache_is_shared_and_forgets_deleted_messages(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore, hub: Hub) -> None:
        sizes = SizeCache()
        hub.add_listener(sizes.on_event)
        summary = await store.add(RAW, Envelope("a@example.com", ("b@example.com",)))
        session = Session(store, Config(), timestamp="<t@x>", sizes=sizes)
        await session.handle_line(b"USER *")
        await session.handle_line(b"PASS x")
        crlf_size = len(RAW) + RAW.count(b"\n")  # every bare LF becomes CRLF
        stat = await session.handle_line(b"STAT")
        assert stat.data == f"+OK 1 {crlf_size}\r\n".encode()
        assert sizes.get(summary.uid) == crlf_size
        await store.delete([summary.id])
        assert sizes.get(summary.uid) is None
        again = await store.add(RAW, Envelope("a@example.com", ("b@example.com",)))
        session = Session(store, Config(), timestamp="<t@x>", sizes=sizes)
        await session.handle_line(b"USER *")
        await session.handle_line(b"PASS x")
        await session.handle_line(b"LIST")
        assert len(sizes) == 1
        await store.delete_all()
        assert len(sizes) == 0
        assert again.uid > summary.uid

    run_with_store(tmp_path, scenario)
