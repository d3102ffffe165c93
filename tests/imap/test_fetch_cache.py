"""FETCH answers kept in the listener's cache (ENVELOPE, BODY, BODYSTRUCTURE) are served without reading the
message again. Proven over a real socket by taking the message bytes away from the database behind the server's
back once the answers are cached: a FETCH that still needed the bytes would find the message gone and answer
nothing for it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from mailnest.config import Config, Listen
from mailnest.events import Hub
from mailnest.imap.cache import MessageCache
from mailnest.imap.envelope import envelope
from mailnest.imap.headers import header_end
from mailnest.imap.server import start_imap
from mailnest.runtime import ServerThread
from mailnest.store.sqlite import SQLiteStore

from .helpers import deliver, login, multipart
from .wire import fetches, raw


def _drop_bodies(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("DELETE FROM bodies").rowcount == 1


def test_cached_structure_and_envelope_are_answered_without_reading_the_message(
        make_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    server = make_server(db=db)
    deliver(server, raw=multipart("Cached"))
    client = login(server)
    try:
        raw(client, "EXAMINE INBOX")
        first = fetches(raw(client, "FETCH 1 (BODYSTRUCTURE BODY ENVELOPE)")[0])
        assert len(first) == 1 and b'"Cached"' in first[0] and b'"mixed"' in first[0]
        _drop_bodies(db)
        again = fetches(raw(client, "FETCH 1 (BODYSTRUCTURE BODY ENVELOPE)")[0])
        assert again == first
        assert fetches(raw(client, "FETCH 1 BODYSTRUCTURE")[0]) == [
            first[0][:first[0].index(b" BODY (")] + b")\r\n"]
        # Items that need the bytes do find the message gone (and say nothing for it): the bytes really are away.
        assert fetches(raw(client, "FETCH 1 (BODYSTRUCTURE BODY.PEEK[TEXT])")[0]) == []
    finally:
        client.logout()


def _message(n: int) -> bytes:
    return (b"From: Sender <sender@example.com>\r\nTo: rcpt@example.com\r\nSubject: Message %d\r\n"
            b"Message-ID: <m%d@example.com>\r\n\r\nBody.\r\n" % (n, n))


def test_an_envelope_evicted_during_a_fetch_is_still_rendered(tmp_path: Path) -> None:
    """A full cache evicts while a FETCH renders: the envelopes it found cached when the FETCH began must still be
    the ones sent (a second lookup at render time found nothing, rendered an empty header as an all-NIL
    ENVELOPE, and cached that for good)."""
    size = len(envelope(_message(1), 0, header_end(_message(1)))) + 64  # the cache's cost of one envelope
    cache = MessageCache(budget=8 * size)  # holds exactly eight envelopes (one entry may be an eighth of it)

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        hub = Hub()
        store = SQLiteStore(tmp_path / "mail.db", hub)
        await store.start()
        listen = Listen("127.0.0.1", 0)
        server = await start_imap(Config(imap=listen), store, hub, listen, cache=cache)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])

        async def command(line: bytes) -> list[bytes]:
            writer.write(line + b"\r\n")
            lines = []
            while not (answer := await reader.readline()).startswith(line.split(b" ")[0] + b" "):
                lines.append(answer)
            assert b" OK " in answer, answer
            return lines

        try:
            await reader.readline()
            await command(b"a LOGIN * x")
            for n in range(1, 10):
                await command(b"b APPEND INBOX {%d+}\r\n%s" % (len(_message(n)), _message(n)))
            await command(b"c EXAMINE INBOX")
            await command(b"d FETCH 2:9 ENVELOPE")  # the cache is now full of messages 2 to 9
            # message 1's new envelope evicts message 2's, which this FETCH found cached a moment before
            first = await command(b"e FETCH 1:9 ENVELOPE")
            again = await command(b"f FETCH 1:9 ENVELOPE")
            return first, again
        finally:
            writer.close()
            server.close()
            await server.wait_closed()
            await store.close()

    first, again = asyncio.run(scenario())
    for answers in (first, again):
        assert len(answers) == 9
        for n, line in enumerate(answers, start=1):
            assert b'"Message %d"' % n in line, line
