"""Search speed at scale: fills a temporary SQLiteStore with generated messages and times lists and searches.

Every message goes through the store's real ingest path (`store.add`: MIME parse, index, group commit). The
timings are of `store.list(query=...)` as the API calls it (count of matches + first page of 50 + tag list),
median of several runs, so they are what the server spends per request. It also prints the index size on disk,
the per-message cost of indexing (building the row + the FTS5 insert), and with --compare-tokenizers the same
text indexed with trigram and unicode61 side by side. Figures, not a pass/fail test.

    python benchmarks/search_bench.py                         # 100,000 messages
    python benchmarks/search_bench.py --messages 20000
    python benchmarks/search_bench.py --db /tmp/bench.db      # keep the database; later runs reuse it
    python benchmarks/search_bench.py --compare-tokenizers
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailnest import mime, search
from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store import schema
from mailnest.store.sqlite import SQLiteStore, _bcc

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


async def fill(store: SQLiteStore, count: int, gen: Generator) -> float:
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7, help="runs per query; the median is printed")
    parser.add_argument("--db", type=Path, help="database file to fill (or reuse when it has messages)")
    parser.add_argument("--compare-tokenizers", action="store_true")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus")
    gen = Generator(args.messages)
    build_us, insert_us, chars = indexing_cost(Generator(args.messages), 2000)
    print(f"indexing cost per message ({chars:,.0f} characters indexed on average): building the row "
          f"{build_us:.0f} µs + FTS5 insert {insert_us:.0f} µs")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        store = SQLiteStore(path, Hub())
        await store.start()
        try:
            existing = await store.count()
            if existing == 0:
                seconds = await fill(store, args.messages, gen)
                drained = await until_indexed(path)
                print(f"filled {args.messages:,} messages through store.add in {seconds:.0f} s; the last search rows "
                      f"were indexed {drained:.1f} s later")
            else:
                print(f"reusing {existing:,} messages in {path}")
                await until_indexed(path)
            total, fts, mail = index_size(path)
            print(f"on disk: database {total:.0f} MB, of which the search index {fts:.0f} MB "
                  f"and messages + bodies {mail:.0f} MB")

            cases = [
                ("list page 1 (no query)", ""),
                ("free text, rare word", RARE),
                ("free text, medium word", MEDIUM),
                ("free text, common word", "the"),
                ("free text, two words", f"{MEDIUM} invoice"),
                ("phrase", '"password reset"'),
                ("short term (2 chars, scan)", "zq"),
                ("field from:", "from:sender42@"),
                ("field to:", "to:user1234@example.org"),
                ("field subject:", "subject:digest"),
                ("field addressed:", "addressed:user77@"),
                ("mailbox: (envelope)", "mailbox:user99@example.org"),
                ("negation -word", f"-{MEDIUM}"),
                ("word -word", f"{MEDIUM} -invoice"),
                ("negation -from:", "-from:app3.test"),
                ("date range", "after:2026-02-01 before:2026-02-08"),
                ("date range + word", f"after:2026-02-01 before:2026-03-01 {MEDIUM}"),
                ("is:unread", "is:unread"),
                ("tag:", "tag:billing"),
                ("larger:", "larger:3k"),
                ("has:attachment", "has:attachment"),
            ]
            print(f"\nstore.list(query, limit=50) as the API calls it, median of {args.runs}; then the parts of it:"
                  "\n  'count' and 'page' are the store's own two SQL statements with the compiled filter; 'fixed' is what"
                  "\n  every list() spends whatever the query (totals, tag list...): list('') minus its page statement")
            print(f"  {'':28} {'list()':>8} {'count':>8} {'page':>8} {'fixed':>8} {'matches':>8}")
            empty_ms, _ = await timed(lambda: store.list(limit=50), args.runs)
            fixed = empty_ms - parts_query(path, "", args.runs)[1]
            for label, query in cases:
                ms, page = await timed(lambda q=query: store.list(query=q, limit=50), args.runs)
                matched = getattr(page, "messages_count", 0)
                count_ms, page_ms = parts_query(path, query, args.runs)
                print(f"  {label:28} {ms:8.1f} {count_ms:8.1f} {page_ms:8.1f} {fixed:8.1f} {matched:>8,}   {query!r}")
            ms, page = await timed(lambda: store.list(mailbox="user7@example.org", limit=50), args.runs)
            matched = getattr(page, "messages_count", 0)
            print(f"  {'mailbox view (?mailbox=)':28} {ms:8.1f} {'':8} {'':8} {'':8} {matched:>8,}")
            print("  (times in ms)")
            print("\none message tested against a query (tag rules at ingest: WHERE m.uid = ? AND filter)")
            for query in (RARE, "the", f"-{MEDIUM}", "from:app3.test", "zq"):
                as_set, one_row = parts_one_row(path, query, args.runs)
                print(f"  {query!r:18} compile(q) {as_set:8.2f} ms   compile(q, one_row=True) {one_row:6.2f} ms")
        finally:
            await store.close()
        if args.compare_tokenizers:
            compare_tokenizers(path, args.runs)


if __name__ == "__main__":
    asyncio.run(main())
