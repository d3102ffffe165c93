"""What --compress costs and saves: stored size, ingest and read time per message, with and without it.

For each corpus (the .eml files of tests/corpus; generated 2 KB and 100 KB text messages of varied prose, and
14 KB HTML newsletters) the script opens a store on a new database with compression off (A) and on (B), in
turns (A B A B ...), adds N messages through `Store.add` (50 at a time, as concurrent SMTP sessions would, each
returning after its commit) and reads every one back with `Store.raw`, checking the bytes. It prints the median
of the rounds: ms per message to ingest and to read, the stored raw bytes as a share of the message bytes (read
from bodies.raw), and the database's size (SQLite: its pages in use; PostgreSQL: the schema's tables with their
indexes and TOAST). Then zstd alone at several levels on the same corpora, for the choice of level. Figures,
not a pass/fail test.

    python benchmarks/compress_cost.py                          # SQLite, 5 interleaved rounds
    python benchmarks/compress_cost.py --rounds 7 --messages 1000
    python benchmarks/compress_cost.py --postgres postgresql://localhost/bench   # the PostgreSQL store instead
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zstandard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from smtp_ingest import _CUMULATIVE, _VOCABULARY, _prose  # noqa: E402

from mailnest.events import Hub  # noqa: E402
from mailnest.models import Envelope  # noqa: E402
from mailnest.store.base import Store  # noqa: E402

ENVELOPE = Envelope("bench@example.com", ("sink@example.com",))


def prose_message(size: int, index: int) -> bytes:
    """A text/plain message of about `size` bytes of varied prose (a different text per message), the prose of
    smtp_ingest.py --body words."""
    head = (f"From: Bench <bench@example.com>\r\nTo: sink@example.com\r\nSubject: message {index}\r\n"
            f"Message-ID: <{index}@bench>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    body = _prose(max(0, size - len(head)), index)
    return head + body[: body.rfind(b"\r\n") + 2]


def newsletter_message(index: int) -> bytes:
    """A multipart/alternative newsletter (about 14 KB): a text part and table-laid HTML with inline styles, a
    different prose in every message, the shape of most marketing and notification mail."""
    rng = random.Random(index)
    items = []
    for n in range(12):
        words = " ".join(rng.choices(_VOCABULARY, cum_weights=_CUMULATIVE, k=40))
        items.append((f"Item {n}: {words[:40]}", words))
    text = "".join(f"{title}\r\n{body}\r\nhttps://shop.example/item/{index}/{n}\r\n\r\n"
                   for n, (title, body) in enumerate(items))
    row = ('<tr><td style="padding:16px 24px;font-family:Helvetica,Arial,sans-serif;font-size:15px;'
           'line-height:22px;color:#333333;background-color:#ffffff;border-bottom:1px solid #eeeeee;">'
           '<h2 style="margin:0 0 8px 0;font-size:18px;color:#111111;">{title}</h2><p style="margin:0 0 12px 0;">'
           '{body}</p><a href="https://shop.example/item/{index}/{n}?utm_source=newsletter&amp;utm_medium=email" '
           'style="display:inline-block;padding:10px 18px;background-color:#0a66c2;color:#ffffff;'
           'text-decoration:none;border-radius:4px;">Read more</a></td></tr>\r\n')
    html = ('<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0;padding:0}</style></head>'
            '<body><table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">\r\n' +
            "".join(row.format(title=t, body=b, index=index, n=n) for n, (t, b) in enumerate(items)) +
            "</table></body></html>\r\n")
    return (f"From: Shop <news@shop.example>\r\nTo: sink@example.com\r\nSubject: Newsletter {index}\r\n"
            f"Message-ID: <n{index}@shop.example>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            "List-Unsubscribe: <https://shop.example/unsubscribe>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
            f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
            f"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b1--\r\n").encode()


def corpora(messages: int) -> dict[str, list[bytes]]:
    eml = [path.read_bytes() for path in sorted((HERE.parent / "tests" / "corpus").glob("*.eml"))]
    return {
        f"tests/corpus ({len(eml)} .eml)": [eml[i % len(eml)] for i in range(messages)],
        "2 KB prose": [prose_message(2_000, i) for i in range(messages)],
        "14 KB HTML newsletter": [newsletter_message(i) for i in range(messages)],
        "100 KB prose": [prose_message(100_000, i) for i in range(max(50, messages // 5))],
    }


class Target:
    """Where each round's store lives: a new SQLite file, or a new schema of one PostgreSQL database."""

    def __init__(self, postgres: str | None, directory: Path) -> None:
        self.postgres = postgres
        self.directory = directory
        self.count = 0

    def open(self, compress: bool) -> tuple[Store, str]:
        self.count += 1
        store: Store
        if self.postgres:
            from mailnest.store.postgres import PostgresStore

            location = f"bench_compress_{self.count}"
            store = PostgresStore(self.postgres, Hub(), tenant=location)
        else:
            from mailnest.store.sqlite import SQLiteStore

            location = str(self.directory / f"round-{self.count}.db")
            store = SQLiteStore(Path(location), Hub())
        store.configure_ingest(compress=compress)
        return store, location

    async def stored_bytes(self, location: str) -> tuple[int, int]:
        """(bytes in bodies.raw, size of the database: the file, or the schema's relations)."""
        if not self.postgres:
            with contextlib.closing(sqlite3.connect(location)) as conn:
                raw = conn.execute("SELECT coalesce(sum(length(raw)), 0) FROM bodies").fetchone()[0]
                used = conn.execute("SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, "
                                    "pragma_freelist_count, pragma_page_size").fetchone()[0]
            return int(raw), int(used)  # pages in use: the file less its free pages (and the WAL's slack)
        import psycopg

        name = location  # a tenant's schema has its name
        async with await psycopg.AsyncConnection.connect(self.postgres) as conn:
            cur = await conn.execute(f'SELECT coalesce(sum(octet_length(raw)), 0) FROM "{name}".bodies')
            raw = (await cur.fetchone())[0]  # type: ignore[index]
            cur = await conn.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                                     "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                                     "AND c.relkind IN ('r', 'm')", (name,))
            total = (await cur.fetchone())[0]  # type: ignore[index]
            await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
            await conn.commit()
        return int(raw), int(total)


