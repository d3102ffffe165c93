"""The kinds of change the store publishes: one frozen event class per kind (as h11 does), typed fields only.

Each class says which of Mailpit's websocket types it is (`Event.type`), which is what subscriptions filter on;
several kinds share one type. The JSON form of an event is wire.py's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..models import Stats, Summary

# Mailpit's websocket event types, which the whole system uses (subscriptions filter on them).
NEW = "new"  # MessageAdded
UPDATE = "update"  # ReadChanged, TagsChanged, FlagsChanged, MessagesFiled, FolderRenamed
DELETE = "delete"  # MessagesDeleted
PRUNE = "prune"  # MessagesPruned (retention)
TRUNCATE = "truncate"  # AllDeleted
STATS = "stats"  # StatsChanged
ERROR = "error"  # ErrorReported


class EventError(ValueError):
    """A JSON form that is no event (unknown kind, missing or mistyped field)."""


@dataclass(frozen=True, slots=True)
class Event:
    """What changed. `type` is Mailpit's websocket type of the kind, fixed per class; several kinds share one."""

    type: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that `event_from_json` turns back into an equal event."""
        from .wire import event_to_json  # wire.py reads these classes; the method is here for its callers

        return event_to_json(self)


@dataclass(frozen=True, slots=True)
class MessageAdded(Event):
    """A message was delivered (SMTP, the API, an import, or an IMAP APPEND/COPY to INBOX): the web UI lists it."""

    type: ClassVar[str] = NEW
    summary: Summary

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def uid(self) -> int:
        return self.summary.uid

    def to_json(self, with_summary: bool = True) -> dict[str, Any]:
        """Without the summary, the receiving node reads it again by `id` (see `needs_summary`): a NOTIFY
        payload is small."""
        from .wire import event_to_json

        return event_to_json(self, with_summary=with_summary)


@dataclass(frozen=True, slots=True)
class ReadChanged(Event):
    """These messages are now read (or unread); from the API, POP3 or IMAP's \\Seen."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    uids: tuple[int, ...]
    read: bool


@dataclass(frozen=True, slots=True)
class TagsChanged(Event):
    """These messages now carry exactly `tags`. `uids` may be empty: the API's set_tags knows only ids."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    tags: tuple[str, ...]
    uids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FlagsChanged(Event):
    """IMAP flags other than \\Seen changed: `flags[n]` is the whole new set of `uids[n]` (and `ids[n]`)."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    uids: tuple[int, ...]
    flags: tuple[frozenset[str], ...]


@dataclass(frozen=True, slots=True)
class MessagesFiled(Event):
    """New rows in an IMAP folder (COPY, MOVE, APPEND to a folder other than INBOX): only IMAP shows them."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    uids: tuple[int, ...]
    folder: str


@dataclass(frozen=True, slots=True)
class FolderRenamed(Event):
    """An IMAP folder (and its subfolders) was renamed from `old` to `new`; `uids` are the messages that moved."""

    type: ClassVar[str] = UPDATE
    uids: tuple[int, ...]
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class MessagesDeleted(Event):
    """Deleted on request (API, POP3, IMAP EXPUNGE or DELETE of a folder, a MOVE's sources)."""

    type: ClassVar[str] = DELETE
    ids: tuple[str, ...]
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MessagesPruned(Event):
    """Deleted by retention (the message limit or the age limit)."""

    type: ClassVar[str] = PRUNE
    ids: tuple[str, ...]
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AllDeleted(Event):
    """Every delivered message was deleted at once (IMAP folders keep theirs)."""

    type: ClassVar[str] = TRUNCATE


@dataclass(frozen=True, slots=True)
class StatsChanged(Event):
    """The counts Mailpit's UI shows in its header."""

    type: ClassVar[str] = STATS
    stats: Stats


@dataclass(frozen=True, slots=True)
class ErrorReported(Event):
    """A problem the web UI shows as a notice; the fields of Mailpit's error event (`kind` is its "Type")."""

    type: ClassVar[str] = ERROR
    message: str
    level: str = "error"
    kind: str = ""
    ip: str = ""


KINDS: dict[str, type[Event]] = {cls.__name__: cls for cls in (
    MessageAdded, ReadChanged, TagsChanged, FlagsChanged, MessagesFiled, FolderRenamed, MessagesDeleted,
    MessagesPruned, AllDeleted, StatsChanged, ErrorReported)}
"""Every kind by the name its JSON form carries."""
