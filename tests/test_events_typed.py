"""Typed hub events (issue 13 item 1): one frozen, slotted class per kind, Mailpit's type string on the class, and
a JSON form that survives a trip between nodes (PostgreSQL NOTIFY), checked on built events and on every event a
real SQLite store publishes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailnest import events
from mailnest.events import (
    AllDeleted,
    ErrorReported,
    Event,
    EventError,
    FlagsChanged,
    FolderRenamed,
    MessageAdded,
    MessagesDeleted,
    MessagesFiled,
    MessagesPruned,
    ReadChanged,
    StatsChanged,
    TagsChanged,
    event_from_json,
    needs_summary,
)
from mailnest.models import Address, Envelope, Stats, Summary
from mailnest.store.base import INBOX
from mailnest.store.sqlite import SQLiteStore


def summary(id_: str = "abc", **changes: Any) -> Summary:
    made = Summary(id=id_, uid=7, message_id="m@x", read=True, from_=Address("Änne", "a@example.com"),
                   to=(Address("", "b@example.com"), Address("Bo, Jr.", "bo@example.com")),
                   cc=(Address("C", "c@example.com"),), bcc=(Address("", "hidden@example.com"),),
                   reply_to=(Address("R", "r@example.com"),), subject="Grüße \U0001F600",
                   created=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), size=1234, attachments=2,
                   snippet="hello", tags=("one", "two"), folder="")
    return dataclasses.replace(made, **changes)


EVERY_KIND: list[Event] = [
    MessageAdded(summary()),
    MessageAdded(summary("nobody", from_=None, to=(), cc=(), bcc=(), reply_to=(), tags=(), folder="Work")),
    ReadChanged(("a", "b"), (1, 2), True),
    ReadChanged((), (), False),
    TagsChanged(("a",), ("x", "ÿ")),
    TagsChanged(("a", "b"), (), (1, 2)),
    FlagsChanged(("a", "b"), (1, 2), (frozenset({"\\Flagged", "$Work"}), frozenset())),
    MessagesFiled(("c",), (3,), "Work/2024"),
    FolderRenamed((3, 4), "Work", "Jobs"),
    FolderRenamed((), "Empty", "Still empty"),
    MessagesDeleted(("a",), (1,)),
    MessagesPruned(("a", "b"), (1, 2)),
    AllDeleted(),
    StatsChanged(Stats(3, 1, 100, ("t",))),
    ErrorReported("disk full"),
    ErrorReported("slow", level="warning", kind="too-slow", ip="::1"),
]


def wire(event: Event, **options: Any) -> dict[str, Any]:
    """The JSON form as another node gets it: through text, as NOTIFY carries it."""
    return json.loads(json.dumps(event.to_json(**options), ensure_ascii=False))


def _kinds(cls: type[Event]) -> set[type[Event]]:
    """Every kind the module defines (`dataclass(slots=True)` replaces each class, and the replaced one may
    linger among the subclasses until collected: only the module's own names count)."""
    found = set()
    for sub in cls.__subclasses__():
        if getattr(events, sub.__name__, None) is sub:
            found |= {sub} | _kinds(sub)
    return found


def test_every_kind_is_covered_and_has_a_mailpit_type() -> None:
    assert {type(e) for e in EVERY_KIND} == _kinds(Event)  # a new kind must come with its round trip here
    assert {cls: cls.type for cls in _kinds(Event)} == {
        MessageAdded: events.NEW, ReadChanged: events.UPDATE, TagsChanged: events.UPDATE,
        FlagsChanged: events.UPDATE, MessagesFiled: events.UPDATE, FolderRenamed: events.UPDATE,
        MessagesDeleted: events.DELETE, MessagesPruned: events.PRUNE, AllDeleted: events.TRUNCATE,
        StatsChanged: events.STATS, ErrorReported: events.ERROR}


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: type(e).__name__)
def test_json_round_trip(event: Event) -> None:
    back = event_from_json(wire(event))
    assert back == event and type(back) is type(event)
    assert needs_summary(wire(event)) is None


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: type(e).__name__)
def test_events_are_frozen_and_slotted(event: Event) -> None:
    assert not hasattr(event, "__dict__")
    # Python 3.11's frozen slotted dataclasses raise TypeError for a name that is no field (a CPython bug).
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        event.anything = 1  # type: ignore[attr-defined]
    for field in dataclasses.fields(event):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, field.name, getattr(event, field.name))


