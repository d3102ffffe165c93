"""Start, close and reopen on every backend: what a database keeps (uidvalidity, uids never reused, messages,
flags, folders, subscriptions, \\Recent marks, tags), adds still queued at close, many adds at once."""

from __future__ import annotations

import asyncio

import pytest

from mailnest.models import Envelope
from mailnest.store.base import INBOX, Store

from .conftest import StoreMaker, StoreOpener

pytestmark = pytest.mark.anyio

ALICE = "alice@example.com"
ENVELOPE = Envelope("from@example.com", (ALICE,), "helo.test", "127.0.0.1:1")


def message(subject: str, body: str = "body\r\n") -> bytes:
    return f"From: a@example.com\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\n{body}".encode()


async def test_a_reopened_database_keeps_everything(open_store: StoreOpener, make_store: StoreMaker) -> None:
    async with open_store() as store:
        validity = store.uidvalidity
        assert validity > 0
        kept = await store.add(message("kept"), ENVELOPE, tags=["red"])
        last = await store.add(message("last"), ENVELOPE)
        await store.delete([last.id])
        await store.imap_store_flags([kept.uid], "+", ["\\Seen", "$Work"])
        await store.imap_create_folder(ALICE, "Archive")
        filed = (await store.imap_copy([kept.uid], ALICE, "Archive"))[0][1]
        await store.imap_subscribe(ALICE, "Archive", True)
        await store.imap_claim_recent(ALICE, INBOX, kept.uid)
    database = make_store.last

    async with open_store(database=database) as store:
        assert store.uidvalidity == validity
        [summary] = (await store.list()).messages
        assert summary.id == kept.id and summary.read and summary.tags == ("red",)
        assert (await store.imap_view(ALICE, INBOX)).flags == [frozenset({"\\Seen", "$Work"})]
        assert await store.imap_folders(ALICE) == [INBOX, "Archive"]
        assert (await store.imap_view(ALICE, "Archive")).uids == [filed]
        assert await store.imap_subscriptions(ALICE) == ["Archive"]
        assert (await store.imap_view(ALICE, INBOX)).recent_mark == kept.uid
        assert await store.raw(kept.id) == message("kept")
        assert await store.count(query="kept") == 1
        again = await store.add(message("again"), ENVELOPE)
        assert again.uid > filed > last.uid  # a uid is never given twice, deleted or not, across restarts
        assert await store.imap_uidnext() == again.uid + 1


async def test_close_finishes_the_adds_already_made(open_store: StoreOpener, make_store: StoreMaker) -> None:
    store = make_store()
    await store.start()
    pending = [asyncio.ensure_future(store.add(message(f"q{i}"), ENVELOPE)) for i in range(50)]
    await asyncio.sleep(0)
    await store.close()
    assert all(p.done() and not p.exception() for p in pending)
    async with open_store(database=make_store.last) as reopened:
        assert await reopened.count() == 50
        assert {s.id for s in (await reopened.list(limit=100)).messages} == {p.result().id for p in pending}


async def test_many_adds_at_once_all_land(store: Store) -> None:
    summaries = await asyncio.gather(*(store.add(message(f"m{i}"), ENVELOPE) for i in range(300)))
    assert len({s.id for s in summaries}) == 300
    uids = [s.uid for s in summaries]
    assert len(set(uids)) == 300
    page = await store.list(limit=1000)
    assert page.total == 300 and [s.uid for s in page.messages] == sorted(uids, reverse=True)
    assert {s.subject for s in page.messages} == {f"m{i}" for i in range(300)}


async def test_a_huge_body_reads_back_whole(store: Store) -> None:
    big = "line of text " * 40_000  # past what a backend may keep decoded beside the raw bytes
    summary = await store.add(message("big", big), ENVELOPE)
    got = await store.get(summary.id)
    assert got is not None and got.text == big
    assert got.summary.snippet.startswith("line of text")
    assert await store.raw(summary.id) == message("big", big)
