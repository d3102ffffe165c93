"""mailnest's search language -> an SQL filter over the store's tables; also the layout of the search index.

Pure: no I/O. The language is Mailpit's (https://mailpit.axllent.org/docs/usage/search-filters/) plus the SMTP
envelope (`mailbox:`, `envelope-from:`); the README has the table of terms.

Contract with store/sqlite.py:
- The full-text table `search` (rowid = messages.uid; created by store/schema.py). Its content never changes
  after insert (mutable state such as read and tags is filtered on `messages`), so only insert and delete touch it.
- `search_pending` (id = messages.uid, n = characters, then c0, c1, ... in FTS_COLUMNS order, as FTS5's own
  content table `search_content`) and the view `search_text` over both. A message is
  stored with its row in `search_pending`; the store moves pending rows into `search` in bulk, off the path
  of the SMTP 250 (one commit per message batch costs 2-4x more index work per message than one per bulk).
  Every filter finds a message whether its row is pending or indexed: FTS5 for one, LIKE for the other.
- `index_values(...)` gives the values of one message's row, in `FTS_COLUMNS` order.
- `compile(query)` gives a `Filter` whose `where` is an SQL boolean expression over `messages AS m` (columns
  uid, read, tags (a JSON array, '[]' when none), attachments, inline, size, created, mail_from, folder, owner),
  with `?` placeholders bound to `params`. `Filter.all_folders` is True when the query has a `folder:` term:
  the filter then picks delivered mail (folder '' and owner '') or IMAP folders itself, and the store must not
  first narrow the view to delivered mail as it does for every other query. A malformed query raises `QueryError` naming the bad part. `compile(query, one_row=True)`
  is the same filter shaped for testing one known message.

Matching: every text term is a case-insensitive substring match, as in Mailpit. Both the indexed text and the
query go through `normalize` (Unicode NFKC + case folding + whitespace collapsed), so `Ä` finds `ä` and `STRASSE`
finds `Straße`. Terms of three characters or more are answered by the FTS5 trigram index; shorter terms cannot
be (a trigram index holds nothing shorter than three characters), so they fall back to LIKE over the indexed
text: checked row by row behind an indexed term, but a scan of the whole index text when they stand alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime

from .mime.content import visible_text
from .models import Address


class QueryError(ValueError):
    """A query that cannot be understood; the message names the bad part."""


# -- the index ------------------------------------------------------------------------------------------

FTS_COLUMNS = ("subject", "from_addr", "to_addr", "cc_addr", "bcc_addr", "reply_to_addr", "body",
               "message_id", "envelope_from", "rcpt")
# The search tables themselves are created by store/schema.py (written out there once per schema version):
# `search` is FTS5 over FTS_COLUMNS with tokenize='trigram case_sensitive 1' (case folding happens in `normalize`,
# full Unicode, unlike the tokenizer's), and `search_pending` and the view `search_text` name the same columns
# c0, c1, ... in FTS_COLUMNS order.
# Indexing costs the writer thread 0.1-0.2 µs of CPU per character (benchmarks/search_bench.py), and ingest waits
# on the writer: a 100 KB text body would add 10 ms or more to its message. So only the first BODY_INDEX_CHARS characters of a body (after
# HTML is reduced to text) are searchable: more than the whole text of nearly any notification or newsletter.
BODY_INDEX_CHARS = 20_000

CONTENT_COLUMNS = tuple(f"c{i}" for i in range(len(FTS_COLUMNS)))  # search_content's names for FTS_COLUMNS
_CONTENT = ", ".join(CONTENT_COLUMNS)
INSERT_PENDING = f"INSERT INTO search_pending (id, n, {_CONTENT}) VALUES (?, ?{', ?' * len(FTS_COLUMNS)})"
# Gives message uid (first parameter) a pending copy of message uid's (second) row, pending or indexed.
COPY_PENDING = (f"INSERT INTO search_pending (id, n, {_CONTENT}) SELECT ?, 1 + "
                + " + ".join(f"length({c})" for c in CONTENT_COLUMNS)
                + f", {_CONTENT} FROM search_text WHERE id = ?")
# Moves the pending rows up to a uid into the index (both statements in one transaction).
INDEX_PENDING = (
    f"INSERT INTO search (rowid, {', '.join(FTS_COLUMNS)}) SELECT id, {_CONTENT} FROM search_pending "
    "WHERE id <= ? ORDER BY id",
    "DELETE FROM search_pending WHERE id <= ?",
)

_ADDRESS_COLUMNS = ("from_addr", "to_addr", "cc_addr", "bcc_addr", "reply_to_addr")
TEXT_COLUMNS = ("subject", *_ADDRESS_COLUMNS, "body")  # what a bare word searches, as in Mailpit

def normalize(text: str) -> str:
    """The form both the index and the query are compared in."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.casefold().split())