async def one_round(target: Target, messages: list[bytes], compress: bool) -> dict[str, float]:
    store, location = target.open(compress)
    await store.start()
    try:
        started = time.perf_counter()
        ids: list[str] = []
        for chunk in range(0, len(messages), 50):
            added = await asyncio.gather(*(store.add(m, ENVELOPE) for m in messages[chunk:chunk + 50]))
            ids += [s.id for s in added]
        ingest = time.perf_counter() - started
        started = time.perf_counter()
        for id_, sent in zip(ids, messages, strict=True):
            if await store.raw(id_) != sent:
                raise SystemExit(f"message {id_} did not read back exactly (compress={compress})")
        read = time.perf_counter() - started
    finally:
        await store.close()
    raw, database = await target.stored_bytes(location)
    n = len(messages)
    return {"ingest_ms": ingest / n * 1000, "read_ms": read / n * 1000, "stored": raw / sum(map(len, messages)),
            "database": database}


def levels(corpus: dict[str, list[bytes]]) -> None:
    print("\nzstd alone (one message at a time, as the store does), stored bytes as a share of the message and "
          "microseconds per message to compress / decompress:")
    for name, messages in corpus.items():
        sample = messages[:200]
        total = sum(map(len, sample))
        cells = []
        for level in (1, 3, 6, 9, 19):
            compressor = zstandard.ZstdCompressor(level=level)
            started = time.perf_counter()
            packed = [compressor.compress(m) for m in sample]
            packing = (time.perf_counter() - started) / len(sample) * 1e6
            decompressor = zstandard.ZstdDecompressor()
            started = time.perf_counter()
            for p in packed:
                decompressor.decompress(p)
            unpacking = (time.perf_counter() - started) / len(sample) * 1e6
            cells.append(f"L{level} {sum(map(len, packed)) / total:5.1%} {packing:6.0f}/{unpacking:4.0f} us")
        print(f"  {name:24s} " + "  ".join(cells))


async def main_async(args: argparse.Namespace) -> None:
    corpus = corpora(args.messages)
    with tempfile.TemporaryDirectory(prefix="mailnest-compress-") as directory:
        target = Target(args.postgres, Path(directory))
        print(f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, zstandard "
              f"{zstandard.__version__}, store {'PostgreSQL' if args.postgres else 'SQLite'}; median of "
              f"{args.rounds} interleaved rounds (off, on, off, on ...)")
        print(f"\n{'corpus':24s} {'messages':>8s} {'avg size':>9s}  {'':4s} {'ingest':>10s} {'read':>10s} "
              f"{'raw stored':>10s} {'database':>10s}")
        for name, messages in corpus.items():
            results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            for _ in range(args.rounds):
                for compress in (False, True):
                    results[compress].append(await one_round(target, messages, compress))
            average = sum(map(len, messages)) / len(messages)
            medians: dict[bool, dict[str, Any]] = {
                c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in results.items()}
            for compress in (False, True):
                m = medians[compress]
                print(f"{name if not compress else '':24s} {len(messages) if not compress else '':>8} "
                      f"{f'{average / 1024:.1f} KB' if not compress else '':>9s}  {'on' if compress else 'off':4s} "
                      f"{m['ingest_ms']:7.3f} ms {m['read_ms']:7.3f} ms {m['stored']:10.1%} "
                      f"{m['database'] / 1e6:7.2f} MB")
            off, on = medians[False], medians[True]
            print(f"{'':24s} {'':8s} {'':9s}  {'on/off':6s} {on['ingest_ms'] / off['ingest_ms']:6.2f}x    "
                  f"{on['read_ms'] / off['read_ms']:6.2f}x    {on['stored'] / off['stored']:9.1%} "
                  f"{on['database'] / off['database']:9.1%}")
    levels(corpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--messages", type=int, default=500,
                        help="messages a round for the small corpora (a fifth of it, at least 50, of 100 KB)")
    parser.add_argument("--postgres", metavar="URL", help="measure the PostgreSQL store on this database")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
