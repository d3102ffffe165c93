"""Tags on every backend: what a message gets at ingest (X-Tags, plus-addresses, explicit tags, --tag rules),
tag_counts, rename_tag and delete_tag, and the events they publish."""

from __future__ import annotations

from collections import Counter

import pytest

from mailnest.models import Envelope
from mailnest.store.base import Store

from .conftest import Events, StoreOpener

pytestmark = pytest.mark.anyio


def message(subject: str, *, to: str = "alice@example.com", headers: str = "", body: str = "body\r\n") -> bytes:
    return f"From: sender@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n{headers}\r\n{body}".encode()


def envelope(*rcpts: str) -> Envelope:
    return Envelope("sender@example.com", rcpts or ("alice@example.com",))


async def test_ingest_tags_from_headers_addresses_and_the_caller(store: Store) -> None:
    x_tags = await store.add(message("x", headers="X-Tags: red, Blue ,, red\r\n"), envelope())
    assert set(x_tags.tags) == {"red", "Blue"}
    plus = await store.add(message("plus", to="alice+billing@example.com"), envelope("alice+billing@example.com"))
    assert plus.tags == ("billing",)
    bcc = await store.add(message("bcc"), envelope("alice@example.com", "bob+hidden@example.com"))
    assert bcc.tags == ("hidden",)  # a plus-address among the envelope recipients counts too
    explicit = await store.add(message("explicit"), envelope(), tags=["From API", "red", "RED"])
    assert set(explicit.tags) == {"From API", "red"}  # unique whatever the case
    for summary in (x_tags, plus, bcc, explicit):
        got = await store.get(summary.id)
        assert got is not None and got.summary.tags == summary.tags
    assert await store.count(query="tag:red") == 2


async def test_tag_rules_at_ingest(open_store: StoreOpener) -> None:
    rules = ["subject:invoice=billing", "Urgent=subject:urgent", "from:boss@example.com=Urgent",
             "larger:1k=big", "envelope-from:<>=bounce", "to:carol=carol"]
    async with open_store(tags=rules) as store:
        published = Events(store.hub)
        invoice = await store.add(message("Your invoice"), envelope())
        assert invoice.tags == ("billing",)
        assert await published.take(1) == [("MessageAdded", {"id": invoice.id, "uid": invoice.uid,
                                                             "folder": ""})]
        urgent = (await store.add(message("URGENT: invoice").replace(b"sender@", b"boss@"), envelope()))
        assert urgent.tags == ("billing", "Urgent")  # every rule that matches; one tag once
        big = await store.add(message("report", body="x" * 2000), envelope())
        assert big.tags == ("big",)
        bounce = await store.add(message("failure"), Envelope("", ("alice@example.com",)))
        assert bounce.tags == ("bounce",)
        plain = await store.add(message("hello", headers="X-Tags: own\r\n"), envelope())
        assert plain.tags == ("own",)  # no rule matches: only its own tags
        assert (await store.get(urgent.id)).summary.tags == ("billing", "Urgent")  # type: ignore[union-attr]
        counts = await store.tag_counts()
        assert counts == {"big": 1, "billing": 2, "bounce": 1, "own": 1, "Urgent": 1}
        assert list(counts) == ["big", "billing", "bounce", "own", "Urgent"]  # by name, case ignored
        # Rules see the message being stored only, never earlier ones.
        assert await store.count(query="tag:carol") == 0
        carol = await store.add(message("for carol", to="carol@example.com"), envelope("carol@example.com"))
        assert carol.tags == ("carol",) and await store.count(query="tag:carol") == 1
        published.close()


async def test_tag_counts_rename_and_delete(store: Store, published: Events) -> None:
    a = await store.add(message("a"), envelope(), tags=["Work", "red"])
    b = await store.add(message("b"), envelope(), tags=["work", "blue"])  # the same tag as "Work"
    c = await store.add(message("c"), envelope(), tags=["red"])
    await published.take(3)
    assert {t.lower() for t in b.tags} == {"blue", "work"}
    lowered: Counter[str] = Counter()
    for name, count in (await store.tag_counts()).items():
        lowered[name.lower()] += count
    assert lowered == {"blue": 1, "red": 2, "work": 2}

    assert set(await store.rename_tag("RED", "Crimson")) == {a.id, c.id}  # matched whatever the case
    changed = await published.take(1)
    assert {kind for kind, _ in changed} == {"TagsChanged"}
    by_message = {i: fields["tags"] for _, fields in changed for i in fields["ids"]}
    assert by_message == {a.id: ("Crimson", "Work"), c.id: ("Crimson",)}
    assert all(fields["uids"] == {u for u, i in ((a.uid, a.id), (c.uid, c.id)) if i in fields["ids"]}
               for _, fields in changed)
    assert await store.count(query="tag:red") == 0 and await store.count(query="tag:crimson") == 2

    assert set(await store.rename_tag("blue", "crimson")) == {b.id}  # into a tag other messages carry
    await published.take(1)
    got = await store.get(b.id)
    assert got is not None and {t.lower() for t in got.summary.tags} == {"crimson", "work"}
    assert await store.rename_tag("no-such-tag", "x") == []
    assert await published.take() == []

    assert set(await store.delete_tag("work")) == {a.id, b.id}
    changed = await published.take(1)
    assert {i for _, fields in changed for i in fields["ids"]} == {a.id, b.id}
    assert await store.count() == 3  # the messages stay
    assert {t.lower() for t in await store.tag_counts()} == {"crimson"}
    assert await store.delete_tag("work") == []
    assert set(await store.delete_tag("CRIMSON")) == {a.id, b.id, c.id}
    await published.take(1)
    assert await store.tag_counts() == {} and await store.count(query="is:tagged") == 0
    assert (await store.stats()).tags == ()


async def test_tag_counts_count_delivered_mail_only(store: Store) -> None:
    a = await store.add(message("a"), envelope(), tags=["keep"])
    await store.imap_create_folder("alice@example.com", "Archive")
    await store.imap_copy([a.uid], "alice@example.com", "Archive")
    assert await store.tag_counts() == {"keep": 1}
    assert await store.count(query="folder:Archive tag:keep") == 1  # the copy keeps its tags
