"""SQL that both backends build the same way, each with its own placeholder (`?` for SQLite, `%s` for
PostgreSQL): which rows a list, count or change addresses, and which rows an IMAP view shows. The rules live here
once; the backends differ only in their search compilers and their SQL dialects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import tzinfo
from typing import Any, NoReturn

from .. import search
from .base import INBOX, FolderError, Query, owner_of

DELIVERED = "m.folder = '' AND m.owner = ''"  # mail delivered by SMTP, the API or an import, not filed by IMAP


def newest_first(by_date: bool) -> str:
    """The ORDER BY of a list: newest first by arrival (the uid), or with use_message_dates by `created` (each
    message's Date header), the uid breaking ties."""
    return "m.created DESC, m.uid DESC" if by_date else "m.uid DESC"


def combine_view(delivered: list[str], params: list[Any], compiled: Sequence[search.Filter],
                 anywhere: Callable[[], tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    """The WHERE over `messages AS m` for delivered mail (`delivered` clauses, ANDed) narrowed by any of the
    `compiled` queries (ORed: MailHog's search and Mailpit's tag rules need that). A query with a `folder:` term
    chooses its folders itself: it is narrowed only by `anywhere()` (the mailbox's delivered mail and its login's
    folders), not to delivered mail."""
    if not compiled or any(c is search.MATCH_ALL for c in compiled):  # one matches all: so do all of them
        return " AND ".join(delivered), params
    if not any(c.all_folders for c in compiled):
        where = " AND ".join(delivered) + " AND (" + " OR ".join(f"({c.where})" for c in compiled) + ")"
        return where, params + [p for c in compiled for p in c.params]
    scope_anywhere, anywhere_params = anywhere()
    alternatives: list[str] = []
    alternative_params: list[Any] = []
    for c in compiled:
        scope, scope_params = ((scope_anywhere, anywhere_params) if c.all_folders
                               else (" AND ".join(delivered), params))
        alternatives.append(f"({scope} AND ({c.where}))")
        alternative_params += [*scope_params, *c.params]
    return "(" + " OR ".join(alternatives) + ")", alternative_params


def view(mailbox: str | None, query: Query, tz: tzinfo | None, *,
         compile: Callable[..., search.Filter], mailbox_clause: Callable[[str], tuple[str, Any]],
         mailbox_anywhere: Callable[[str], tuple[str, list[Any]]], true: str) -> tuple[str, list[Any]]:
    """The WHERE over `messages AS m` for delivered mail in a mailbox (or all), narrowed by a query or by any of
    several (ORed); dates in queries are read in `tz`. Each backend brings its search compiler, its mailbox
    clauses and its SQL for "true"."""
    delivered = [DELIVERED]
    params: list[Any] = []
    if mailbox:
        clause, value = mailbox_clause(mailbox)
        delivered.append(clause)
        params.append(value)
    compiled = [compile(one, tz=tz) for one in ((query,) if isinstance(query, str) else query)]
    return combine_view(delivered, params, compiled, lambda: (true, []) if not mailbox else mailbox_anywhere(mailbox))


def check_rename(old: str, new: str) -> None:
    """The renames no backend does: INBOX is not renamed, and nothing is renamed to INBOX."""
    if old == INBOX:
        raise FolderError("Renaming INBOX is not supported")
    if new == INBOX:
        raise FolderError("Mailbox already exists")


def imap_view_where(login: str | None, folder: str, placeholder: str) -> tuple[str, list[Any]]:
    """The rows of one IMAP view: INBOX is the login's delivered mail (all delivered mail for the catch-all
    login), any other folder the rows that login filed there."""
    p = placeholder
    if folder == INBOX:
        if login is None:
            return "m.folder = ''", []
        return f"m.folder = '' AND m.uid IN (SELECT uid FROM recipients WHERE mailbox = {p})", [login]
    return f"m.folder = {p} AND m.owner = {p}", [folder, owner_of(login)]


async def run_every(seconds: float, job: Callable[[], Awaitable[object]], *, what: str,
                    waits: tuple[type[Exception], ...], because: str, log: logging.Logger) -> NoReturn:
    """Run `job` every `seconds` until cancelled: an error of `waits` (the database away, the disk full) is a
    warning that `what` waits `because`; anything else is logged with its traceback, and the next round comes."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except waits as exc:
            log.warning("%s waits for %s: %s", what, because, exc)
        except Exception:
            log.exception("%s failed", what)