def test_message_added_may_travel_without_its_summary() -> None:
    """A NOTIFY payload is at most 8000 bytes: the sender may leave the summary out and the receiver reads it."""
    event = MessageAdded(summary())
    compact = wire(event, with_summary=False)
    assert compact == {"event": "MessageAdded", "id": "abc", "uid": 7}
    assert needs_summary(compact) == "abc"
    with pytest.raises(EventError, match="needs_summary"):
        event_from_json(compact)
    assert event_from_json(compact, summary=summary()) == event
    with pytest.raises(EventError, match="'other'"):
        event_from_json(compact, summary=summary("other"))
    assert len(json.dumps(compact)) < 100


@pytest.mark.parametrize("data", [
    {},
    {"event": "Nope"},
    {"event": "Event"},
    {"event": "ReadChanged", "ids": ["a"], "uids": [1]},
    {"event": "ReadChanged", "ids": ["a"], "uids": ["1"], "read": True},
    {"event": "ReadChanged", "ids": ["a"], "uids": [True], "read": True},
    {"event": "ReadChanged", "ids": "a", "uids": [1], "read": True},
    {"event": "ReadChanged", "ids": ["a"], "uids": [1], "read": 1},
    {"event": "FlagsChanged", "ids": ["a"], "uids": [1], "flags": []},
    {"event": "FlagsChanged", "ids": ["a"], "uids": [1], "flags": [[1]]},
    {"event": "StatsChanged", "total": 1, "unread": 0, "size": 1},
    {"event": "MessageAdded", "id": "a", "uid": 1, "summary": {"id": "a"}},
    {"event": "MessageAdded", "id": "a", "uid": 1, "summary": {**wire(MessageAdded(summary()))["summary"],
                                                                 "created": "yesterday"}},
    {"event": "MessageAdded", "id": "a", "uid": 1, "summary": {**wire(MessageAdded(summary()))["summary"],
                                                                 "to": [["only a name"]]}},
])
def test_what_is_no_event_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(EventError) as caught:
        event_from_json(data)
    assert isinstance(caught.value, ValueError)


def test_subscriptions_filter_typed_events_by_their_mailpit_type() -> None:
    async def scenario() -> None:
        hub = events.Hub()
        updates = hub.subscribe(types=(events.UPDATE,))
        gone = hub.subscribe(types=(events.DELETE, events.PRUNE, events.TRUNCATE))
        for event in EVERY_KIND:
            hub.publish(event)
        assert [type(e) for e in _drain(updates)] == [ReadChanged, ReadChanged, TagsChanged, TagsChanged,
                                                       FlagsChanged, MessagesFiled, FolderRenamed, FolderRenamed]
        assert [type(e) for e in _drain(gone)] == [MessagesDeleted, MessagesPruned, AllDeleted]

    asyncio.run(scenario())


def _drain(sub: events.Subscription) -> list[Event]:
    out = []
    while (event := sub.get_nowait()) is not None:
        out.append(event)
    return out


MESSAGE = b"From: Anna <anna@example.com>\r\nTo: bob@example.com\r\nSubject: hello\r\n\r\nbody\r\n"


