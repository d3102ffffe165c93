"""The hub: the store publishes what changed, every front door that cares subscribes.

Each change is one frozen event object, one class per kind (kinds.py); its class says which of Mailpit's
websocket types it is (`Event.type`), which is what subscriptions filter on. Every event has a JSON form
(wire.py) so that nodes sharing a database can pass events to each other. The Hub and its subscriptions are in
hub.py; Broadcast, one subscription serving many websocket/SSE clients, in broadcast.py.
"""

from .broadcast import (
    COALESCE,
    FANOUT_SHARE,
    FANOUT_SLICE,
    HUB_QUEUE,
    MAX_INTERVAL,
    SEND_TIMEOUT,
    Broadcast,
    FeedClient,
    Render,
)
from .hub import Hub, Subscription
from .kinds import (
    DELETE,
    ERROR,
    KINDS,
    NEW,
    PRUNE,
    STATS,
    TRUNCATE,
    UPDATE,
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
)
from .wire import event_from_json, event_to_json, needs_summary

__all__ = [
    "COALESCE", "DELETE", "ERROR", "FANOUT_SHARE", "FANOUT_SLICE", "HUB_QUEUE", "KINDS", "MAX_INTERVAL", "NEW",
    "PRUNE", "SEND_TIMEOUT", "STATS", "TRUNCATE", "UPDATE", "AllDeleted", "Broadcast", "ErrorReported", "Event",
    "EventError", "FeedClient", "FlagsChanged", "FolderRenamed", "Hub", "MessageAdded", "MessagesDeleted",
    "MessagesFiled", "MessagesPruned", "ReadChanged", "Render", "StatsChanged", "Subscription", "TagsChanged",
    "event_from_json", "event_to_json", "needs_summary",
]
