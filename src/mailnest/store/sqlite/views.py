"""Views: the WHERE clause over `messages AS m` for what a list, count or change addresses: delivered mail of
a mailbox (a recipient, or `@domain`), narrowed by one query or several ORed; folders where a query asks."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from ... import search
from .. import shared
from ..base import Mailboxes, Query


def mailbox_clause(mailbox: str | Mailboxes) -> tuple[str, list[Any]]:
    """SQL over `messages AS m` for one mailbox's delivered mail (`shared.mailbox_clause`)."""
    return shared.mailbox_clause(mailbox, "?")


def _mailbox_anywhere(mailbox: str | Mailboxes) -> tuple[str, list[Any]]:
    """A mailbox's delivered mail and the IMAP folders of its login (`shared.mailbox_anywhere`)."""
    return shared.mailbox_anywhere(mailbox, "?", "lower")


def view(mailbox: str | Mailboxes | None, query: Query, tz: tzinfo | None = None) -> tuple[str, list[Any]]:
    """WHERE clause for delivered mail in a mailbox (or all), narrowed by a query, or by any of several
    queries (ORed: MailHog's search and Mailpit's tag rules need that). Dates in queries are read in `tz`.
    A query with a `folder:` term chooses its folders itself: it is narrowed to the mailbox only."""
    return shared.view(mailbox, query, tz, compile=search.compile, p="?", lower="lower", true="1")
