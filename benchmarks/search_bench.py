"""Search speed at scale: fills a temporary store with generated messages and times lists and searches, on
SQLite, on PostgreSQL, or on both side by side.

Every message goes through the store's real ingest path (`store.add`: MIME parse, index, group commit). The
timings are of `store.list(query=...)` as the API calls it (count of matches + first page of 50 + tag list),
median of several runs, so they are what the server spends per request; they go through the Store protocol
only, so both backends pay exactly what the API pays. SQLite only: the index size on disk, the split of list()
into its SQL statements, the per-message cost of indexing (building the row + the FTS5 insert), and with
--compare-tokenizers the same text indexed with trigram and unicode61 side by side. PostgreSQL only: the
database size, and EXPLAIN ANALYZE of the store's statements for every case slower than --explain-over.
Figures, not a pass/fail test.

    python benchmarks/search_bench.py                         # SQLite, 100,000 messages
    python benchmarks/search_bench.py --messages 20000
    python benchmarks/search_bench.py --db /tmp/bench.db      # keep the database; later runs reuse it
    python benchmarks/search_bench.py --compare-tokenizers
    python benchmarks/search_bench.py --db postgresql://user@host/db   # PostgreSQL (reused when it has mail)
    python benchmarks/search_bench.py --postgres              # both: SQLite and a throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.pgcluster, for --postgres

from mailnest import mime, search  # noqa: E402
from mailnest.events import Hub  # noqa: E402
from mailnest.models import Envelope  # noqa: E402
from mailnest.store import schema  # noqa: E402
from mailnest.store.base import Store  # noqa: E402
from mailnest.store.sqlite import SQLiteStore, _bcc  # noqa: E402

# Words with known frequencies, so each query below has a known selectivity.
RARE, MEDIUM = "zebrafish", "quarterly"  # in ~0.1% and ~3% of bodies
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_DAYS = 100


def _vocabulary(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "an", "el", "or", "un", "ex", "qua", "ber",
                 "dol", "vin", "sar", "tek", "mon", "ist", "ver", "ent", "ing", "the", "tion", "al", "re"]
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(12000)}
    return sorted(words - {RARE, MEDIUM})


class Generator:
    """Deterministic messages shaped like an application's mail: notifications, digests, some HTML."""

    def __init__(self, total: int, seed: int = 7) -> None:
        self.total = total  # spreads the received times of `total` messages over SPAN_DAYS
        self.rng = random.Random(seed)
        self.words = _vocabulary(self.rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]  # Zipf, as prose
        self.people = [f"{self.rng.choice(self.words).title()} {self.rng.choice(self.words).title()}"
                       for _ in range(2500)]

    def _text(self, count: int) -> str:
        words = self.rng.choices(self.words, self.weights, k=count)
        if self.rng.random() < 0.03:
            words[self.rng.randrange(count)] = MEDIUM
        if self.rng.random() < 0.001:
            words[self.rng.randrange(count)] = RARE
        lines = [" ".join(words[i:i + 12]) for i in range(0, count, 12)]
        return "\r\n".join(lines)

    def message(self, index: int) -> tuple[bytes, Envelope, bool, tuple[str, ...]]:
        rng = self.rng
        sender = rng.randrange(500)
        rcpt = rng.randrange(2500)
        name = self.people[rcpt]
        to_addr = f"user{rcpt}@example.org"
        kind = rng.choice(["Welcome", "Invoice", "Password reset", "Weekly digest", "Order shipped", "Alert"])
        subject = f"{kind} {index}: {' '.join(rng.choices(self.words, self.weights, k=4))}"
        text = self._text(rng.randint(60, 260))
        head = (f"From: {self.people[sender]} <sender{sender}@app{sender % 20}.test>\r\n"
                f"To: {name} <{to_addr}>\r\nSubject: {subject}\r\n"
                f"Message-ID: <{index}.{sender}@app.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
                "MIME-Version: 1.0\r\n")
        if rng.random() < 0.2:
            html = "<html><body><p>" + text.replace("\r\n", "</p>\r\n<p>") + "</p></body></html>"
            body = ("Content-Type: multipart/alternative; boundary=b1\r\n\r\n--b1\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n--b1\r\n"
                    "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--b1--\r\n")
        elif rng.random() < 0.06:
            body = ("Content-Type: multipart/mixed; boundary=b2\r\n\r\n--b2\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n--b2\r\n"
                    f"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=doc{index}.pdf\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago=\r\n--b2--\r\n")
        else:
            body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
        received = START + timedelta(seconds=index * SPAN_DAYS * 86400 / self.total)
        envelope = Envelope(mail_from=f"bounce{sender}@app.test", rcpt_tos=(to_addr,), received=received)
        tags = ("billing",) if kind == "Invoice" and rng.random() < 0.5 else ()
        return (head + body).encode(), envelope, rng.random() < 0.6, tags