def test_every_event_the_store_publishes_is_typed_and_survives_the_wire(tmp_path: Path) -> None:
    """A real SQLite store through every kind of change it makes; each event it publishes comes back equal from
    its JSON form, and a MessageAdded sent without its summary is rebuilt from the summary the store reads back."""

    async def scenario() -> list[Event]:
        hub = events.Hub()
        seen: list[Event] = []
        hub.add_listener(seen.append)
        store = SQLiteStore(tmp_path / "mail.db", hub, max_messages=3)
        await store.start()
        try:
            first = await store.add(MESSAGE, Envelope("a@example.com", ("bob@example.com",)), tags=("keep",))
            published = seen[-1]
            assert isinstance(published, MessageAdded) and published.summary == first
            compact = wire(published, with_summary=False)
            message = await store.get(needs_summary(compact) or "")
            assert message is not None  # what a receiving node reads back is what was published
            assert event_from_json(compact, summary=message.summary) == published
            second = await store.add(MESSAGE, Envelope("a@example.com", ("bob@example.com", "cc@example.com")))
            await store.set_read([first.id, second.id], True)
            await store.set_tags([second.id], ["red", "blue"])
            await store.rename_tag("red", "green")
            await store.imap_store_flags([first.uid], "+", ["\\Flagged", "\\Seen"])
            await store.imap_store_flags([first.uid], "-", ["\\Seen"])
            await store.imap_create_folder("bob@example.com", "Work")
            await store.imap_copy([first.uid], "bob@example.com", "Work")
            await store.imap_rename_folder("bob@example.com", "Work", "Jobs", "/")
            await store.imap_copy([second.uid], "bob@example.com", INBOX)  # a delivery: MessageAdded
            await store.add(MESSAGE, Envelope("a@example.com", ("bob@example.com",)))  # over the limit: pruned
            await store.delete([second.id])
            await store.delete_all()
            for event in seen:
                assert event_from_json(wire(event)) == event, event
        finally:
            await store.close()
        return seen

    seen = asyncio.run(scenario())
    kinds = [type(e) for e in seen]
    assert set(kinds) == {MessageAdded, ReadChanged, TagsChanged, FlagsChanged, MessagesFiled, FolderRenamed,
                          MessagesPruned, MessagesDeleted, AllDeleted}, kinds
    added = [e for e in seen if isinstance(e, MessageAdded)]
    assert len(added) == 4 and added[0].summary.tags == ("keep",)
    read = [e for e in seen if isinstance(e, ReadChanged)]
    assert read[0].read and set(read[0].ids) == {added[0].id, added[1].id}
    assert set(read[0].uids) == {added[0].uid, added[1].uid}
    tags = [e for e in seen if isinstance(e, TagsChanged)]
    assert [(e.ids, e.tags) for e in tags] == [((added[1].id,), ("red", "blue")), ((added[1].id,), ("blue", "green"))]
    assert tags[1].uids == (added[1].uid,)
    flags = [e for e in seen if isinstance(e, FlagsChanged)]
    assert flags[0] == FlagsChanged((added[0].id,), (added[0].uid,), (frozenset({"\\Flagged", "\\Seen"}),))
    renamed = next(e for e in seen if isinstance(e, FolderRenamed))
    filed = next(e for e in seen if isinstance(e, MessagesFiled))
    assert filed.folder == "Work" and renamed == FolderRenamed(filed.uids, "Work", "Jobs")
    pruned = next(e for e in seen if isinstance(e, MessagesPruned))
    assert pruned.ids == (added[0].id,) and pruned.uids == (added[0].uid,)  # the oldest delivered message


def test_a_summary_has_a_json_form_of_its_own() -> None:
    """Summary.to_json/from_json (models): what MessageAdded carries; strict, since it comes from another node."""
    for made in (summary(), summary("bare", from_=None, to=(), tags=(), folder="Work")):
        assert Summary.from_json(json.loads(json.dumps(made.to_json()))) == made
    good = summary().to_json()
    for key, bad in (("uid", "7"), ("read", 1), ("from", ["x"]), ("tags", [1]), ("created", "soon")):
        with pytest.raises(ValueError, match=repr(key) if key != "from" else "address"):
            Summary.from_json({**good, key: bad})
    with pytest.raises(ValueError, match="'subject'"):
        Summary.from_json({k: v for k, v in good.items() if k != "subject"})
