"""One message never hurts the others' ingest: a message SQLite refuses fails alone, envelopes with bytes that are
not UTF-8 are stored, and a message that is slow to parse does not hold up other messages' commits."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from mailnest import mime
from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store import sqlite as sqlite_store
from mailnest.store.faithful import faithful_text
from mailnest.store.sqlite import SQLiteStore


def small(subject: str) -> bytes:
    return f"From: a@x.test\r\nTo: b@x.test\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def test_a_message_that_fails_in_a_batch_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"

    async def main() -> None:
        store = SQLiteStore(path, Hub())
        await store.start()
        # A real refusal by SQLite for one message only, as a constraint or an encoding error would be.
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TRIGGER poison BEFORE INSERT ON messages WHEN new.subject = 'poison' "
                         "BEGIN SELECT RAISE(ABORT, 'this message is refused'); END")
        conn.close()
        try:
            subjects = [f"ok {i}" for i in range(30)]
            subjects.insert(15, "poison")
            adds = [store.add(small(s), Envelope("a@x.test", ("b@x.test",))) for s in subjects]
            results = await asyncio.gather(*adds, return_exceptions=True)
            failed = [s for s, r in zip(subjects, results, strict=True) if isinstance(r, BaseException)]
            assert failed == ["poison"]
            assert isinstance(results[15], sqlite3.IntegrityError)
            stored = {m.subject for m in (await store.list(limit=100)).messages}
            assert stored == {s for s in subjects if s != "poison"}
            assert (await store.stats()).total == 30
            # The writer carries on.
            assert (await store.add(small("after"), Envelope("a@x.test", ("b@x.test",)))).subject == "after"
        finally:
            await store.close()

    asyncio.run(main())


def test_envelopes_with_bytes_that_are_not_utf8_are_stored_with_the_rest_of_their_batch() -> None:
    # What aiosmtpd hands over for `RCPT TO:<j\xfcrgen@x.test>` and `EHLO m\xfcnchen` sent in Latin-1.
    latin1 = b"j\xfcrgen@x.test".decode("utf-8", "surrogateescape")
    helo = b"m\xfcnchen".decode("utf-8", "surrogateescape")
    assert faithful_text(latin1) == "jürgen@x.test"
    assert faithful_text("caf\u00e9 \ud800") == "caf\u00e9 \ufffd"

    async def main() -> None:
        store = SQLiteStore(None, Hub())
        await store.start()
        try:
            adds = [store.add(small(f"normal {i}"), Envelope("a@x.test", ("b@x.test",))) for i in range(20)]
            adds.insert(10, store.add(small("legacy"), Envelope(latin1, (latin1, "b@x.test"), helo=helo),
                                      tags=("t\udcfcg",)))
            results = await asyncio.gather(*adds)
            assert len(results) == 21
            legacy = results[10]
            message = await store.get(legacy.id)
            assert message is not None
            assert message.envelope.mail_from == "jürgen@x.test"
            assert message.envelope.rcpt_tos == ("jürgen@x.test", "b@x.test")
            assert message.envelope.helo == "münchen"
            assert message.summary.tags and "\udcfc" not in "".join(message.summary.tags)
            assert await store.count(mailbox="jürgen@x.test") == 1
            assert await store.count(query="envelope-from:jürgen") == 1
            assert await store.set_tags([legacy.id], ["s\udcfcß"]) == [legacy.id]  # a tag from JSON, say
        finally:
            await store.close()

    asyncio.run(main())


def _slow_message(lines: int) -> bytes:
    return b"Subject: big\r\n" + b"".join(b"X-Filler-%d: some header value\r\n" % i for i in range(lines)) + b"\r\nx\r\n"


def test_a_message_slow_to_parse_does_not_hold_up_other_commits() -> None:
    raw = _slow_message(800_000)
    started = time.perf_counter()
    mime.parse(raw)
    parse_time = time.perf_counter() - started
    if parse_time < 0.4:  # a much faster parser: a bigger message keeps the test meaningful
        raw = _slow_message(int(800_000 * 0.8 / parse_time))
    assert len(raw) > sqlite_store.PREPARE_ON_LOOP_UP_TO

    async def main() -> None:
        store = SQLiteStore(None, Hub())
        await store.start()
        try:
            big = asyncio.ensure_future(store.add(raw, Envelope("big@x.test", ("b@x.test",))))
            await asyncio.sleep(0.05)  # the big one is being parsed now
            latencies = []
            done_before_big = 0
            for i in range(10):
                begin = time.perf_counter()
                await store.add(small(f"small {i}"), Envelope("a@x.test", ("b@x.test",)))
                latencies.append(time.perf_counter() - begin)
                done_before_big += not big.done()
            summary = await big
            assert summary.subject == "big"
            # Parsing in the writer thread held every small commit until the big message was parsed.
            assert done_before_big >= 5, f"only {done_before_big} small messages committed while it was parsed"
            assert max(latencies[:done_before_big]) < 0.3, latencies
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize("count", [3])
def test_close_stores_messages_still_being_parsed(count: int) -> None:
    raw = _slow_message(50_000)

    async def main() -> None:
        store = SQLiteStore(None, Hub())
        await store.start()
        adds = [asyncio.ensure_future(store.add(raw, Envelope("a@x.test", ("b@x.test",)))) for _ in range(count)]
        await asyncio.sleep(0)  # each add() is now parsing in the parse pool
        await store.close()
        assert all(a.done() and not a.exception() for a in adds)

    asyncio.run(main())


def test_a_lone_surrogate_in_a_parsed_field_is_stored_cleaned_rather_than_refused() -> None:
    """Defence in depth: should a parser ever hand the writer a lone surrogate (mime/params.py decodes with
    surrogateescape), the message is still stored, with the text cleaned as envelope text is."""

    async def main() -> None:
        store = SQLiteStore(None, Hub())
        await store.start()
        try:
            loop = asyncio.get_running_loop()
            item = sqlite_store._Pending(small("x"), Envelope("a@x.test", ("b@x.test",)), (), False,
                                         loop.create_future())
            prepared = sqlite_store.prepare(item.raw, item.envelope)
            item.prepared = prepared._replace(row={**prepared.row, "subject": "caf\udce9"})
            other = sqlite_store._Pending(small("y"), Envelope("a@x.test", ("b@x.test",)), (), False,
                                          loop.create_future())
            other.prepared = sqlite_store.prepare(other.raw, other.envelope)
            queue = store.ingest.queue
            assert queue is not None
            queue.put_nowait(item)
            queue.put_nowait(other)
            await asyncio.gather(item.future, other.future)
            assert {m.subject for m in (await store.list()).messages} == {"café", "y"}
        finally:
            await store.close()

    asyncio.run(main())
