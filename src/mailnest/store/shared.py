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
from .base import INBOX, FolderError, Mailboxes, Query, owner_of

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


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def mailbox_clause(mailbox: str | Mailboxes, p: str) -> tuple[str, list[Any]]:
    """SQL over `messages AS m` for one mailbox's delivered mail (without the DELIVERED test): a recipient
    address, `@domain` for every recipient at exactly that domain (how the pytest plugin gives each test its own
    inbox), or a `Mailboxes` (any of its patterns, within its `within`). `p` is the backend's placeholder."""
    if isinstance(mailbox, Mailboxes):
        tests: list[str] = []
        params: list[Any] = []
        for pattern in mailbox.patterns:
            if "*" in pattern:
                tests.append(f"mailbox LIKE {p} ESCAPE '\\'")
                params.append("%".join(_like_escaped(part) for part in pattern.lower().split("*")))
            else:
                tests.append(f"mailbox = {p}")
                params.append(pattern.lower())
        clause = f"m.uid IN (SELECT uid FROM recipients WHERE {' OR '.join(tests) or '1 = 0'})"
        if mailbox.within:
            inner, inner_params = mailbox_clause(mailbox.within, p)
            clause, params = f"{clause} AND {inner}", params + inner_params
        return clause, params
    mailbox = mailbox.lower()
    if mailbox.startswith("@"):
        return (f"m.uid IN (SELECT uid FROM recipients WHERE mailbox LIKE {p} ESCAPE '\\')",
                ["%" + _like_escaped(mailbox)])
    return f"m.uid IN (SELECT uid FROM recipients WHERE mailbox = {p})", [mailbox]


def mailbox_anywhere(mailbox: str | Mailboxes, p: str, lower: str) -> tuple[str, list[Any]]:
    """A mailbox's delivered mail and the IMAP folders of the login of that name (or of every login at that
    domain, for `@domain`; of its `owner` only, for a `Mailboxes`): IMAP folder rows have no recipients, they
    belong to the login that filed them. `lower` is the backend's ASCII lower-casing function."""
    clause, params = mailbox_clause(mailbox, p)
    if isinstance(mailbox, Mailboxes):
        if mailbox.owner is None:
            return f"({DELIVERED} AND {clause})", params
        owner, owner_params = f"{lower}(m.owner) = {p}", [mailbox.owner.lower()]
        if mailbox.within:
            within, within_params = mailbox_anywhere(mailbox.within, p, lower)
            owner, owner_params = f"{owner} AND {within}", owner_params + within_params
        return f"(({DELIVERED} AND {clause}) OR (m.folder != '' AND {owner}))", params + owner_params
    value = params[0]
    owner = f"{lower}(m.owner) LIKE {p} ESCAPE '\\'" if mailbox.startswith("@") else f"{lower}(m.owner) = {p}"
    return f"(({DELIVERED} AND {clause}) OR (m.folder != '' AND {owner}))", [value, value]


def view(mailbox: str | Mailboxes | None, query: Query, tz: tzinfo | None, *,
         compile: Callable[..., search.Filter], p: str, lower: str, true: str) -> tuple[str, list[Any]]:
    """The WHERE over `messages AS m` for delivered mail in a mailbox (or all), narrowed by a query or by any of
    several (ORed); dates in queries are read in `tz`. Each backend brings its search compiler, its placeholder,
    its ASCII lower-casing function and its SQL for "true"."""
    delivered = [DELIVERED]
    params: list[Any] = []
    if mailbox:
        clause, values = mailbox_clause(mailbox, p)
        delivered.append(clause)
        params += values
    compiled = [compile(one, tz=tz) for one in ((query,) if isinstance(query, str) else query)]
    return combine_view(delivered, params, compiled,
                        lambda: (true, []) if not mailbox else mailbox_anywhere(mailbox, p, lower))


def login_mailbox(login: str | None, patterns: dict[str, tuple[str, ...]]) -> str | Mailboxes | None:
    """`Store.login_mailbox` from the store's `configure_logins` patterns."""
    if login is None:
        return None
    limited = patterns.get(login.lower())
    return Mailboxes((*limited, login.lower())) if limited else login.lower()


def among_where(ids: Sequence[str], mailbox: Mailboxes, p: str, lower: str) -> tuple[str, list[Any]]:
    """The WHERE over `messages AS m` for the rows of `ids` that a `Mailboxes` holds (`Store.among`)."""
    clause, params = mailbox_anywhere(mailbox, p, lower)
    return f"m.id IN ({', '.join([p] * len(ids))}) AND {clause}", [*ids, *params]


def check_rename(old: str, new: str) -> None:
    """The renames no backend does: INBOX is not renamed, and nothing is renamed to INBOX."""
    if old == INBOX:
        raise FolderError("Renaming INBOX is not supported")
    if new == INBOX:
        raise FolderError("Mailbox already exists")


def imap_view_where(login: str | None, folder: str, placeholder: str,
                    patterns: Sequence[str] | None = None) -> tuple[str, list[Any]]:
    """The rows of one IMAP view: INBOX is the login's delivered mail (all delivered mail for the catch-all
    login; for a login limited to mailbox `patterns`, the mail for any of them or for the login itself), any
    other folder the rows that login filed there."""
    p = placeholder
    if folder == INBOX:
        if login is None:
            return "m.folder = ''", []
        if patterns:
            clause, params = mailbox_clause(Mailboxes((*patterns, login)), p)
            return f"m.folder = '' AND {clause}", params
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
