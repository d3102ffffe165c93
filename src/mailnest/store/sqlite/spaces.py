"""Spaces on SQLite (schema version 7): the throwaway address spaces of `POST /api/v1/mailboxes`, and their
retention, run by the store's own job every SPACE_PRUNE_EVERY seconds (see base.py's Store protocol and Space).

A space's mail is the view `@domain` (views.py): every deletion goes through `Retention.delete_rows`, so the
delivered count that `--max-messages` relies on stays true.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sqlite3
import time
from typing import Any

from ...events import Hub, MessagesDeleted, MessagesPruned
from ..base import SPACE_PRUNE_EVERY, Space, SpaceExistsError, StoreFullError
from ..shared import run_every
from .connections import Connections
from .retention import Deleted, Retention, rows_where_in
from .views import view
from .writes import Writer

log = logging.getLogger("mailnest.store.sqlite")

_COLUMNS = "domain, created, max_messages, max_age, webhook"


def _space(row: tuple[Any, ...]) -> Space:
    domain, created, max_messages, max_age, webhook = row
    return Space(domain=domain, created=float(created), max_messages=int(max_messages),
                 max_age=float(max_age) if max_age is not None else None, webhook=webhook)


def _rows_of(conn: sqlite3.Connection, domain: str, extra: str = "", params: tuple[Any, ...] = (),
             tail: str = "") -> list[tuple[int, str]]:
    """(uid, id) of the space's delivered mail, narrowed by `extra` (SQL over `messages AS m`)."""
    where, view_params = view("@" + domain, "")
    return conn.execute(f"SELECT m.uid, m.id FROM messages m WHERE {where}{extra} {tail}",
                        [*view_params, *params]).fetchall()


def aged(conn: sqlite3.Connection, spaces: list[Space], now: float) -> list[int]:
    """The uids past their space's max_age, found from the `created` index: only the messages older than the
    shortest age are looked at. Read on a reader connection, off the writer (it may look at many old messages)."""
    by_domain = {space.domain: space for space in spaces}
    ages = [space.max_age for space in spaces if space.max_age is not None]
    if not ages:
        return []
    rows = conn.execute("SELECT r.mailbox, m.uid, m.created FROM messages m JOIN recipients r ON r.uid = m.uid "
                        "WHERE m.created < ? AND m.folder = '' AND m.owner = ''", (now - min(ages),))
    found = []
    for mailbox, uid, created in rows:
        space = by_domain.get(mailbox.rpartition("@")[2])  # as the view `@domain`: ends with "@" + domain
        if space is not None and space.max_age is not None and created < now - space.max_age:
            found.append(uid)
    return found


def beyond_count(conn: sqlite3.Connection, spaces: list[Space]) -> list[tuple[int, str]]:
    """In the writer's transaction: the oldest rows beyond each space's max_messages (its count looks at every
    recipient, so only spaces with a limit pay for it)."""
    return [row for space in spaces if space.max_messages
            for row in _rows_of(conn, space.domain, tail="ORDER BY m.uid DESC LIMIT -1 OFFSET ?",
                                params=(space.max_messages,))]


class SpaceMethods:
    """Composed into SQLiteStore, which provides these collaborators."""

    connections: Connections
    writer: Writer
    hub: Hub
    retention: Retention
    _space_task: asyncio.Task[None] | None = None

    async def create_space(self, space: Space) -> None:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(f"INSERT OR IGNORE INTO spaces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                                (space.domain.lower(), space.created, space.max_messages, space.max_age,
                                 space.webhook)).rowcount

        if not await self.writer.write(run):
            raise SpaceExistsError(f"a space for {space.domain} exists already")

    async def get_space(self, domain: str) -> Space | None:
        def run(conn: sqlite3.Connection) -> Space | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM spaces WHERE domain = ?", (domain.lower(),)).fetchone()
            return _space(row) if row else None

        return await self.connections.read(run)

    async def spaces(self) -> builtins.list[Space]:
        return await self.connections.read(lambda conn: [
            _space(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM spaces ORDER BY created, domain")])

    async def delete_space(self, domain: str) -> builtins.list[str] | None:
        def run(conn: sqlite3.Connection) -> tuple[bool, Deleted | None]:
            if not conn.execute("DELETE FROM spaces WHERE domain = ?", (domain.lower(),)).rowcount:
                return False, None
            return True, self.retention.delete_rows(conn, _rows_of(conn, domain.lower()))

        found, deleted = await self.writer.write(run)
        if not found:
            return None
        if deleted:
            self.hub.publish(MessagesDeleted(tuple(deleted["ids"]), tuple(deleted["uids"])))
        return list(deleted["ids"]) if deleted else []

    async def prune_spaces(self, now: float | None = None) -> builtins.list[str]:
        at = time.time() if now is None else now

        def candidates(conn: sqlite3.Connection) -> tuple[list[Space], list[int]]:
            spaces = [_space(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM spaces")]
            return spaces, aged(conn, spaces, at) if spaces else []

        spaces, old = await self.connections.read(candidates)
        if not spaces:
            return []  # no spaces: no write transaction

        def run(conn: sqlite3.Connection) -> Deleted | None:
            doomed = dict(rows_where_in(conn, "uid", old))  # those still there (age only grows)
            doomed.update(beyond_count(conn, spaces))
            deleted = self.retention.delete_rows(conn, sorted(doomed.items()))
            for space in spaces:  # past its age and empty: a run that crashed before its DELETE left it
                if space.max_age is not None and space.created < at - space.max_age \
                        and not _rows_of(conn, space.domain, tail="LIMIT 1"):
                    conn.execute("DELETE FROM spaces WHERE domain = ?", (space.domain,))
            return deleted

        deleted = await self.writer.write(run)
        if not deleted:
            return []
        log.info("pruned %d message(s) by the retention of mailboxes on demand", len(deleted["ids"]))
        self.hub.publish(MessagesPruned(tuple(deleted["ids"]), tuple(deleted["uids"])))
        return list(deleted["ids"])

    def start_space_retention(self) -> None:
        self._space_task = asyncio.create_task(self._space_loop(), name="mailnest-store-space-retention")

    def stop_space_retention(self) -> None:
        if self._space_task:
            self._space_task.cancel()

    async def _space_loop(self) -> None:
        await run_every(SPACE_PRUNE_EVERY, self.prune_spaces, what="the retention of mailboxes on demand",
                        waits=(StoreFullError,), because="disk space", log=log)
