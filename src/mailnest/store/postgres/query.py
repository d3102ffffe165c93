"""mailnest's search language compiled to PostgreSQL: the same terms (`search.parse`), the same normalized texts
(`search.index_values`, stored in `search_index` c0..c9 in FTS_COLUMNS order) and the same answers as the SQLite
compiler, with a pg_trgm GIN index (over `search_index.words`, see `_like`) in place of FTS5.

Pure: no I/O. `compile(query)` gives a `search.Filter` whose `where` is a boolean over `messages AS m` with
psycopg `%s` placeholders. Every text term is a substring test, `LIKE '%needle%'` on normalized text with `%`,
`_` and `\\` escaped; positive text terms share one lookup in `search_index`, negative ones another.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from ... import search
from ...search import Filter, QueryError
from .. import shared
from ..base import Mailboxes

_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "": search.TEXT_COLUMNS,
    "to": ("to_addr",),
    "from": ("from_addr",),
    "cc": ("cc_addr",),
    "bcc": ("bcc_addr",),
    "reply-to": ("reply_to_addr",),
    "addressed": ("from_addr", "to_addr", "cc_addr", "bcc_addr", "reply_to_addr"),
    "subject": ("subject",),
    "message-id": ("message_id",),
    "mailbox": ("rcpt",),
    "envelope-from": ("envelope_from",),
}
_FLAGS: dict[str, dict[str, str]] = {
    "is": {"read": "m.read = 1", "unread": "m.read = 0", "tagged": "m.tags != '[]'"},
    "has": {"attachment": "m.attachments > 0", "attachments": "m.attachments > 0", "inline": "m.inline > 0",
            "inlines": "m.inline > 0"},
}
# SQLite's `value = ? COLLATE NOCASE`: equal but for ASCII case.
HAS_TAG = ("EXISTS (SELECT 1 FROM jsonb_array_elements_text(m.tags::jsonb) AS t(value) "
           "WHERE ascii_lower(t.value) = ascii_lower(%s))")


def like_pattern(value: str) -> str:
    """A LIKE pattern (ESCAPE '\\') finding `value` anywhere."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _like(columns: tuple[str, ...], needle: str) -> tuple[str, list[Any]]:
    """The needle on its columns, after `s.words` holds each of its tokens: implied by a match (each token lies
    inside one token of the column, and `words` holds every token), and what the trigram index answers. A token
    under three characters has no trigram to look up, so it is left to the exact test."""
    pattern = like_pattern(needle)
    tests = " OR ".join(f"s.c{search.FTS_COLUMNS.index(c)} LIKE %s ESCAPE '\\'" for c in columns)
    tokens = [token for token in dict.fromkeys(needle.split(" ")) if len(token) >= 3]
    indexed = "".join("s.words LIKE %s ESCAPE '\\' AND " for _ in tokens)
    return f"({indexed}({tests}))", [*map(like_pattern, tokens), *[pattern] * len(columns)]


def compile(query: str, *, tz: tzinfo | None = None, one_row: bool = False) -> Filter:
    """The filter for a query (MATCH_ALL when empty); terms are ANDed. `one_row` shapes it for testing one known
    message (`m.uid = %s AND ...`): each text test becomes a lookup of that message's row."""
    terms = search.parse(query.replace("\x00", " "))  # as search.compile: NUL is whitespace
    if not terms:
        return search.MATCH_ALL
    wanted: list[tuple[str, list[Any]]] = []
    unwanted: list[tuple[str, list[Any]]] = []
    clauses: list[tuple[str, list[Any]]] = []
    for term in terms:
        field, value = term.field, term.value
        params: list[Any] = []
        if field == "envelope-from" and not value.strip().strip("<>").strip():
            sql = "m.mail_from IN ('', '<>')"
        elif field in _TEXT_FIELDS:
            needle = search.normalize(value.strip().strip("<>") if field == "message-id" else value)
            (unwanted if term.negated else wanted).append(_like(_TEXT_FIELDS[field], needle))
            continue
        elif field in _FLAGS:
            sql = _FLAGS[field][value.lower()]
        elif field == "folder":
            name = value.strip()
            if name.upper() == "INBOX":
                sql = "(m.folder = '' AND m.owner = '')"
            else:
                sql, params = "m.folder = %s", [name]
        elif field == "tag":
            sql, params = f"(m.tags != '[]' AND {HAS_TAG})", [value]
        elif field in ("larger", "smaller"):
            try:
                size = search.parse_size(value)
            except QueryError as exc:
                raise QueryError(f"{field}:{value[:40]}: {exc}") from None
            sql, params = ("m.size > %s" if field == "larger" else "m.size < %s"), [size]
        else:  # before, after
            try:
                when = search.parse_date(value, tz).timestamp()
            except QueryError as exc:
                raise QueryError(f"{field}:{value[:40]}: {exc}") from None
            sql, params = ("m.created < %s" if field == "before" else "m.created >= %s"), [when]
        clauses.append((f"NOT ({sql})" if term.negated else sql, params))
    if wanted:
        tests = " AND ".join(test for test, _ in wanted)
        params = [p for _, ps in wanted for p in ps]
        if one_row:
            clauses.insert(0, (f"EXISTS (SELECT 1 FROM search_index s WHERE s.uid = m.uid AND {tests})", params))
        else:
            clauses.insert(0, (f"m.uid IN (SELECT s.uid FROM search_index s WHERE {tests})", params))
    if unwanted:
        tests = " OR ".join(test for test, _ in unwanted)
        params = [p for _, ps in unwanted for p in ps]
        # NOT EXISTS in both forms: PostgreSQL makes it an anti-join that tests only the rows in question, where
        # `NOT IN (SELECT ...)` built a hashed subplan over every matching row first (`quarterly -invoice` at
        # 100,000 messages: 656 ms, then about 50 ms).
        clauses.append((f"NOT EXISTS (SELECT 1 FROM search_index s WHERE s.uid = m.uid AND ({tests}))", params))
    return Filter(" AND ".join(sql for sql, _ in clauses), tuple(p for _, params in clauses for p in params),
                  all_folders=any(term.field == "folder" for term in terms))


def view(mailbox: str | Mailboxes | None, query: str | Any, tz: tzinfo | None = None) -> tuple[str, list[Any]]:
    """WHERE over `messages AS m` for delivered mail of a mailbox (or all), narrowed by a query or by any of
    several (ORed); a query with a `folder:` term chooses its folders itself (SQLiteStore._view's rules)."""
    return shared.view(mailbox, query, tz, compile=compile, p="%s", lower="ascii_lower", true="TRUE")
