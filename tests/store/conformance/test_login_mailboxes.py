"""Mailboxes (per-login isolation) on every backend: address patterns in every `mailbox=` call, `among`, and the
IMAP/POP3 INBOX of a login limited by `configure_logins`. Both backends must give exactly the same answers."""

from __future__ import annotations

import pytest

from mailnest.models import Envelope
from mailnest.store.base import INBOX, Mailboxes, Store, pattern_matches

pytestmark = pytest.mark.anyio

ALICE = Mailboxes(("*@alice.test", "alice@*"), owner="alice")


def raw(subject: str) -> bytes:
    return f"From: a@example.com\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode()


async def deliver(store: Store, subject: str, *rcpts: str) -> str:
    return (await store.add(raw(subject), Envelope("a@example.com", rcpts))).id


async def seed(store: Store) -> dict[str, str]:
    return {
        "domain": await deliver(store, "domain", "x@alice.test"),
        "local": await deliver(store, "local", "alice@elsewhere.test"),
        "upper": await deliver(store, "upper", "Y@Alice.Test"),
        "bob": await deliver(store, "bob", "bob@bob.test"),
        "lookalike": await deliver(store, "lookalike", "x@alice.test.evil", "malice@x.test"),
        "like chars": await deliver(store, "like chars", "a_b%c@bob.test"),
        "both": await deliver(store, "both", "bob@bob.test", "z@alice.test"),
    }


def subjects(page_or_list: object) -> list[str]:
    messages = getattr(page_or_list, "messages", page_or_list)
    return sorted(m.subject for m in messages)  # type: ignore[attr-defined]


async def test_patterns_select_whole_addresses_only(store: Store) -> None:
    ids = await seed(store)
    page = await store.list(mailbox=ALICE)
    assert subjects(page) == ["both", "domain", "local", "upper"]
    assert page.total == 4 and page.unread == 4
    assert await store.count(mailbox=ALICE) == 4
    assert await store.count(mailbox=ALICE, query="subject:local") == 1
    stats = await store.stats(mailbox=ALICE)
    assert (stats.total, stats.unread) == (4, 4)
    latest = await store.latest(mailbox=ALICE)
    assert latest is not None and latest.id == ids["both"]
    # LIKE's own wildcards in an address are plain characters in a pattern
    odd = Mailboxes(("a_b%c@*",))
    assert subjects(await store.list(mailbox=odd)) == ["like chars"]
    assert await store.count(mailbox=Mailboxes(("a?b*",))) == 0
    assert await store.count(mailbox=Mailboxes(())) == 0


async def test_within_narrows_to_one_ordinary_mailbox(store: Store) -> None:
    await seed(store)
    assert subjects(await store.list(mailbox=Mailboxes(ALICE.patterns, within="@alice.test"))) == [
        "both", "domain", "upper"]
    # a message is the login's when any recipient is: one sent to bob and to alice's domain is in bob's mailbox too
    assert subjects(await store.list(mailbox=Mailboxes(ALICE.patterns, within="bob@bob.test"))) == ["both"]
    assert subjects(await store.list(mailbox=Mailboxes(("alice@*",), within="bob@bob.test"))) == []
    assert subjects(await store.list(mailbox=Mailboxes(("*",), within="bob@bob.test"))) == ["bob", "both"]


async def test_among_keeps_only_the_ids_a_login_may_see_in_the_order_given(store: Store) -> None:
    ids = await seed(store)
    asked = [ids["bob"], ids["upper"], "no-such-id", ids["domain"], ids["upper"], "nul\x00id"]
    assert await store.among(asked, ALICE) == [ids["upper"], ids["domain"]]
    assert await store.among([], ALICE) == []
    many = [f"missing-{n}" for n in range(1200)] + [ids["local"]]
    assert await store.among(many, ALICE) == [ids["local"]]


async def test_changes_through_a_pattern_set_touch_only_its_mail(store: Store) -> None:
    ids = await seed(store)
    read = await store.set_read_matching(True, mailbox=ALICE)
    assert sorted(read) == sorted([ids["domain"], ids["local"], ids["upper"], ids["both"]])
    assert (await store.stats()).unread == 3
    deleted = await store.delete_matching(mailbox=ALICE, query="subject:domain")
    assert deleted == [ids["domain"]]
    assert await store.count() == 6


async def test_the_inbox_of_a_limited_login(store: Store) -> None:
    ids = await seed(store)
    store.configure_logins({"Alice": ["*@alice.test", "alice@*"], "nobody": []})
    uids = {s.id: s.uid for s in await store.summaries_by_uid(await store.uids())}
    view = await store.imap_view("alice", INBOX)
    assert view.uids == sorted(uids[ids[k]] for k in ("domain", "local", "upper", "both"))
    assert (await store.imap_status("alice", INBOX)).messages == 4
    # a login without limits keeps its own address; the catch-all sees everything
    assert (await store.imap_view("bob@bob.test", INBOX)).uids == sorted(uids[ids[k]] for k in ("bob", "both"))
    assert len((await store.imap_view(None, INBOX)).uids) == 7
    # POP3 asks the same through login_mailbox
    assert await store.uids(mailbox=store.login_mailbox("alice")) == view.uids
    assert store.login_mailbox(None) is None
    assert store.login_mailbox("Bob@Bob.Test") == "bob@bob.test"
    # an APPEND to the limited login's INBOX stays in it
    appended = await store.imap_append("alice", INBOX, raw("appended"), [], None)
    assert appended in (await store.imap_view("alice", INBOX)).uids


async def test_a_login_folders_are_its_own(store: Store) -> None:
    ids = await seed(store)
    uids = {s.id: s.uid for s in await store.summaries_by_uid(await store.uids())}
    await store.imap_create_folder("alice", "Archive")
    await store.imap_create_folder("bob", "Archive")
    [(_, alice_copy)] = await store.imap_copy([uids[ids["domain"]]], "alice", "Archive")
    [(_, bob_copy)] = await store.imap_copy([uids[ids["bob"]]], "bob", "Archive")
    filed = await store.summaries_by_uid([alice_copy, bob_copy])
    by_uid = {s.uid: s.id for s in filed}
    assert await store.among([by_uid[alice_copy], by_uid[bob_copy]], ALICE) == [by_uid[alice_copy]]
    assert subjects(await store.list(mailbox=ALICE, query="folder:Archive")) == ["domain"]


def test_pattern_matching_in_python_agrees_with_the_rule() -> None:
    assert pattern_matches("*@alice.test", "x@alice.test")
    assert not pattern_matches("*@alice.test", "x@alice.test.evil")
    assert pattern_matches("alice@*", "alice@anything")
    assert not pattern_matches("alice@*", "malice@anything")
    assert pattern_matches("a*b*c@x", "abc@x") and pattern_matches("a*b*c@x", "a1b2c@x")
    assert not pattern_matches("a*b*c@x", "acb@x")
    assert not pattern_matches("ab*ba@x", "aba@x")  # the two ends may not overlap
    assert ALICE.matches("ALICE@Example.com")
