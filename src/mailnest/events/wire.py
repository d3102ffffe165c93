"""The JSON form of every event, so that nodes sharing a database can pass events to each other (PostgreSQL
NOTIFY): one generic pair driven by each class's dataclass fields and their types, strict on the way in.

A NOTIFY payload is small, so a MessageAdded may travel without its Summary (ids and uids only); the
receiving node reads the summary again (`needs_summary`) and hands it to `event_from_json`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, get_args, get_origin, get_type_hints

from ..models import Summary
from .kinds import KINDS, Event, EventError, FlagsChanged, MessageAdded

_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, type) of each dataclass field of `cls`, the types resolved once (annotations are strings here)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = get_type_hints(cls)
        found = _FIELDS[cls] = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
    return found


def _encode(value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin is tuple:
        return [_encode(v, get_args(hint)[0]) for v in value]
    if origin is frozenset:
        return sorted(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {name: _encode(getattr(value, name), inner) for name, inner in _fields(hint)}
    return value  # str, int, bool: JSON already


def _decode(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is tuple or origin is frozenset:
        if not isinstance(value, list):
            raise EventError(f"event field {where!r}: expected a list, got {value!r}")
        return origin(_decode(v, get_args(hint)[0], where) for v in value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise EventError(f"event field {where!r}: expected an object, got {value!r}")
        return hint(**{name: _decode(value.get(name), inner, f"{where}.{name}") for name, inner in _fields(hint)})
    if hint in (str, int, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise EventError(f"event field {where!r}: expected {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"no JSON form for a field of type {hint!r}")  # a new kind with a new field type


def event_to_json(event: Event, *, with_summary: bool = True) -> dict[str, Any]:
    """A JSON-ready dict that `event_from_json` turns back into an equal event. A Summary field travels as its
    id and uid, and whole only `with_summary`."""
    out: dict[str, Any] = {"event": type(event).__name__}
    for name, hint in _fields(type(event)):
        value = getattr(event, name)
        if hint is Summary:
            out["id"], out["uid"] = value.id, value.uid
            if with_summary:
                out[name] = value.to_json()
        else:
            out[name] = _encode(value, hint)
    return out


def needs_summary(data: Mapping[str, Any]) -> str | None:
    """The id of the message whose Summary the receiving node must read to rebuild this MessageAdded (sent
    without it), else None."""
    if data.get("event") == "MessageAdded" and data.get("summary") is None:
        return str(_decode(data.get("id"), str, "id"))
    return None


def _summary(data: Mapping[str, Any], summary: Summary | None) -> Summary:
    sent = data.get("summary")
    if sent is not None:
        if not isinstance(sent, dict):
            raise EventError(f"event field 'summary': expected an object, got {sent!r}")
        try:
            return Summary.from_json(sent)
        except ValueError as exc:
            raise EventError(str(exc)) from None
    if summary is None:
        raise EventError("a MessageAdded sent without its summary needs the summary read again (needs_summary)")
    if summary.id != data.get("id"):
        raise EventError(f"the summary given is of {summary.id!r}, the event of {data.get('id')!r}")
    return summary


def event_from_json(data: Mapping[str, Any], summary: Summary | None = None) -> Event:
    """The event `Event.to_json` wrote. A MessageAdded written without its summary needs `summary`, read again
    by the id `needs_summary` names. Raises EventError (a ValueError) for anything else."""
    kind = data.get("event")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventError(f"not an event: {kind!r}")
    if cls is MessageAdded:
        return MessageAdded(_summary(data, summary))
    event = cls(**{name: _decode(data.get(name), hint, name) for name, hint in _fields(cls)})
    if isinstance(event, FlagsChanged) and not len(event.ids) == len(event.uids) == len(event.flags):
        raise EventError("FlagsChanged: ids, uids and flags must be as long as each other")
    return event
