"""`compress` (--compress) on every backend: raw bytes are stored as one zstd frame, marked per row in
`bodies.raw_codec`, and every read gives back exactly the bytes received, whatever the flag was when a row was
written or is now. The stored column is read directly to see that it really is compressed."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import zstandard

from mailnest.mime.header import block_end
from mailnest.models import Envelope
from mailnest.store.base import Store

from .conftest import StoreMaker

pytestmark = pytest.mark.anyio

ENVELOPE = Envelope("sender@example.com", ("rcpt@example.com",))
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CORPUS = Path(__file__).parents[2] / "corpus"


def text_message(subject: str, size: int) -> bytes:
    """A plain text message of about `size` bytes (prose-like lines, as mail is)."""
    head = (f"From: Sender <sender@example.com>\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    lines: list[str] = []
    length = len(head)
    while length < size:
        lines.append(f"Line {len(lines)} of the body of {subject}: the quick brown fox jumps over the lazy dog.\r\n")
        length += len(lines[-1])
    return (head + "".join(lines)).encode()


def messages() -> dict[str, bytes]:
    """Byte-exact cases: the corpus (odd line endings, NULs, raw UTF-8, broken MIME), small and large text,
    a header longer than the IMAP header read's first slice (64 KB), and a body bigger than the decoded copy kept."""
    found = {path.name: path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))}
    assert len(found) >= 10
    found["2k"] = text_message("two kilobytes", 2_000)
    found["100k"] = text_message("a hundred kilobytes", 100_000)
    found["600k"] = text_message("bodies read from raw", 600_000)  # past BODIES_KEPT_UP_TO: get() parses raw
    long_header = b"".join(b"X-Long-%d: %s\r\n" % (n, b"header text " * 8) for n in range(800))  # 80 KB
    found["long-header"] = long_header + text_message("long header", 5_000)
    found["bare-lf"] = b"From: a@example.com\nSubject: bare\n\nline one\nline two\n\n\n"
    return found


Opener = Callable[..., contextlib.AbstractAsyncContextManager[Store]]


@pytest.fixture
def configured(make_store: StoreMaker) -> Opener:
    @contextlib.asynccontextmanager
    async def opened(*, database: str = "", compress: bool) -> AsyncIterator[Store]:
        store = make_store(database=database)
        store.configure_ingest(compress=compress)
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    return opened


async def stored(make_store: StoreMaker, uids: list[int]) -> dict[int, tuple[bytes, int]]:
    """bodies.raw and bodies.raw_codec of each uid, read from the database itself."""
    if make_store.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(make_store.last)) as conn:
            rows = conn.execute(f"SELECT uid, raw, raw_codec FROM bodies WHERE uid IN ({','.join('?' * len(uids))})",
                                uids).fetchall()
    else:
        import psycopg

        async with await psycopg.AsyncConnection.connect(make_store.last) as conn:
            cur = await conn.execute("SELECT uid, raw, raw_codec FROM mailnest.bodies WHERE uid = ANY(%s)", (uids,))
            rows = await cur.fetchall()
    return {int(uid): (bytes(raw), int(codec)) for uid, raw, codec in rows}


async def assert_reads_exact(store: Store, sent: dict[str, bytes], ids: dict[str, str], uids: dict[str, int]) -> None:
    """Every read of raw bytes the store has gives back exactly what was sent; sizes are the message's own."""
    for key, raw in sent.items():
        assert await store.raw(ids[key]) == raw, key
    together = await store.raw_with_envelopes(list(ids.values()))
    assert {key: together[ids[key]][0] for key in sent} == sent
    assert await store.imap_raw(list(uids.values())) == {uids[k]: raw for k, raw in sent.items()}
    heads = await store.imap_headers(list(uids.values()))
    for key, raw in sent.items():
        assert heads[uids[key]] == raw[:block_end(raw, 0)[1]], key
    for key, raw in sent.items():
        message = await store.get(ids[key])
        assert message is not None and message.summary.size == len(raw), key
    big = await store.get(ids["600k"]) if "600k" in ids else None
    if big is not None:
        assert "Line 1000 of the body of bodies read from raw" in big.text


async def add_all(store: Store, sent: dict[str, bytes]) -> tuple[dict[str, str], dict[str, int]]:
    ids, uids = {}, {}
    for key, raw in sent.items():
        summary = await store.add(raw, ENVELOPE)
        ids[key], uids[key] = summary.id, summary.uid
    return ids, uids


