"""Views: the WHERE clause over `messages AS m` for what a list, count or change addresses: delivered mail of
a mailbox (a recipient, or `@domain`), narrowed by one query or several ORed; folders where a query asks."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from ... import search
from ..base import Query


def mailbox_clause(mailbox: str) -> tuple[str, str]:
    """SQL over `messages AS m` for one mailbox: a recipient address, or `@domain` for every recipient at exactly
    that domain (how the pytest plugin gives each test its own inbox)."""
    mailbox = mailbox.lower()
    if mailbox.startswith("@"):
        escaped = mailbox.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return "m.uid IN (SELECT uid FROM recipients WHERE mailbox LIKE ? ESCAPE '\\')", "%" + escaped
    return "m.uid IN (SELECT uid FROM recipients WHERE mailbox = ?)", mailbox


def _mailbox_anywhere(mailbox: str) -> tuple[str, list[Any]]:
    """A mailbox's delivered mail and the IMAP folders of the login of that name (or of every login at that
    domain, for `@domain`): IMAP folder rows have no recipients, they belong to the login that filed them."""
    clause, value = mailbox_clause(mailbox)
    owner = "lower(m.owner) LIKE ? ESCAPE '\\'" if mailbox.startswith("@") else "lower(m.owner) = ?"
    return (f"((m.folder = '' AND m.owner = '' AND {clause}) OR (m.folder != '' AND {owner}))",
            [value, value])


def view(mailbox: str | None, query: Query, tz: tzinfo | None = None) -> tuple[str, list[Any]]:
    """WHERE clause for delivered mail in a mailbox (or all), narrowed by a query, or by any of several
    queries (ORed: MailHog's search and Mailpit's tag rules need that). Dates in queries are read in `tz`.
    A query with a `folder:` term chooses its folders itself: it is narrowed to the mailbox only."""
    delivered = ["m.folder = '' AND m.owner = ''"]
    params: list[Any] = []
    if mailbox:
        clause, value = mailbox_clause(mailbox)
        delivered.append(clause)
        params.append(value)
    compiled = [search.compile(one, tz=tz) for one in ((query,) if isinstance(query, str) else query)]
    if not compiled or any(c is search.MATCH_ALL for c in compiled):  # one matches all: so do all of them
        return " AND ".join(delivered), params
    if not any(c.all_folders for c in compiled):
        where = " AND ".join(delivered) + " AND (" + " OR ".join(f"({c.where})" for c in compiled) + ")"
        return where, params + [p for c in compiled for p in c.params]
    anywhere, anywhere_params = ("1", []) if not mailbox else _mailbox_anywhere(mailbox)
    alternatives: list[str] = []
    alternative_params: list[Any] = []
    for c in compiled:
        scope, scope_params = (anywhere, anywhere_params) if c.all_folders else (" AND ".join(delivered), params)
        alternatives.append(f"({scope} AND ({c.where}))")
        alternative_params += [*scope_params, *c.params]
    return "(" + " OR ".join(alternatives) + ")", alternative_params
