"""Retention on every backend: max_messages and max_age prune the oldest delivered messages, say so on the hub,
and leave the totals right."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from mailnest.models import Envelope
from mailnest.store.base import Store

from .conftest import Events, StoreOpener

pytestmark = pytest.mark.anyio


def message(subject: str) -> bytes:
    return f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode()


def envelope(received: datetime | None = None) -> Envelope:
    return Envelope("a@example.com", ("b@example.com",), received=received)


async def totals_agree(store: Store) -> None:
    stats = await store.stats()
    page = await store.list(limit=1000)
    assert stats.total == await store.count() == page.total == len(page.messages)
    assert stats.unread == await store.count(query="is:unread") == page.unread
    assert stats.size == sum(s.size for s in page.messages)


async def test_max_messages_prunes_the_oldest(open_store: StoreOpener) -> None:
    async with open_store(max_messages=3) as store:
        published = Events(store.hub)
        added = [await store.add(message(f"m{i}"), envelope()) for i in range(5)]
        assert [s.subject for s in (await store.list()).messages] == ["m4", "m3", "m2"]
        await totals_agree(store)
        seen = await published.take(7)
        assert [kind for kind, _ in seen if kind != "MessagesPruned"] == ["MessageAdded"] * 5
        pruned = [fields for kind, fields in seen if kind == "MessagesPruned"]
        assert set().union(*(f["ids"] for f in pruned)) == {added[0].id, added[1].id}
        assert set().union(*(f["uids"] for f in pruned)) == {added[0].uid, added[1].uid}
        assert await store.get(added[0].id) is None and await store.raw(added[1].id) is None
        assert await store.count(query="m0") == 0  # gone from the search too
        together = await asyncio.gather(*(store.add(message(f"g{i}"), envelope()) for i in range(6)))
        assert await store.count() == 3
        assert {s.id for s in (await store.list()).messages} == {s.id for s in together[-3:]}
        await totals_agree(store)
        boxes = await store.mailboxes()
        assert [(b.address, b.total) for b in boxes] == [("b@example.com", 3)]
        published.close()


async def test_max_messages_counts_delivered_mail_only(open_store: StoreOpener) -> None:
    async with open_store(max_messages=2) as store:
        first = await store.add(message("first"), envelope())
        await store.imap_create_folder("b@example.com", "Keep")
        await store.imap_copy([first.uid], "b@example.com", "Keep")
        for i in range(3):
            await store.add(message(f"later{i}"), envelope())
        assert await store.count() == 2
        assert await store.count(query="folder:Keep") == 1  # a folder copy is not pruned with deliveries
        await totals_agree(store)


async def test_max_age_prunes_old_messages(open_store: StoreOpener) -> None:
    async with open_store(max_age=30.0) as store:
        published = Events(store.hub)
        old = await store.add(message("old"), envelope(datetime.now(UTC) - timedelta(hours=2)))
        new = await store.add(message("new"), envelope())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and await store.count() != 1:
            await asyncio.sleep(0.1)
        assert [s.id for s in (await store.list()).messages] == [new.id]
        seen = await published.take(3)
        pruned = [fields for kind, fields in seen if kind == "MessagesPruned"]
        assert pruned == [{"ids": {old.id}, "uids": {old.uid}}]
        await totals_agree(store)
        published.close()
