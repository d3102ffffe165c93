"""mailnest's search language -> an SQL filter over the store's tables; also the layout of the search index.

Pure: no I/O. INTERIM: free text only; the full language (to:, from:, subject:, is:, has:, ...) replaces it.

Contract with store/sqlite.py:
- `FTS_DDL` creates the full-text table `search` (rowid = messages.uid).
- `index_values(...)` gives the values inserted into `search` for one message, in `FTS_COLUMNS` order.
- `compile(query)` gives a `Filter` whose `where` is an SQL boolean expression over `messages AS m`,
  with `?` placeholders bound to `params`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .models import Address


class QueryError(ValueError):
    """A query that cannot be understood; the message names the bad part."""


FTS_COLUMNS = ("subject", "addresses", "body")
FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5("
    + ", ".join(FTS_COLUMNS)
    + ", tokenize='trigram')"
)


@dataclass(frozen=True, slots=True)
class Filter:
    where: str
    params: tuple[object, ...]


MATCH_ALL = Filter("1", ())


def _addr_text(addresses: Iterable[Address | None]) -> str:
    return " ".join(f"{a.name} {a.address}" for a in addresses if a)


def index_values(*, subject: str, from_: Address | None, to: Iterable[Address], cc: Iterable[Address],
                 bcc: Iterable[Address], reply_to: Iterable[Address], message_id: str, text: str,
                 html_text: str, envelope_from: str, mailboxes: Iterable[str], tags: Iterable[str],
                 attachment_names: Iterable[str], now: datetime | None = None) -> tuple[str, ...]:
    del now, envelope_from, mailboxes, tags, message_id
    addresses = _addr_text([from_, *to, *cc, *bcc, *reply_to])
    return (subject, addresses, "\n".join([text, html_text, *attachment_names]))


def compile(query: str, *, now: datetime | None = None) -> Filter:
    query = (query or "").strip()
    if not query:
        return MATCH_ALL
    clauses, params = [], []
    for word in query.split():
        clauses.append("m.uid IN (SELECT rowid FROM search WHERE search MATCH ?)")
        params.append('"' + word.replace('"', '""') + '"')
    return Filter(" AND ".join(clauses), tuple(params))
