"""stats() on every backend equals what a count of the messages finds, after every kind of change (a backend
may keep totals apart from the rows, as SQLite's triggers do; they must never drift)."""

from __future__ import annotations

import pytest

from mailnest.models import Envelope
from mailnest.store.base import INBOX, Store

pytestmark = pytest.mark.anyio

MESSAGE = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
ALICE, BOB = "alice@example.com", "bob@example.com"


async def agree(store: Store, step: str) -> tuple[int, int, int]:
    """stats() of everything and of each mailbox against the listed messages themselves."""
    page = await store.list(limit=10_000)
    counted = (len(page.messages), sum(not s.read for s in page.messages), sum(s.size for s in page.messages))
    stats = await store.stats()
    assert (stats.total, stats.unread, stats.size) == counted, step
    assert (page.total, page.unread) == counted[:2], step
    assert await store.count() == counted[0], step
    assert await store.count(query="is:unread") == counted[1], step
    inbox = await store.imap_status(None, INBOX)
    assert (inbox.messages, inbox.unseen) == counted[:2], step
    for box in (ALICE, BOB):
        listed = (await store.list(mailbox=box, limit=10_000)).messages
        mailbox_stats = await store.stats(mailbox=box)
        assert (mailbox_stats.total, mailbox_stats.unread, mailbox_stats.size) == (
            len(listed), sum(not s.read for s in listed), sum(s.size for s in listed)), (step, box)
        status = await store.imap_status(box, INBOX)
        assert (status.messages, status.unseen) == (len(listed), sum(not s.read for s in listed)), (step, box)
    boxes = {b.address: (b.total, b.unread) for b in await store.mailboxes()}
    for box, (total, unread) in boxes.items():
        assert (total, unread) == (await store.count(mailbox=box), await store.count(mailbox=box,
                                                                                    query="is:unread")), step
    return counted


async def test_totals_match_a_count_through_every_change(store: Store) -> None:
    assert await agree(store, "empty") == (0, 0, 0)
    first = (await store.add(MESSAGE, Envelope("a@example.com", (ALICE,)))).uid
    second = (await store.add(MESSAGE + b"more\r\n", Envelope("a@example.com", (BOB, ALICE)))).uid
    third = await store.add(MESSAGE, Envelope("a@example.com", (BOB,)), read=True)
    assert await agree(store, "add") == (3, 2, 3 * len(MESSAGE) + 6)
    await store.imap_create_folder(ALICE, "Keep")
    appended = await store.imap_append(ALICE, INBOX, MESSAGE, ["\\Seen"], None)
    await agree(store, "append to INBOX")
    await store.imap_append(ALICE, "Keep", MESSAGE, [], None)
    assert (await agree(store, "append to a folder"))[0] == 4
    await store.imap_copy([first, appended], ALICE, "Keep")
    assert (await agree(store, "copy to a folder"))[0] == 4
    moved = await store.imap_copy([second], ALICE, "Keep", move=True)
    assert (await agree(store, "move to a folder"))[0] == 3
    await store.imap_copy([moved[0][1]], ALICE, INBOX)
    assert (await agree(store, "copy to INBOX"))[0] == 4
    await store.imap_store_flags([first], "+", ["\\Seen"])
    await agree(store, "flag \\Seen")
    await store.imap_store_flags([first], "=", ["\\Flagged"])
    await agree(store, "replace flags")
    ids = [m.id for m in (await store.list()).messages]
    await store.set_read(ids, True)
    assert (await agree(store, "set_read"))[1] == 0
    await store.set_read_matching(False, mailbox=BOB)
    await agree(store, "set_read_matching")
    await store.set_tags(ids[:2], ["t"])
    await store.rename_tag("t", "u")
    await agree(store, "tags")
    await store.imap_expunge([first])
    await agree(store, "expunge")
    await store.delete([third.id])
    await agree(store, "delete")
    await store.delete_matching(mailbox=ALICE, query="more")
    await agree(store, "delete_matching")
    await store.imap_delete_folder(ALICE, "Keep", "/")
    await agree(store, "delete a folder")
    await store.delete_all()
    assert await agree(store, "delete_all") == (0, 0, 0)
