"""The store's ingest options on every backend: `ignore_duplicate_ids` (Mailpit's --ignore-duplicate-ids) keeps the
first message of each Message-ID, atomically even for two stores on one database; `use_message_dates` (Mailpit's
--use-message-dates) makes the Date header each message's `created`: list order, before:/after: and --max-age.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from mailnest.models import Envelope
from mailnest.store.base import DuplicateMessageError, Store

from .conftest import StoreMaker

pytestmark = pytest.mark.anyio

ENVELOPE = Envelope("sender@example.com", ("rcpt@example.com",))


def message(subject: str, *, message_id: str | None = None, date: str | None = None) -> bytes:
    lines = ["From: sender@example.com", "To: rcpt@example.com", f"Subject: {subject}"]
    if message_id is not None:
        lines.append(f"Message-ID: <{message_id}>")
    if date is not None:
        lines.append(f"Date: {date}")
    return ("\r\n".join(lines) + "\r\n\r\nbody of " + subject + "\r\n").encode()


Opener = Callable[..., contextlib.AbstractAsyncContextManager[Store]]


@pytest.fixture
def configured(make_store: StoreMaker) -> Opener:
    """`async with configured(ignore_duplicate_ids=True, ...) as store:` a started store with ingest options, on a
    new database (or `database=make_store.last`, the last one again)."""

    @contextlib.asynccontextmanager
    async def opened(*, database: str = "", max_age: float | None = None, ignore_duplicate_ids: bool = False,
                     use_message_dates: bool = False) -> AsyncIterator[Store]:
        store = make_store(database=database, max_age=max_age)
        store.configure_ingest(ignore_duplicate_ids=ignore_duplicate_ids, use_message_dates=use_message_dates)
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    return opened


# -- ignore_duplicate_ids --------------------------------------------------------------------------------------

async def test_a_duplicate_message_id_is_refused_and_the_first_kept(configured: Opener) -> None:
    async with configured(ignore_duplicate_ids=True) as store:
        first = await store.add(message("first", message_id="same@example.com"), ENVELOPE)
        with pytest.raises(DuplicateMessageError) as refused:
            await store.add(message("second", message_id="same@example.com"), ENVELOPE)
        assert refused.value.first_id == first.id and refused.value.message_id == "same@example.com"
        assert [m.subject for m in (await store.list()).messages] == ["first"]
        assert store.duplicates_ignored == 1
        # A message without a Message-ID is always stored; another Message-ID is another message.
        await store.add(message("no id 1"), ENVELOPE)
        await store.add(message("no id 2"), ENVELOPE)
        await store.add(message("other", message_id="other@example.com"), ENVELOPE)
        assert await store.count() == 4
        # Once the first is deleted, the Message-ID is free again.
        await store.delete([first.id])
        again = await store.add(message("third", message_id="same@example.com"), ENVELOPE)
        assert (await store.get(again.id)) is not None and await store.count() == 4


async def test_without_the_option_duplicates_are_stored(configured: Opener) -> None:
    async with configured() as store:
        for subject in ("one", "two"):
            await store.add(message(subject, message_id="same@example.com"), ENVELOPE)
        assert await store.count() == 2 and store.duplicates_ignored == 0


async def test_duplicates_within_one_batch_keep_exactly_one(configured: Opener) -> None:
    async with configured(ignore_duplicate_ids=True) as store:
        # Added at once, they share the writer's batches: the batch itself must not store two.
        results = await asyncio.gather(*(store.add(message(f"copy {i}", message_id=f"m{i % 5}@example.com"),
                                                   ENVELOPE) for i in range(40)), return_exceptions=True)
        stored = [r for r in results if not isinstance(r, BaseException)]
        assert all(isinstance(r, DuplicateMessageError) for r in results if isinstance(r, BaseException))
        assert len(stored) == 5 and await store.count() == 5
        assert sorted(s.message_id for s in stored) == [f"m{i}@example.com" for i in range(5)]


async def test_two_stores_on_one_database_keep_exactly_one_of_each(configured: Opener, make_store: StoreMaker
                                                                   ) -> None:
    async with configured(ignore_duplicate_ids=True) as one, \
            configured(ignore_duplicate_ids=True, database=make_store.last) as two:
        count = 60
        # Each Message-ID reaches both stores at the same moment, as two nodes behind one load balancer.
        results = await asyncio.gather(*(store.add(message(f"race {i}", message_id=f"race{i}@example.com"), ENVELOPE)
                                         for i in range(count) for store in (one, two)), return_exceptions=True)
        unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, DuplicateMessageError)]
        assert not unexpected
        stored = [r for r in results if not isinstance(r, BaseException)]
        assert len(stored) == count
        assert sorted(s.message_id for s in stored) == sorted(f"race{i}@example.com" for i in range(count))
        assert await one.count() == count and await two.count() == count
        assert one.duplicates_ignored + two.duplicates_ignored == count


async def test_mail_stored_before_the_option_was_on_counts_as_seen(configured: Opener, make_store: StoreMaker
                                                                   ) -> None:
    async with configured() as store:
        earliest = await store.add(message("earliest", message_id="old@example.com"), ENVELOPE)
        await store.add(message("copy", message_id="old@example.com"), ENVELOPE)
    async with configured(ignore_duplicate_ids=True, database=make_store.last) as store:
        with pytest.raises(DuplicateMessageError) as refused:
            await store.add(message("late", message_id="old@example.com"), ENVELOPE)
        assert refused.value.first_id == earliest.id
        assert await store.count() == 2


# -- use_message_dates ---------------------------------------------------------------------------------------------

DATED = (("in 2020", "Wed, 01 Jan 2020 10:00:00 +0000"), ("in 2010", "Fri, 01 Jan 2010 10:00:00 +0200"),
         ("undated", None), ("bad date", "not a date at all"))


async def add_dated(store: Store) -> dict[str, str]:
    ids = {}
    for subject, date in DATED:
        ids[subject] = (await store.add(message(subject, date=date), ENVELOPE)).id
    return ids


async def test_message_dates_order_lists_and_are_the_created_time(configured: Opener) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    async with configured(use_message_dates=True) as store:
        ids = await add_dated(store)
        page = await store.list()
        # Newest first by Date; a missing or unparseable Date is the arrival time (now, the newest).
        assert [m.subject for m in page.messages][2:] == ["in 2020", "in 2010"]
        assert {m.subject for m in page.messages[:2]} == {"undated", "bad date"}
        created = {m.subject: m.created for m in page.messages}
        assert created["in 2010"] == datetime(2010, 1, 1, 8, 0, tzinfo=UTC)
        assert created["in 2020"] == datetime(2020, 1, 1, 10, 0, tzinfo=UTC)
        assert created["undated"] >= before and created["bad date"] >= before
        got = await store.get(ids["in 2010"])
        assert got is not None and got.summary.created == created["in 2010"]
        assert got.envelope.received is not None and got.envelope.received >= before  # the arrival is kept
        assert (await store.latest()) is not None
        assert [m.subject for m in (await store.list(query="before:2015-01-01")).messages] == ["in 2010"]
        assert {m.subject for m in (await store.list(query="after:2015-01-01")).messages} == {
            "in 2020", "undated", "bad date"}
        assert [m.subject for m in (await store.list(start=3, limit=1)).messages] == ["in 2010"]


async def test_without_the_option_lists_follow_arrival(configured: Opener) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    async with configured() as store:
        await add_dated(store)
        page = await store.list()
        assert [m.subject for m in page.messages] == ["bad date", "undated", "in 2010", "in 2020"]
        assert all(m.created >= before for m in page.messages)
        assert (await store.list(query="before:2015-01-01")).messages == ()


async def test_max_age_prunes_by_the_message_date(configured: Opener) -> None:
    # As Mailpit: with message dates, --max-age counts from the Date header (a message dated long ago goes at
    # the next pass), and a message without a usable Date from its arrival.
    async with configured(use_message_dates=True, max_age=30) as store:
        ids = await add_dated(store)
        deadline = time.monotonic() + 20
        while await store.get(ids["in 2010"]) is not None or await store.get(ids["in 2020"]) is not None:
            assert time.monotonic() < deadline, "messages dated years ago were not pruned"
            await asyncio.sleep(0.2)
        assert await store.get(ids["undated"]) is not None and await store.get(ids["bad date"]) is not None
