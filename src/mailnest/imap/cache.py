"""What IMAP derives from a stored message, kept per uid: ENVELOPE, BODYSTRUCTURE, SEARCH haystacks.

A stored message never changes, so an entry never goes stale; the cache only has to forget the least recently
used entries once it holds more than its budget. One cache serves every session of a listener, from the event
loop and from the worker threads that render FETCH answers, hence the lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any

DEFAULT_BUDGET = 128 * 1024 * 1024  # bytes, roughly


def _size(value: Any) -> int:
    if isinstance(value, bytes | str):
        return len(value) + 64
    if isinstance(value, tuple):
        return sum(_size(v) for v in value) + 64
    return 64


class MessageCache:
    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[tuple[int, str], tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        # (uid, kind) being computed by some session right now, for the others to wait on (event loop only)
        self.inflight: dict[tuple[int, str], asyncio.Future[None]] = {}

    def get(self, uid: int, kind: str) -> Any:
        with self._lock:
            entry = self._entries.get((uid, kind))
            if entry is None:
                return None
            self._entries.move_to_end((uid, kind))
            return entry[0]

    def get_many(self, uids: list[int], kind: str) -> dict[int, Any]:
        """`get` for many messages under one lock: the cached ones, by uid."""
        found = {}
        entries = self._entries
        with self._lock:
            for uid in uids:
                entry = entries.get((uid, kind))
                if entry is not None:
                    entries.move_to_end((uid, kind))
                    found[uid] = entry[0]
        return found

    def put(self, uid: int, kind: str, value: Any) -> None:
        size = _size(value)
        if size > self.budget // 8:
            return  # one huge entry would flush everything else
        with self._lock:
            old = self._entries.pop((uid, kind), None)
            if old is not None:
                self.used -= old[1]
            self._entries[(uid, kind)] = (value, size)
            self.used += size
            while self.used > self.budget:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.used -= dropped

    def __len__(self) -> int:
        return len(self._entries)
