# ruff: noqa: F811
"""Spaces (mailboxes on demand) on every backend, through the public Store methods only: made, shown, listed and
deleted with their mail; their retention (max_messages, max_age) prunes their own mail and nobody else's, says
so on the hub and keeps the totals right; on PostgreSQL several nodes share them and prune each message once.
Also `mailboxes()`'s `latest`, the newest message of each mailbox."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from mailnest.models import Envelope
from mailnest.store.base import Space, SpaceExistsError, Store

# The conformance suite's fixtures (every test on every backend) are registered here by importing them; the
# tests then take them by name, as the suite's own modules do (hence F811 above).
from tests.store.conformance.conftest import (  # noqa: F401
    Events,
    StoreMaker,
    StoreOpener,
    anyio_backend,
    backend,
    make_store,
    open_store,
    postgres_server,
    published,
    store,
)

pytestmark = pytest.mark.anyio

SPACE = "run1-0a1b2c3d4e.mailnest.test"
OTHER = "run2-5f6a7b8c9d.mailnest.test"


def message(subject: str, to: str) -> bytes:
    return f"From: a@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode()


async def deliver(store: Store, subject: str, *rcpts: str, received: datetime | None = None) -> str:
    summary = await store.add(message(subject, rcpts[0]), Envelope("a@example.com", rcpts, received=received))
    return summary.id


async def subjects(store: Store, mailbox: str | None = None) -> list[str]:
    return sorted(s.subject for s in (await store.list(mailbox=mailbox, limit=1000)).messages)


async def totals_agree(store: Store) -> None:
    stats = await store.stats()
    page = await store.list(limit=1000)
    assert stats.total == await store.count() == page.total == len(page.messages)
    assert stats.size == sum(s.size for s in page.messages)


async def test_a_space_is_made_shown_listed_and_taken_once(store: Store) -> None:
    made = Space(SPACE.upper(), created=1_700_000_000.5, max_messages=10, max_age=3600.0,
                 webhook="http://127.0.0.1:9/hook")
    await store.create_space(made)
    await store.create_space(Space(OTHER, created=1_700_000_001.0))
    assert await store.get_space(SPACE) == Space(SPACE, 1_700_000_000.5, 10, 3600.0, "http://127.0.0.1:9/hook")
    assert await store.get_space(SPACE.upper()) == await store.get_space(SPACE)
    assert await store.get_space(OTHER) == Space(OTHER, 1_700_000_001.0, 0, None, None)
    assert await store.get_space("nothing.mailnest.test") is None
    assert [s.domain for s in await store.spaces()] == [SPACE, OTHER]
    with pytest.raises(SpaceExistsError):
        await store.create_space(Space(SPACE, created=5.0))
    assert (await store.get_space(SPACE)) == Space(SPACE, 1_700_000_000.5, 10, 3600.0, "http://127.0.0.1:9/hook")


async def test_deleting_a_space_deletes_its_mail_and_nobody_elses(store: Store, published: Events) -> None:
    await store.create_space(Space(SPACE, created=time.time()))
    await store.create_space(Space(OTHER, created=time.time()))
    mine = [await deliver(store, "mine 1", f"alice@{SPACE}"),
            await deliver(store, "mine 2", f"bob@{SPACE.upper()}", "carol@example.com")]
    await deliver(store, "theirs", f"alice@{OTHER}")
    await deliver(store, "sub-domain", f"alice@x.{SPACE}")  # another domain: not the space's
    await deliver(store, "lookalike", f"alice@{SPACE}.example")
    await published.take(5)
    deleted = await store.delete_space(SPACE)
    assert deleted is not None and sorted(deleted) == sorted(mine)
    assert await subjects(store) == ["lookalike", "sub-domain", "theirs"]
    assert await store.get_space(SPACE) is None and await store.get_space(OTHER) is not None
    seen = await published.take(1)
    assert [(kind, fields["ids"]) for kind, fields in seen] == [("MessagesDeleted", set(mine))]
    assert await store.delete_space(SPACE) is None  # gone: nothing done
    await totals_agree(store)


async def test_a_space_keeps_its_newest_max_messages(store: Store, published: Events) -> None:
    await store.create_space(Space(SPACE, created=time.time(), max_messages=2))
    await store.create_space(Space(OTHER, created=time.time()))
    ids = [await deliver(store, f"s{i}", f"u{i}@{SPACE}") for i in range(5)]
    await deliver(store, "other", f"u@{OTHER}")
    await deliver(store, "outside", "someone@example.com")
    await published.take(7)
    assert sorted(await store.prune_spaces()) == sorted(ids[:3])
    assert await subjects(store, "@" + SPACE) == ["s3", "s4"]
    assert await subjects(store) == ["other", "outside", "s3", "s4"]
    seen = await published.take(1)
    assert {kind for kind, _ in seen} == {"MessagesPruned"}
    assert set().union(*(fields["ids"] for _, fields in seen)) == set(ids[:3])
    assert await store.prune_spaces() == []  # nothing more to do
    await totals_agree(store)


async def test_a_space_drops_mail_past_its_max_age_and_then_itself(store: Store) -> None:
    now = time.time()
    await store.create_space(Space(SPACE, created=now - 7200, max_age=3600.0))
    await store.create_space(Space(OTHER, created=now - 7200))  # no age limit: kept with its old mail
    old = datetime.fromtimestamp(now - 5000, UTC)
    stale = await deliver(store, "stale", f"a@{SPACE}", received=old)
    await deliver(store, "fresh", f"b@{SPACE}", received=datetime.fromtimestamp(now - 60, UTC))
    await deliver(store, "old elsewhere", "c@example.com", received=old)
    await deliver(store, "old in the other space", f"d@{OTHER}", received=old)
    assert await store.prune_spaces(now) == [stale]
    assert await subjects(store) == ["fresh", "old elsewhere", "old in the other space"]
    assert await store.get_space(SPACE) is not None  # it still has mail
    # An hour on, the fresh message is past the age too; the space, older than its age and empty, goes.
    assert len(await store.prune_spaces(now + 3600)) == 1
    assert await store.get_space(SPACE) is None
    assert await store.get_space(OTHER) is not None
    await totals_agree(store)


async def test_a_new_empty_space_is_kept_until_its_age_passes(store: Store) -> None:
    now = time.time()
    await store.create_space(Space(SPACE, created=now, max_age=600.0))
    assert await store.prune_spaces(now + 599) == []
    assert await store.get_space(SPACE) is not None
    await store.prune_spaces(now + 601)
    assert await store.get_space(SPACE) is None


async def test_spaces_survive_a_restart(open_store: StoreOpener, make_store: StoreMaker) -> None:
    async with open_store() as first:
        await first.create_space(Space(SPACE, created=12.25, max_messages=3))
    async with open_store(database=make_store.last) as again:
        assert await again.spaces() == [Space(SPACE, 12.25, 3, None, None)]


async def test_the_store_prunes_spaces_by_itself(store: Store) -> None:
    """The store's own job applies the spaces' retention, with no call from outside."""
    await store.create_space(Space(SPACE, created=time.time(), max_messages=1))
    for i in range(3):
        await deliver(store, f"s{i}", f"u@{SPACE}")
    deadline = time.monotonic() + 60
    while await store.count(mailbox="@" + SPACE) > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await subjects(store, "@" + SPACE) == ["s2"]


async def test_mailboxes_tell_their_newest_message(store: Store) -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    await deliver(store, "a1", "a@example.com", received=start)
    await deliver(store, "both", "a@example.com", "b@example.com", received=start + timedelta(hours=2))
    await deliver(store, "b1", "b@example.com", received=start + timedelta(hours=1))
    boxes = {b.address: b for b in await store.mailboxes()}
    assert boxes["a@example.com"].latest == start + timedelta(hours=2)
    assert boxes["b@example.com"].latest == start + timedelta(hours=2)
    assert (boxes["a@example.com"].total, boxes["b@example.com"].total) == (2, 2)


async def test_nodes_on_one_postgresql_share_spaces_and_prune_each_message_once(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    postgres = StoreMaker("postgres", request, tmp_path_factory)  # several nodes share PostgreSQL only
    nodes = [postgres()]
    nodes += [postgres(database=postgres.last) for _ in range(2)]
    for node in nodes:
        await node.start()
    try:
        await nodes[0].create_space(Space(SPACE, created=time.time(), max_messages=5))
        assert [s.domain for s in await nodes[2].spaces()] == [SPACE]
        for round_ in range(4):
            await asyncio.gather(*(deliver(node, f"r{round_}n{n}", f"u@{SPACE}")
                                   for n, node in enumerate(nodes) for _ in range(3)))
            pruned = await asyncio.gather(*(node.prune_spaces() for node in nodes))
            every = [i for ids in pruned for i in ids]
            assert len(every) == len(set(every)), "a message was pruned twice"
            while await nodes[0].count(mailbox="@" + SPACE) > 5:  # a round whose lock holder came first
                await asyncio.gather(*(node.prune_spaces() for node in nodes))
            assert await nodes[1].count(mailbox="@" + SPACE) == 5
        deleted = await nodes[1].delete_space(SPACE)
        assert deleted is not None and len(deleted) == 5
        assert await nodes[2].get_space(SPACE) is None and await nodes[0].count() == 0
    finally:
        for node in nodes:
            await node.close()
