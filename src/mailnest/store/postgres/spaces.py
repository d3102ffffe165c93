"""Spaces on PostgreSQL (schema version 6): the throwaway address spaces of `POST /api/v1/mailboxes`, shared by
every node of the database, and their retention, once per database however many nodes share it: each round runs
under the advisory lock `spaces`, which whoever holds it prunes while the others skip that round (as max_age does
in retention.py). The lock is taken before anything else in its transaction, and ingest never takes it, so it
cannot deadlock with an ingest (which locks the totals row, then the `retention` lock).
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..base import SPACE_PRUNE_EVERY, Space, SpaceExistsError, StoreUnavailableError
from ..shared import run_every
from . import query as compiler
from . import schema

if TYPE_CHECKING:
    from .store import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")

_COLUMNS = "domain, created, max_messages, max_age, webhook"


def _space(row: Sequence[Any]) -> Space:
    domain, created, max_messages, max_age, webhook = row
    return Space(domain=str(domain), created=float(created), max_messages=int(max_messages),
                 max_age=float(max_age) if max_age is not None else None, webhook=webhook)


# Delivered mail past the max_age of the space of one of its recipients' domains (the view `@domain`: the
# address ends with "@" + domain); the second parameter, the cutoff of the shortest age, lets the index choose.
_AGED = ("m.uid IN (SELECT a.uid FROM messages a JOIN recipients r ON r.uid = a.uid "
         "JOIN spaces s ON s.domain = substring(r.mailbox from '@([^@]*)$') "
         "WHERE a.folder = '' AND a.owner = '' AND s.max_age IS NOT NULL AND a.created < %s - s.max_age "
         "AND a.created < %s)")


def _mail_of(domain: str) -> tuple[str, list[Any]]:
    """WHERE over `messages AS m` for the space's delivered mail (the view `@domain`)."""
    return compiler.view("@" + domain, "")


class SpaceMixin:
    """Mixed into PostgresStore."""

    schema: str

    if TYPE_CHECKING:
        async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, announce: bool = True,
                         pipeline: bool = False) -> T: ...
        async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
        @staticmethod
        async def _delete_rows(tx: Tx, where: str, params: Sequence[Any], *,
                               pruned: bool = False) -> builtins.list[tuple[int, str]]: ...

    async def create_space(self, space: Space) -> None:
        async def run(tx: Tx) -> int:
            return await tx.run(f"INSERT INTO spaces ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                (space.domain.lower(), space.created, space.max_messages, space.max_age,
                                 space.webhook))

        if not await self._write(run):
            raise SpaceExistsError(f"a space for {space.domain} exists already")

    async def get_space(self, domain: str) -> Space | None:
        async def run(tx: Tx) -> Space | None:
            row = await tx.one(f"SELECT {_COLUMNS} FROM spaces WHERE domain = %s", (domain.lower(),))
            return _space(row) if row else None

        return await self._read(run)

    async def spaces(self) -> builtins.list[Space]:
        async def run(tx: Tx) -> builtins.list[Space]:
            return [_space(r) for r in await tx.all(f"SELECT {_COLUMNS} FROM spaces ORDER BY created, domain")]

        return await self._read(run)

    async def delete_space(self, domain: str) -> builtins.list[str] | None:
        wanted = domain.lower()

        async def run(tx: Tx) -> builtins.list[str] | None:
            if not await tx.run("DELETE FROM spaces WHERE domain = %s", (wanted,)):
                return None
            where, params = _mail_of(wanted)
            return [i for _, i in await self._delete_rows(tx, where, params)]

        return await self._write(run)

    async def prune_spaces(self, now: float | None = None) -> builtins.list[str]:
        at = time.time() if now is None else now

        async def any_space(tx: Tx) -> bool:
            return bool(await tx.one("SELECT 1 FROM spaces LIMIT 1"))

        if not await self._read(any_space):
            return []  # no spaces: no write transaction

        async def run(tx: Tx) -> builtins.list[str]:
            got = await tx.one("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                               (schema.lock_key(self.schema, "spaces"),))
            if not got or not got[0]:
                return []  # another node prunes this round
            spaces = [_space(r) for r in await tx.all(f"SELECT {_COLUMNS} FROM spaces")]
            ages = [space.max_age for space in spaces if space.max_age is not None]
            pruned: builtins.list[str] = []
            if ages:  # past their space's age: found from the `created` index (older than the shortest age)
                pruned += [i for _, i in await self._delete_rows(tx, _AGED, (at, at - min(ages)), pruned=True)]
            for space in spaces:
                where, params = _mail_of(space.domain)
                if space.max_messages:  # the count needs every recipient looked at: only for spaces with a limit
                    pruned += [i for _, i in await self._delete_rows(
                        tx, f"m.uid IN (SELECT m.uid FROM messages m WHERE {where} ORDER BY m.uid DESC OFFSET %s)",
                        [*params, space.max_messages], pruned=True)]
                if space.max_age is not None and space.created < at - space.max_age \
                        and not await tx.one(f"SELECT 1 FROM messages m WHERE {where} LIMIT 1", params):
                    await tx.run("DELETE FROM spaces WHERE domain = %s", (space.domain,))
            return pruned

        pruned = await self._write(run)
        if pruned:
            log.info("pruned %d message(s) by the retention of mailboxes on demand", len(pruned))
        return pruned

    async def _space_loop(self) -> None:
        await run_every(SPACE_PRUNE_EVERY, self.prune_spaces, what="the retention of mailboxes on demand",
                        waits=(StoreUnavailableError,), because="the database", log=log)