def _addresses(addresses: Iterable[Address | None]) -> str:
    return normalize(", ".join(str(a) for a in addresses if a))


def index_values(*, subject: str, from_: Address | None, to: Iterable[Address], cc: Iterable[Address],
                 bcc: Iterable[Address], reply_to: Iterable[Address], message_id: str, text: str,
                 html: str = "", attachment_names: Iterable[str] = (), envelope_from: str = "",
                 mailboxes: Iterable[str] = ()) -> tuple[str, ...]:
    """The row of `search` for one message, in FTS_COLUMNS order.

    `bcc` is what the store shows as Bcc (envelope recipients missing from To/Cc); `mailboxes` are the envelope
    recipients; `html` is the raw HTML body. Like Mailpit, the body searched is the HTML's text when there is
    HTML, else the plain text; attachment file names are searchable as body text.
    Tags are mutable, so they are never indexed (tag: filters on messages.tags instead).
    """
    html = html[: BODY_INDEX_CHARS * 4]
    body = visible_text(html) if html.strip() else text[:BODY_INDEX_CHARS]
    names = " ".join(n for n in attachment_names if n)
    return (
        normalize(subject),
        _addresses([from_]),
        _addresses(to),
        _addresses(cc),
        _addresses(bcc),
        _addresses(reply_to),
        normalize(f"{names} {body}")[:BODY_INDEX_CHARS],
        normalize(message_id.strip().strip("<>")),
        normalize(envelope_from),
        normalize(", ".join(mailboxes)),
    )


# -- the language ---------------------------------------------------------------------------------------

# field -> FTS columns it searches
_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "": TEXT_COLUMNS,
    "to": ("to_addr",),
    "from": ("from_addr",),
    "cc": ("cc_addr",),
    "bcc": ("bcc_addr",),
    "reply-to": ("reply_to_addr",),
    "addressed": _ADDRESS_COLUMNS,
    "subject": ("subject",),
    "message-id": ("message_id",),
    "mailbox": ("rcpt",),
    "envelope-from": ("envelope_from",),
}
_FLAG_FIELDS: dict[str, dict[str, str]] = {
    "is": {
        "read": "m.read = 1",
        "unread": "m.read = 0",
        "tagged": "m.tags != '[]'",
    },
    "has": {
        "attachment": "m.attachments > 0",
        "attachments": "m.attachments > 0",
        "inline": "m.inline > 0",
        "inlines": "m.inline > 0",
    },
}
_OTHER_FIELDS = ("tag", "larger", "smaller", "before", "after", "folder")
FIELDS = (*[f for f in _TEXT_FIELDS if f], *_FLAG_FIELDS, *_OTHER_FIELDS)