async def fill(store: Store, count: int, gen: Generator) -> float:
    started = time.perf_counter()
    chunk = 1000
    for first in range(0, count, chunk):
        items = [gen.message(i) for i in range(first, min(count, first + chunk))]
        await asyncio.gather(*(store.add(raw, env, read=read, tags=tags) for raw, env, read, tags in items))
        done = min(count, first + chunk)
        if done % 10000 == 0 or done == count:
            rate = done / (time.perf_counter() - started)
            print(f"\r  stored {done:>7,} messages ({rate:,.0f}/s)", end="", flush=True)
    print()
    return time.perf_counter() - started


async def timed(fn: Callable[[], Awaitable[object]], runs: int) -> tuple[float, object]:
    samples = []
    result: object = await fn()  # warm-up: the first run also pays for reading pages from disk
    for _ in range(runs):
        started = time.perf_counter()
        result = await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


async def until_indexed(path: Path) -> float:
    """Wait, with the event loop free, until the store's writer has indexed every pending search row."""
    started = time.perf_counter()
    with sqlite3.connect(path) as conn:
        while conn.execute("SELECT count(*) FROM search_pending").fetchone()[0]:
            await asyncio.sleep(0.05)
    return time.perf_counter() - started


def index_size(path: Path) -> tuple[float, float, float]:
    """MB on disk: the whole database, the search index (all of FTS5's tables), and messages + bodies."""
    conn = sqlite3.connect(path)
    try:
        sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    except sqlite3.Error:
        return os.path.getsize(path) / 1e6, float("nan"), float("nan")
    finally:
        conn.close()
    fts = sum(v for k, v in sizes.items() if k == "search" or k.startswith("search_"))
    mail = sum(v for k, v in sizes.items() if k in ("messages", "bodies"))
    return sum(sizes.values()) / 1e6, fts / 1e6, mail / 1e6


def indexing_cost(gen: Generator, samples: int) -> tuple[float, float, float]:
    """Per message: µs to build the index row, µs for the FTS5 insert, mean characters indexed."""
    rows = []
    build = 0.0
    for i in range(samples):
        raw, envelope, _, _ = gen.message(i)
        parsed = mime.parse(raw)
        t = time.perf_counter()
        rows.append(search.index_values(
            subject=parsed.subject, from_=parsed.from_, to=parsed.to, cc=parsed.cc, bcc=_bcc(parsed, envelope),
            reply_to=parsed.reply_to, message_id=parsed.message_id, text=parsed.text, html=parsed.html,
            attachment_names=[a.filename for a in parsed.attachments], envelope_from=envelope.mail_from,
            mailboxes=[r.lower() for r in envelope.rcpt_tos]))
        build += time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "fts.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(next(s for s in schema.MIGRATIONS[0] if "VIRTUAL TABLE" in s))  # the search index
        columns = ", ".join(search.FTS_COLUMNS)
        sql = f"INSERT INTO search (rowid, {columns}) VALUES (?{', ?' * len(search.FTS_COLUMNS)})"
        started = time.perf_counter()
        for first in range(0, samples, 50):  # group commit, as the store's writer
            conn.execute("BEGIN")
            conn.executemany(sql, [(i + 1, *rows[i]) for i in range(first, min(samples, first + 50))])
            conn.execute("COMMIT")
        insert = (time.perf_counter() - started) / samples
        conn.close()
    chars = sum(sum(len(v) for v in row) for row in rows) / samples
    return build / samples * 1e6, insert * 1e6, chars


def _median_ms(conn: sqlite3.Connection, sql: str, params: Sequence[object], runs: int) -> float:
    samples = []
    conn.execute(sql, params).fetchall()  # warm-up
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(sql, params).fetchall()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def parts_query(path: Path, query: str, runs: int) -> tuple[float, float]:
    """The store's count and first-page statements for one query, with its own WHERE."""
    conn = sqlite3.connect(path)
    try:
        where, params = SQLiteStore._view(None, query)
        count = _median_ms(conn, f"SELECT count(*) FROM messages m WHERE {where}", params, runs) if query else 0.0
        page = _median_ms(conn, f"SELECT m.uid, m.id, m.subject, m.from_json, m.to_json, m.tags FROM messages m "
                                f"WHERE {where} ORDER BY m.uid DESC LIMIT 50", params, runs)
        return count, page
    finally:
        conn.close()