async def test_compressed_messages_read_back_byte_for_byte_and_are_stored_compressed(
        configured: Opener, make_store: StoreMaker) -> None:
    sent = messages()
    async with configured(compress=True) as store:
        ids, uids = await add_all(store, sent)
        await assert_reads_exact(store, sent, ids, uids)
        stats = await store.stats()
        assert stats.total == len(sent) and stats.size == sum(map(len, sent.values()))  # not the stored size
    rows = await stored(make_store, list(uids.values()))
    for key in ("2k", "100k", "600k", "long-header", "html-only.eml"):
        column, codec = rows[uids[key]]
        assert codec == 1 and column.startswith(ZSTD_MAGIC), key
        # Generated text repeats itself more than mail does: a corpus message must only be smaller.
        assert len(column) < (len(sent[key]) if key.endswith(".eml") else len(sent[key]) / 2), key
        assert zstandard.ZstdDecompressor().decompress(column) == sent[key], key
    # Reopened (as after a restart) with the flag still on, and with it off: the same bytes.
    for compress in (True, False):
        async with configured(database=make_store.last, compress=compress) as store:
            await assert_reads_exact(store, sent, ids, uids)


async def test_a_database_mixes_rows_written_with_and_without_the_flag(configured: Opener,
                                                                       make_store: StoreMaker) -> None:
    plain = {"plain 2k": text_message("written plain", 2_000), "plain 100k": text_message("written plain", 100_000)}
    packed = {"packed 2k": text_message("written packed", 2_000),
              "packed 100k": text_message("written packed", 100_000)}
    async with configured(compress=False) as store:
        ids, uids = await add_all(store, plain)
    database = make_store.last
    async with configured(database=database, compress=True) as store:
        more_ids, more_uids = await add_all(store, packed)
        ids, uids = {**ids, **more_ids}, {**uids, **more_uids}
        await assert_reads_exact(store, {**plain, **packed}, ids, uids)
    rows = await stored(make_store, list(uids.values()))
    assert {key: rows[uids[key]][1] for key in uids} == {"plain 2k": 0, "plain 100k": 0, "packed 2k": 1,
                                                          "packed 100k": 1}
    assert rows[uids["plain 100k"]][0] == plain["plain 100k"]  # old rows are not rewritten
    async with configured(database=database, compress=False) as store:
        await assert_reads_exact(store, {**plain, **packed}, ids, uids)
        stats = await store.stats()
        assert stats.size == sum(map(len, (*plain.values(), *packed.values())))


async def test_a_message_that_looks_like_a_zstd_frame_is_kept_as_sent(configured: Opener,
                                                                      make_store: StoreMaker) -> None:
    """A message whose bytes start with the zstd magic, even one that is a whole valid zstd frame (of another
    message), is stored and read as it came with the flag off, and read unchanged once the flag is on."""
    inner = text_message("inside the frame", 5_000)
    frame = zstandard.ZstdCompressor(level=3).compress(inner)
    hostile = {"frame": frame, "magic then mail": ZSTD_MAGIC + b"\r\n" + inner}
    async with configured(compress=False) as store:
        ids, uids = await add_all(store, hostile)
        for key, raw in hostile.items():
            assert await store.raw(ids[key]) == raw, key
    rows = await stored(make_store, list(uids.values()))
    assert all(rows[uids[key]] == (raw, 0) for key, raw in hostile.items())
    async with configured(database=make_store.last, compress=True) as store:
        for key, raw in hostile.items():
            assert await store.raw(ids[key]) == raw, key
            assert (await store.imap_raw([uids[key]]))[uids[key]] == raw, key
            assert (await store.raw_with_envelopes([ids[key]]))[ids[key]][0] == raw, key
        # Sent again with the flag on, it is compressed like any other message and still reads back exactly.
        again = await store.add(frame, ENVELOPE)
        assert await store.raw(again.id) == frame
    column, codec = (await stored(make_store, [again.uid]))[again.uid]
    assert (zstandard.ZstdDecompressor().decompress(column) if codec else column) == frame


async def test_a_message_zstd_cannot_shrink_is_kept_as_sent(configured: Opener, make_store: StoreMaker) -> None:
    import os

    noise = b"From: a@example.com\r\nSubject: noise\r\n\r\n" + os.urandom(50_000)
    async with configured(compress=True) as store:
        summary = await store.add(noise, ENVELOPE)
        assert await store.raw(summary.id) == noise
        assert summary.size == len(noise)
    assert (await stored(make_store, [summary.uid]))[summary.uid] == (noise, 0)


async def test_imap_copies_keep_the_stored_form(configured: Opener, make_store: StoreMaker) -> None:
    """An IMAP COPY copies the stored bytes and their marker: the copy reads back exactly too."""
    raw = text_message("copied", 30_000)
    async with configured(compress=True) as store:
        summary = await store.add(raw, ENVELOPE)
        await store.imap_create_folder(None, "Archive")
        pairs = await store.imap_copy([summary.uid], None, "Archive")
        (_, copy_uid), = pairs
        assert (await store.imap_raw([copy_uid]))[copy_uid] == raw
        appended = await store.imap_append(None, "Archive", raw, [], None)
        assert (await store.imap_raw([appended]))[appended] == raw
    rows = await stored(make_store, [copy_uid, appended])
    assert rows[copy_uid][1] == 1 and rows[appended][1] == 1