_FIELD_PREFIX = re.compile(r"([A-Za-z][A-Za-z-]*):")
# Far beyond any query a person or a test writes; keeps a pasted blob from exceeding SQLite's bound parameters.
MAX_TERMS = 200


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a query. `field` is "" for free text; `value` is as typed (unquoted)."""

    field: str
    value: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Filter:
    where: str
    params: tuple[object, ...]
    # True when the query names folders (a `folder:` term): `where` then chooses among delivered mail and IMAP
    # folders itself, and the store must not narrow it to delivered mail first.
    all_folders: bool = False


MATCH_ALL = Filter("1", ())


def _shown(text: str) -> str:
    """A piece of a query for an error message: quoted, and short even when the query is a pasted blob."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _split(query: str) -> list[tuple[str, str]]:
    """Whitespace-separated tokens; double quotes group words. Returns (raw token, token without quotes)."""
    tokens: list[tuple[str, str]] = []
    raw: list[str] = []
    plain: list[str] = []
    quoted = False
    for ch in query:
        if ch == '"':
            quoted = not quoted
            raw.append(ch)
        elif ch.isspace() and not quoted:
            if raw:
                tokens.append(("".join(raw), "".join(plain)))
                raw, plain = [], []
        else:
            raw.append(ch)
            plain.append(ch)
    if quoted:
        start = query.rfind('"')
        raise QueryError(f"unbalanced quote: {_shown(query[start:])} has no closing \"")
    if raw:
        tokens.append(("".join(raw), "".join(plain)))
    return tokens


def parse(query: str) -> tuple[Term, ...]:
    """A query as its terms, in order. Raises QueryError for unbalanced quotes and bad is:/has: values."""
    terms: list[Term] = []
    for raw, plain in _split(query or ""):
        negated = len(raw) > 1 and raw[0] in "-!"
        if negated:
            raw, plain = raw[1:], plain[1:]
        match = _FIELD_PREFIX.match(raw)
        field = match.group(1).lower() if match else ""
        if field in FIELDS:
            value = plain[len(field) + 1:]
            if not value.strip():
                raise QueryError(f"{_shown(raw)}: {field}: needs a value, written without a space after the colon")
            if field in _FLAG_FIELDS and value.lower() not in _FLAG_FIELDS[field]:
                choices = ", ".join(f"{field}:{v}" for v in _FLAG_FIELDS[field])
                raise QueryError(f"{_shown(raw)}: unknown {field}: value {_shown(value)} (known: {choices})")
            terms.append(Term(field, value, negated))
        elif any(ch.isalnum() for ch in plain):
            # Unknown prefixes are words, as in Mailpit: "re:invoice", "http://host", "10:30" stay searchable.
            terms.append(Term("", plain, negated))
        if len(terms) > MAX_TERMS:
            raise QueryError(f"too many terms: a query may have at most {MAX_TERMS}")
    return tuple(terms)


