"""Mailbox views shared by every session of a listener, so that SELECT and change notifications do not each
read thousands of rows from the store.

A view read from the store stays valid until the hub reports any change (the store publishes an event for
every write that touches messages); the generation counter below goes up on each event, and a view taken at an
older generation is read again. Sessions that ask for the same mailbox while it is being read wait for that
one read instead of each starting their own (a read that began at the current generation sees every change the
hub has reported): under load, fifty sessions that each find the view stale after a delivery cost one read, not
fifty. \\Recent marks are only ever written through this object, so it keeps the
cached views' marks current itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from ..events import Event, Hub, StatsChanged
from ..store.base import View


class Views:
    def __init__(self, store: Any, hub: Hub) -> None:
        self.store = store
        self.generation = 0
        self._views: dict[tuple[str | None, str], tuple[int, View]] = {}
        self._reading: dict[tuple[str | None, str], tuple[int, asyncio.Future[View]]] = {}  # reads under way
        hub.add_listener(self._changed)

    def _changed(self, event: Event) -> None:
        if not isinstance(event, StatsChanged):
            self.generation += 1

    async def get(self, login: str | None, folder: str) -> View:
        """The current view of a mailbox (FolderError when there is no such mailbox)."""
        key = (login, folder)
        generation = self.generation
        hit = self._views.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1]
        reading = self._reading.get(key)
        if reading is None or reading[0] != generation:
            task = asyncio.ensure_future(self.store.imap_view(login, folder))
            reading = self._reading[key] = (generation, task)
            task.add_done_callback(lambda done: self._read_done(key, done))
        # A waiter cancelled (its client gone) must not cancel the read the others wait for.
        view: View = await asyncio.shield(reading[1])
        if self.generation == generation:  # nothing changed while the store was read
            self._views[key] = (generation, view)
        return view

    def _read_done(self, key: tuple[str | None, str], done: asyncio.Future[View]) -> None:
        if self._reading.get(key, (0, None))[1] is done:
            del self._reading[key]
        if not done.cancelled():
            done.exception()  # retrieved here: every waiter may have gone

    async def claim_recent(self, login: str | None, folder: str, up_to: int) -> int:
        """Mark messages up to `up_to` as seen by a session; returns the previous mark (see the store)."""
        previous: int = await self.store.imap_claim_recent(login, folder, up_to)
        hit = self._views.get((login, folder))
        if hit is not None:
            self._views[(login, folder)] = (hit[0], replace(hit[1], recent_mark=max(previous, up_to)))
        return previous
