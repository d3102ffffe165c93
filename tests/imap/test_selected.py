"""The selected-mailbox bookkeeping and the per-listener caches, without sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailnest.events import Hub
from mailnest.imap.cache import MessageCache
from mailnest.imap.selected import Selected, SequenceError
from mailnest.imap.sequence import parse_sequence_set
from mailnest.imap.views import Views
from mailnest.models import Envelope
from mailnest.store.base import View
from mailnest.store.sqlite import SQLiteStore

SEEN = frozenset({"\\Seen"})
NONE: frozenset[str] = frozenset()


def view(uids: list[int], seen: set[int] = frozenset(), mark: int = 0) -> View:  # type: ignore[assignment]
    flags = [SEEN if u in seen else NONE for u in uids]
    unseen = next((i for i, u in enumerate(uids) if u not in seen), -1)
    return View(uids, flags, [100 * u for u in uids], [1_700_000_000.0 + u for u in uids], mark,
                (uids[-1] if uids else 0) + 1, unseen)


def test_resolve_numbers_and_uids() -> None:
    box = Selected("INBOX", False, view([3, 5, 9, 12]))
    assert box.exists == 4 and box.max_uid == 12
    assert box.resolve(parse_sequence_set("2:3,1"), uid_mode=False) == [(1, 3), (2, 5), (3, 9)]
    assert box.resolve(parse_sequence_set("*"), uid_mode=False) == [(4, 12)]
    assert box.resolve(parse_sequence_set("4:10"), uid_mode=True) == [(2, 5), (3, 9)]
    assert box.resolve(parse_sequence_set("20:*"), uid_mode=True) == [(4, 12)]
    assert box.resolve(parse_sequence_set("100"), uid_mode=True) == []
    with pytest.raises(SequenceError):
        box.resolve(parse_sequence_set("5"), uid_mode=False)
    assert box.meta[9] == (1_700_000_009.0, 900)
    assert box.first_unseen() == 1
    assert Selected("INBOX", False, view([3, 5], seen={3})).first_unseen() == 2


def test_updates_are_announced_in_order() -> None:
    box = Selected("INBOX", False, view([1, 2, 3, 4]), recent=[4])
    # 2 disappears, 3 is now seen, 7 arrives
    lines = box.update(view([1, 3, 4, 7], seen={3}), allow_expunge=True, recent=[7])
    assert lines == [b"* 2 EXPUNGE\r\n", b"* 2 FETCH (FLAGS (\\Seen))\r\n", b"* 4 EXISTS\r\n", b"* 2 RECENT\r\n"]
    assert box.uids == [1, 3, 4, 7] and box.flags_of(7) == "(\\Recent)"


def test_expunges_wait_when_not_allowed() -> None:
    box = Selected("INBOX", False, view([1, 2, 3]))
    assert box.update(view([1, 3]), allow_expunge=False) == []
    assert box.exists == 3 and box.gone == {2}  # sequence numbers stay put during FETCH, STORE, SEARCH
    assert box.update(view([1, 3]), allow_expunge=True) == [b"* 2 EXPUNGE\r\n"]
    assert box.forget([3, 1]) == [b"* 2 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    assert box.exists == 0


def test_cache_keeps_to_its_budget() -> None:
    cache = MessageCache(budget=2000)
    for uid in range(50):
        cache.put(uid, "ENVELOPE", b"x" * 100)
    assert cache.used <= 2000 and cache.get(49, "ENVELOPE") == b"x" * 100 and cache.get(0, "ENVELOPE") is None
    cache.put(1, "BODY", b"y" * 1000)  # larger than an eighth of the budget: not kept
    assert cache.get(1, "BODY") is None


def test_views_are_shared_until_the_hub_reports_a_change(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = Hub()
        store = SQLiteStore(tmp_path / "views.db", hub)
        await store.start()
        try:
            await store.add(b"Subject: one\r\n\r\nx\r\n", Envelope("a@b", ("c@d",)))
            views = Views(store, hub)
            first = await views.get(None, "INBOX")
            assert first.uids == [1] and first.recent_mark == 0
            assert await views.get(None, "INBOX") is first  # nothing changed: the same snapshot
            assert await views.claim_recent(None, "INBOX", 1) == 0
            claimed = await views.get(None, "INBOX")
            assert claimed.recent_mark == 1 and claimed.uids is first.uids
            await store.add(b"Subject: two\r\n\r\nx\r\n", Envelope("a@b", ("c@d",)))  # publishes "new"
            fresh = await views.get(None, "INBOX")
            assert fresh.uids == [1, 2] and fresh.recent_mark == 1
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_flag_another_session_put_back_is_announced_after_this_session_changed_it() -> None:
    """This session told its client uid 1 is \\Seen (its own STORE); another session then took \\Seen off again and
    a message arrived. The next view equals the one this session took in plus the new message, yet its client
    must hear uid 1's flags: views are compared with what the client was told, not with the previous view."""
    selected = Selected("INBOX", False, view([1, 2]))
    selected.told(1, SEEN)
    lines = selected.update(view([1, 2, 3]), allow_expunge=True)
    assert lines == [b"* 1 FETCH (FLAGS ())\r\n", b"* 3 EXISTS\r\n", b"* 0 RECENT\r\n"]
    assert selected.flags[1] == NONE


def test_new_mail_alone_is_announced_without_flags() -> None:
    selected = Selected("INBOX", False, view([1, 2], seen={1}))
    assert selected.update(view([1, 2, 3], seen={1}), allow_expunge=True) == [b"* 3 EXISTS\r\n", b"* 0 RECENT\r\n"]
    assert selected.update(view([1, 2, 3], seen={1, 2}), allow_expunge=True) == [b"* 2 FETCH (FLAGS (\\Seen))\r\n"]