_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmg])(?:i?b)?|b)?", re.I | re.ASCII)
_SIZE_MAX = 2**62  # beyond any message, and still an SQLite integer
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """Bytes from "2048", "10k", "10kb", "1.5M", "2MiB", "1g" (binary units, as Mailpit). QueryError otherwise."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise QueryError(f"{_shown(text)} is not a size (examples: 500, 10k, 1.5M, 2MB)")
    return int(min(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()], _SIZE_MAX))


_DATE_FORMATS = (
    "%Y/%m/%d", "%Y.%m.%d", "%m/%d/%Y", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S", "%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%B %d, %Y", "%b %d, %Y",
)


def parse_date(text: str, tz: tzinfo | None = None) -> datetime:
    """An aware datetime from the date forms Mailpit accepts most often.

    ISO 8601 (2026-01-02, 2026-01-02T15:04, 2026-01-02T15:04:05Z, +02:00 offsets), yyyy/mm/dd (preferred by
    Mailpit's docs), mm/dd/yyyy (US order, as Mailpit reads it), "2 Jan 2026", "January 2, 2026", RFC 2822
    dates, and Unix timestamps (10 digits: seconds, 13: milliseconds). A date without a zone is in `tz`, or the
    server's local zone when None (as Mailpit without its tz parameter).
    """
    value = " ".join(text.split())
    parsed: datetime | None = None
    if value.isdigit() and len(value) in (10, 13):
        return datetime.fromtimestamp(int(value) / (1000 if len(value) == 13 else 1), UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is None or not 1900 <= parsed.year <= 9999:
        raise QueryError(f"{_shown(text)} is not a date (examples: 2026-01-02, 2026/01/02, 2026-01-02T15:04:05Z)")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz) if tz is not None else parsed.astimezone()
    return parsed


# Indexed rows answer the FTS5 expression; pending rows the same terms as LIKE tests ({pending}, params after
# the expression's).
_SET_MATCH = ("m.uid IN (SELECT rowid FROM search WHERE search MATCH ? "
              "UNION ALL SELECT s.id FROM search_pending s WHERE ({pending}))")
_SET_NO_MATCH = ("m.uid NOT IN (SELECT rowid FROM search WHERE search MATCH ? "
                 "UNION ALL SELECT s.id FROM search_pending s WHERE ({pending}))")
_ROW_MATCH = ("(EXISTS (SELECT 1 FROM search WHERE search MATCH ? AND rowid = m.uid) "
              "OR EXISTS (SELECT 1 FROM search_pending s WHERE s.id = m.uid AND ({pending})))")


def _fts_phrase(columns: tuple[str, ...], value: str) -> str:
    return "{" + " ".join(columns) + "}: \"" + value.replace('"', '""') + '"'


def _like_sql(columns: tuple[str, ...], value: str) -> tuple[str, list[object]]:
    """A substring test over columns named as in FTS5's own content table `search_content` (c0, c1, ... in
    FTS_COLUMNS order; `search_pending` and `search_text` name them alike): scanning it directly is twice as
    fast as scanning through the virtual table, and LIKE with a leading % is several times faster than instr(). Both sides are already case-folded, so
    LIKE's ASCII-only case folding changes nothing."""
    pattern = "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    tests = " OR ".join(f"s.c{FTS_COLUMNS.index(c)} LIKE ? ESCAPE '\\'" for c in columns)
    return f"({tests})", [pattern] * len(columns)


def compile(query: str, *, tz: tzinfo | None = None, one_row: bool = False) -> Filter:
    """The SQL filter for a query; MATCH_ALL for an empty one. Terms are ANDed, in Mailpit's manner.

    `tz` is the zone of dates written without one (Mailpit's `tz` API parameter); None: the server's zone.
    `one_row=True` shapes the filter for testing one known message (`WHERE m.uid = ? AND ...`, as tag rules do
    at ingest): text terms become per-row lookups instead of sets of every match, which at 100,000 messages is
    0.1 ms instead of 10-100 ms. Lists and counts want the default.
    """
    # SQLite's FTS5 query syntax cannot carry NUL (it ends the query string); nothing indexed contains one.
    terms = parse(query.replace("\x00", " "))
    if not terms:
        return MATCH_ALL
    fts_in: list[str] = []
    fts_out: list[str] = []
    like_in: list[tuple[str, list[object]]] = []  # the same terms for rows not yet indexed
    like_out: list[tuple[str, list[object]]] = []
    short: list[tuple[str, list[object], bool]] = []  # (test over search_text, params, negated)
    params: list[object]  # of the term in hand
    clauses: list[tuple[str, list[object]]] = []
    for term in terms:
        field, value = term.field, term.value
        if field == "envelope-from" and not value.strip().strip("<>").strip():
            # The null sender (bounces, delivery reports) indexes as nothing, which no substring test finds.
            sql = "m.mail_from IN ('', '<>')"
            clauses.append((f"NOT ({sql})" if term.negated else sql, []))
            continue
        if field in _TEXT_FIELDS:
            needle = normalize(value.strip().strip("<>") if field == "message-id" else value)
            columns = _TEXT_FIELDS[field]
            if len(needle) >= 3:
                (fts_out if term.negated else fts_in).append(_fts_phrase(columns, needle))
                (like_out if term.negated else like_in).append(_like_sql(columns, needle))
            else:
                short.append((*_like_sql(columns, needle), term.negated))
            continue
        if field in _FLAG_FIELDS:
            sql, params = _FLAG_FIELDS[field][value.lower()], []
        elif field == "folder":
            sql, params = _folder_sql(value)
        elif field == "tag":
            sql = "(m.tags != '[]' AND EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ? COLLATE NOCASE))"
            params = [value]
        elif field in ("larger", "smaller"):
            try:
                size = parse_size(value)
            except QueryError as exc:
                raise QueryError(f"{field}:{value[:40]}: {exc}") from None
            sql, params = ("m.size > ?" if field == "larger" else "m.size < ?"), [size]
        else:  # before, after
            try:
                when = parse_date(value, tz).timestamp()
            except QueryError as exc:
                raise QueryError(f"{field}:{value[:40]}: {exc}") from None
            sql, params = ("m.created < ?" if field == "before" else "m.created >= ?"), [when]
        clauses.append((f"NOT ({sql})" if term.negated else sql, params))
    # All indexed text terms go to FTS5 as one expression, so the index intersects them instead of SQLite.
    if fts_in:
        expression = " AND ".join(fts_in)
        pending = " AND ".join(test for test, _ in like_in)
        if fts_out:
            expression = f"({expression}) NOT ({' OR '.join(fts_out)})"
            pending += " AND NOT (" + " OR ".join(test for test, _ in like_out) + ")"
        template = _ROW_MATCH if one_row else _SET_MATCH
        clauses.insert(0, (template.format(pending=pending),
                           [expression, *(p for _, params in like_in + like_out for p in params)]))
    elif fts_out:
        template = f"NOT {_ROW_MATCH}" if one_row else _SET_NO_MATCH
        clauses.append((template.format(pending=" OR ".join(test for test, _ in like_out)),
                        [" OR ".join(fts_out), *(p for _, params in like_out for p in params)]))
    clauses.extend(_short_clauses(short, narrowed=bool(fts_in) or one_row))
    return Filter(" AND ".join(sql for sql, _ in clauses), tuple(p for _, params in clauses for p in params),
                  all_folders=any(term.field == "folder" for term in terms))