def parts_one_row(path: Path, query: str, runs: int) -> tuple[float, float]:
    conn = sqlite3.connect(path)
    try:
        uid = conn.execute("SELECT max(uid) / 2 FROM messages").fetchone()[0]
        times = []
        for one_row in (False, True):
            f = search.compile(query, one_row=one_row)
            times.append(_median_ms(conn, f"SELECT 1 FROM messages m WHERE m.uid = ? AND ({f.where})",
                                    (uid, *f.params), runs))
        return times[0], times[1]
    finally:
        conn.close()


def compare_tokenizers(path: Path, runs: int) -> None:
    """The same index text under trigram (substring) and unicode61 (words, prefix*) tokenizers."""
    conn = sqlite3.connect(path, isolation_level=None)
    columns = ", ".join(search.FTS_COLUMNS)
    count = conn.execute("SELECT count(*) FROM search").fetchone()[0]
    print(f"\ntokenizers on the same {count:,} index rows (bare FTS5 tables, MATCH only):")
    queries = {"rare word": RARE, "medium word": MEDIUM, "common word": "the",
               "address": "sender42@", "substring": "ebrafis"}
    for name, tokenize, detail in (("trigram", "trigram case_sensitive 1", "full"),
                                   ("unicode61", "unicode61 remove_diacritics 0", "full")):
        table = f"cmp_{name}"
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE VIRTUAL TABLE {table} USING fts5({columns}, tokenize='{tokenize}', detail={detail}, "
                     "columnsize=0)")
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(f"INSERT INTO {table} (rowid, {columns}) SELECT rowid, {columns} FROM search")
        conn.execute("COMMIT")
        per_message = (time.perf_counter() - started) / count * 1e6
        size = sum(r[0] for r in conn.execute(
            f"SELECT sum(pgsize) FROM dbstat WHERE name LIKE '{table}%'").fetchall()) / 1e6
        cells = []
        for label, word in queries.items():
            term = f'"{word}"' if name == "trigram" else f'"{word.strip("@")}"*'
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                found = conn.execute(f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", (term,)).fetchone()[0]
                samples.append((time.perf_counter() - started) * 1000)
            cells.append(f"{label} {statistics.median(samples):.1f} ms ({found:,})")
        print(f"  {name:9} insert {per_message:5.0f} µs/msg  index {size:6.1f} MB  " + ", ".join(cells))
        conn.execute(f"DROP TABLE {table}")
    conn.execute("VACUUM")
    conn.close()


# (label, query, mailbox): the cases timed on every backend.
CASES: tuple[tuple[str, str, str | None], ...] = (
    ("list page 1 (no query)", "", None),
    ("free text, rare word", RARE, None),
    ("free text, medium word", MEDIUM, None),
    ("free text, common word", "the", None),
    ("free text, two words", f"{MEDIUM} invoice", None),
    ("phrase", '"password reset"', None),
    ("short term (2 chars, scan)", "zq", None),
    ("field from:", "from:sender42@", None),
    ("field to:", "to:user1234@example.org", None),
    ("field subject:", "subject:digest", None),
    ("field addressed:", "addressed:user77@", None),
    ("mailbox: (envelope)", "mailbox:user99@example.org", None),
    ("negation -word", f"-{MEDIUM}", None),
    ("word -word", f"{MEDIUM} -invoice", None),
    ("negation -from:", "-from:app3.test", None),
    ("date range", "after:2026-02-01 before:2026-02-08", None),
    ("date range + word", f"after:2026-02-01 before:2026-03-01 {MEDIUM}", None),
    ("is:unread", "is:unread", None),
    ("tag:", "tag:billing", None),
    ("larger:", "larger:3k", None),
    ("has:attachment", "has:attachment", None),
    ("mailbox view (?mailbox=)", "", "user7@example.org"),
)
POSTGRES_SHARED_BUFFERS = "128MB"  # PostgreSQL's own default; the test clusters' 16 MB is sized for tests


@dataclass
class Backend:
    """One store under test. The timings go through `store` (the Store protocol) only; `path` (SQLite) or
    `url` and `search_path` (PostgreSQL) are for the backend-only diagnostics, which read the database."""

    name: str
    store: Store
    path: Path | None = None
    url: str | None = None
    search_path: str = ""


def is_postgres_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


async def open_sqlite(path: Path, messages: int) -> Backend:
    store = SQLiteStore(path, Hub())
    await store.start()
    backend = Backend("sqlite", store, path=path)
    existing = await store.count()
    if existing == 0:
        seconds = await fill(store, messages, Generator(messages))
        drained = await until_indexed(path)
        print(f"sqlite: filled {messages:,} messages through store.add in {seconds:.0f} s; the last search "
              f"rows were indexed {drained:.1f} s later")
    else:
        print(f"sqlite: reusing {existing:,} messages in {path}")
        await until_indexed(path)
    total, fts, mail = index_size(path)
    print(f"sqlite: on disk: database {total:.0f} MB, of which the search index {fts:.0f} MB "
          f"and messages + bodies {mail:.0f} MB")
    return backend


async def open_postgres(url: str, messages: int) -> Backend:
    from mailnest.store.postgres import PostgresStore

    store = PostgresStore(url, Hub(), max_messages=0)
    await store.start()
    backend = Backend("postgresql", store, url=url, search_path=store._search_path)
    existing = await store.count()
    if existing == 0:
        seconds = await fill(store, messages, Generator(messages))
        print(f"postgresql: filled {messages:,} messages through store.add in {seconds:.0f} s")
    else:
        print(f"postgresql: reusing {existing:,} messages")
    settled = await settle_postgres(backend)
    version, total, search_total, search_indexes, mail = await postgres_sizes(backend)
    print(f"postgresql {version}: VACUUM (ANALYZE) took {settled:.1f} s; on disk: database {total:.0f} MB, "
          f"of which search_index {search_total:.0f} MB ({search_indexes:.0f} MB its trigram indexes) and "
          f"messages + bodies + recipients {mail:.0f} MB")
    return backend


async def settle_postgres(backend: Backend) -> float:
    """VACUUM (ANALYZE), as autovacuum does soon after a bulk load: it moves the GIN pending lists into the
    trigram indexes and gives the planner statistics. Without it the timings depend on when autovacuum ran."""
    import psycopg

    assert backend.url is not None
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(backend.url, autocommit=True) as conn:
        await conn.execute(f"SET search_path TO {backend.search_path}")
        await conn.execute("VACUUM (ANALYZE)")
    return time.perf_counter() - started


async def postgres_sizes(backend: Backend) -> tuple[str, float, float, float, float]:
    """Server version; MB: the database, search_index with its indexes, its indexes, the mail tables."""
    import psycopg

    assert backend.url is not None
    async with await psycopg.AsyncConnection.connect(backend.url, autocommit=True) as conn:
        await conn.execute(f"SET search_path TO {backend.search_path}")
        cur = await conn.execute(
            "SELECT current_setting('server_version'), pg_database_size(current_database()), "
            "pg_total_relation_size('search_index'), pg_indexes_size('search_index'), "
            "pg_total_relation_size('messages') + pg_total_relation_size('bodies') "
            "+ pg_total_relation_size('recipients')")
        row = await cur.fetchone()
    assert row is not None
    return str(row[0]), *(int(v) / 1e6 for v in row[1:])  # type: ignore[return-value]


def postgres_statements(query: str, mailbox: str | None) -> list[tuple[str, str, list[Any]]]:
    """The SQL PostgresStore.list runs for one call, from the backend's own compiler (name, sql, params):
    the mailbox's totals, the count of matches and the first page, as PostgresStore.list (keep in step)."""
    from mailnest.store.postgres import query as compiler
    from mailnest.store.sqlite.rows import _SUMMARY_COLUMNS

    base_where, base_params = compiler.view(mailbox, "")
    where, params = compiler.view(mailbox, query)
    counts = "SELECT count(*), count(*) FILTER (WHERE m.read = 0) FROM messages m WHERE "
    statements: list[tuple[str, str, list[Any]]] = []
    if mailbox:
        statements.append(("totals", counts + base_where, list(base_params)))
    if where != base_where:
        statements.append(("count", counts + where, list(params)))
    statements.append(("page", f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE {where} ORDER BY m.uid DESC "
                               "LIMIT %s OFFSET %s", [*params, 50, 0]))
    return statements


async def explain_postgres(backend: Backend, slow: Sequence[tuple[str, str, str | None, float]]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement of each slow case, twice: the custom plan (parameters
    bound as the store binds them, planned for their values) and the generic plan. psycopg prepares a
    statement once it has run 5 times on a connection, and every query of one shape (say, any one free-text
    word) is the same SQL text, so the store soon runs prepared statements, for which PostgreSQL may switch to
    the generic plan: one plan for every value."""
    import psycopg

    assert backend.url is not None
    async with await psycopg.AsyncConnection.connect(backend.url, autocommit=True) as conn:
        await conn.execute(f"SET search_path TO {backend.search_path}")
        for label, query, mailbox, ms in slow:
            where = f", mailbox={mailbox!r}" if mailbox else ""
            print(f"\n{label} ({query!r}{where}): list() p50 {ms:.1f} ms")
            for name, sql, params in postgres_statements(query, mailbox):
                print(f"  -- {name}: {sql}\n  -- params: {params!r}")
                for plan in ("custom", "generic"):
                    print(f"  -- {plan} plan:")
                    for line in await _explain(conn, sql, params, generic=plan == "generic"):
                        print(f"  {line}")


async def _explain(conn: Any, sql: str, params: Sequence[Any], *, generic: bool) -> list[str]:
    from psycopg import sql as pgsql

    if not generic:
        cur = await conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return [line for (line,) in await cur.fetchall()]
    parts = sql.split("%s")  # the compiler's SQL has no other % (patterns are parameters)
    numbered = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))
    values = ", ".join(pgsql.Literal(p).as_string(conn) for p in params)
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE bench_generic AS {numbered}")
    try:
        cur = await conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic({values})")
        return [line for (line,) in await cur.fetchall()]
    finally:
        await conn.execute("DEALLOCATE bench_generic")
        await conn.execute("RESET plan_cache_mode")


async def time_cases(backends: Sequence[Backend], runs: int) -> dict[str, list[tuple[float, int]]]:
    """Per backend, per case: (median ms of store.list, matches). Cases are interleaved across backends, so a
    disturbance of the machine hits both alike."""
    results: dict[str, list[tuple[float, int]]] = {b.name: [] for b in backends}
    for _, query, mailbox in CASES:
        for backend in backends:
            call = functools.partial(backend.store.list, query=query, mailbox=mailbox, limit=50)
            ms, page = await timed(call, runs)
            results[backend.name].append((ms, getattr(page, "messages_count", 0)))
    return results


def print_table(backends: Sequence[Backend], results: dict[str, list[tuple[float, int]]], runs: int,
                goal_ms: float) -> None:
    names = [b.name for b in backends]
    both = len(names) == 2
    print(f"\nstore.list(query, limit=50) as the API calls it (count of matches + first page of 50 + tag "
          f"list), median of {runs} runs, ms:")
    header = "".join(f"{n:>11}" for n in names) + (f"{'pg/sqlite':>10}" if both else "")
    print(f"  {'':28}{header} {'matches':>9}")
    mismatches = 0
    for n, (label, query, mailbox) in enumerate(CASES):
        cells = [results[name][n] for name in names]
        row = "".join(f"{ms:11.1f}" for ms, _ in cells)
        if both:
            row += f"{cells[1][0] / cells[0][0]:9.1f}x" if cells[0][0] else f"{'':10}"
        counts = {matched for _, matched in cells}
        matched = f"{cells[0][1]:>9,}" if len(counts) == 1 else " " + " != ".join(f"{c:,}" for _, c in cells)
        mismatches += len(counts) > 1
        shown = repr(query) + (f" mailbox={mailbox!r}" if mailbox else "")
        print(f"  {label:28}{row} {matched}   {shown}")
    for name in names:
        over = [label for (label, _, _), (ms, _) in zip(CASES, results[name], strict=True) if ms >= goal_ms]
        print(f"  {name}: {len(over)} of {len(CASES)} cases at or over {goal_ms:.0f} ms"
              + (f" ({'; '.join(over)})" if over else ""))
    if mismatches:
        print(f"  WARNING: the backends found different numbers of matches in {mismatches} case(s)")


async def sqlite_parts(backend: Backend, runs: int) -> None:
    """SQLite only: each query's count and first-page statements run on their own, and what is left over."""
    assert backend.path is not None
    path = backend.path
    print(f"\nsqlite only: the parts of list(), median of {runs}: 'count' and 'page' are the store's own two"
          "\n  SQL statements with the compiled filter; 'fixed' is what every list() spends whatever the"
          "\n  query (totals, tag list...): list('') minus its page statement")
    print(f"  {'':28} {'count':>8} {'page':>8} {'fixed':>8}")
    empty_ms, _ = await timed(lambda: backend.store.list(limit=50), runs)
    fixed = empty_ms - parts_query(path, "", runs)[1]
    for label, query, mailbox in CASES:
        if mailbox is None:
            count_ms, page_ms = parts_query(path, query, runs)
            print(f"  {label:28} {count_ms:8.1f} {page_ms:8.1f} {fixed:8.1f}   {query!r}")
    print("\nsqlite only: one message tested against a query (tag rules at ingest: WHERE m.uid = ? AND "
          "filter)")
    for query in (RARE, "the", f"-{MEDIUM}", "from:app3.test", "zq"):
        as_set, one_row = parts_one_row(path, query, runs)
        print(f"  {query!r:18} compile(q) {as_set:8.2f} ms   compile(q, one_row=True) {one_row:6.2f} ms")


def start_cluster(root: Path) -> Any:
    """A throwaway PostgreSQL cluster as the tests start one (tests/pgcluster.py), with a benchmark's
    buffers."""
    from tests.pgcluster import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        sys.exit("--postgres: PostgreSQL is not installed (apt-get install postgresql)")
    root.chmod(0o755)  # the cluster runs as nobody when this runs as root
    (root / "pg").mkdir()
    server = PostgresServer(bindir, root / "pg")
    server.init()
    with (server.datadir / "postgresql.conf").open("a") as conf:
        conf.write(f"\n# benchmarks/search_bench.py\nshared_buffers = {POSTGRES_SHARED_BUFFERS}\n")
    server.start()
    server.psql("CREATE DATABASE bench")
    print(f"postgresql: throwaway cluster from {bindir} on port {server.port}, "
          f"shared_buffers {POSTGRES_SHARED_BUFFERS}")
    return server


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7, help="runs per query; the median is printed")
    parser.add_argument("--db", help="SQLite file or postgresql:// URL to fill (reused when it has messages)")
    parser.add_argument("--postgres", action="store_true",
                        help="also start a throwaway PostgreSQL cluster and run every case on both backends")
    parser.add_argument("--goal-ms", type=float, default=50.0, help="p50 goal per case (issue 13)")
    parser.add_argument("--explain-over", type=float, default=50.0, metavar="MS",
                        help="PostgreSQL: EXPLAIN ANALYZE the statements of slower cases (0: never)")
    parser.add_argument("--compare-tokenizers", action="store_true", help="SQLite only")
    args = parser.parse_args()
    postgres_url = args.db if args.db and is_postgres_url(args.db) else None
    sqlite_file = Path(args.db) if args.db and not postgres_url else None
    if args.postgres and postgres_url:
        parser.error("--postgres starts its own cluster: give --db a SQLite file, or drop --postgres")
    use_sqlite = postgres_url is None
    if args.compare_tokenizers and not use_sqlite:
        parser.error("--compare-tokenizers is SQLite only")

    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus")
    if use_sqlite:
        build_us, insert_us, chars = indexing_cost(Generator(args.messages), 2000)
        print(f"sqlite only: indexing cost per message ({chars:,.0f} characters indexed on average): "
              f"building the row {build_us:.0f} µs + FTS5 insert {insert_us:.0f} µs")

    tmp = Path(tempfile.mkdtemp(prefix="mailnest-search-bench-"))
    server = None
    backends: list[Backend] = []
    try:
        async with AsyncExitStack() as stack:
            if use_sqlite:
                backends.append(await open_sqlite(sqlite_file or tmp / "bench.db", args.messages))
                stack.push_async_callback(backends[-1].store.close)
            if args.postgres:
                server = start_cluster(tmp)
                postgres_url = server.url("bench")
            if postgres_url:
                backends.append(await open_postgres(postgres_url, args.messages))
                stack.push_async_callback(backends[-1].store.close)

            results = await time_cases(backends, args.runs)
            print_table(backends, results, args.runs, args.goal_ms)
            for backend in backends:
                if backend.name == "sqlite":
                    await sqlite_parts(backend, args.runs)
                elif args.explain_over > 0:
                    slow = [(label, query, mailbox, ms) for (label, query, mailbox), (ms, _)
                            in zip(CASES, results[backend.name], strict=True) if ms > args.explain_over]
                    if slow:
                        print(f"\npostgresql only: EXPLAIN (ANALYZE, BUFFERS) of the store's statements for "
                              f"the {len(slow)} case(s) over {args.explain_over:.0f} ms")
                        await explain_postgres(backend, slow)
        if args.compare_tokenizers:
            compare_tokenizers(sqlite_file or tmp / "bench.db", args.runs)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
