"""Views: the WHERE clause over `messages AS m` for what a list, count or change addresses: delivered mail of
a mailbox (a recipient, or `@domain`), narrowed by one query or several ORed; folders where a query asks."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from ... import search
from .. import shared
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
    return shared.view(mailbox, query, tz, compile=search.compile, mailbox_clause=mailbox_clause,
                       mailbox_anywhere=_mailbox_anywhere, true="1")