def _folder_sql(name: str) -> tuple[str, list[object]]:
    """`folder:NAME`: the messages IMAP clients filed in that folder, whoever's it is (names are case-sensitive,
    as in IMAP); INBOX, in any case, is delivered mail."""
    name = name.strip()
    if name.upper() == "INBOX":
        return "(m.folder = '' AND m.owner = '')", []
    return "m.folder = ?", [name]


def _short_clauses(short: list[tuple[str, list[object], bool]], *, narrowed: bool) -> list[tuple[str, list[object]]]:
    """Terms too short for the trigram index. Behind an indexed term they are checked row by row on its few
    candidates; alone, all of them share one scan of the index text."""
    if not short:
        return []
    if narrowed:
        # One primary-key lookup in each table: SQLite does not push `s.id = m.uid` into the arms of the
        # search_text view, so a lookup through it scanned every pending row per candidate (quadratic: 7 s for
        # 4,000 pending rows, tests/store/test_search_scaling.py).
        return [(f"{'NOT ' if negated else ''}(EXISTS (SELECT 1 FROM search_content s WHERE s.id = m.uid AND {test}) "
                 f"OR EXISTS (SELECT 1 FROM search_pending s WHERE s.id = m.uid AND {test}))", params * 2)
                for test, params, negated in short]
    wanted = [(test, params) for test, params, negated in short if not negated]
    unwanted = [(test, params) for test, params, negated in short if negated]
    if wanted:
        tests = [test for test, _ in wanted] + [f"NOT {test}" for test, _ in unwanted]
        params = [p for _, ps in wanted + unwanted for p in ps]
        return [(f"m.uid IN (SELECT s.id FROM search_text s WHERE {' AND '.join(tests)})", params)]
    tests = [test for test, _ in unwanted]
    params = [p for _, ps in unwanted for p in ps]
    return [(f"m.uid NOT IN (SELECT s.id FROM search_text s WHERE {' OR '.join(tests)})", params)]
