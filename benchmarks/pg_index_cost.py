"""What each way of indexing prose for substring search costs PostgreSQL, per message, on this machine.

The team store's ingest is cheap for PostgreSQL with a repeated line and costly with prose (team_bench.py
--body words): its one pg_trgm GIN index over `search_index.words` takes about a thousand keys per 2 KB of
varied prose. This measures the candidates for the next design side by side, in the same run, on a throwaway
cluster: the same `words` values (search_words() of smtp_ingest.py's prose messages) inserted ten per
transaction, as ingest batches them, into a table with

- no index at all (the floor: the heap and its primary key);
- the store's pg_trgm GIN (`gin_trgm_ops`, fastupdate on, the default) and with a 64 MB pending list;
- a GIN over the distinct tokens as `text[]`;
- a GIN over 32-bit hashes of the distinct tokens as `int[]` (the node computes them);
- the token GIN plus a vocabulary table with its own pg_trgm index, sent only the tokens this client has not
  sent before (a substring query would find the matching tokens in the small vocabulary, then the messages).

It prints microseconds of PostgreSQL CPU (user + system of every postgres process, from /proc, including the
VACUUM that flushes GIN pending lists) and wall time per message, the median of `--rounds` interleaved rounds.
Figures, not a test.

    python benchmarks/pg_index_cost.py
    python benchmarks/pg_index_cost.py --messages 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import psycopg  # noqa: E402
import smtp_ingest  # noqa: E402
from tests.pgcluster import PostgresServer, find_bindir  # noqa: E402

from mailnest.store.postgres.ingest import search_words  # noqa: E402

BATCH = 10
Insert = Callable[[psycopg.Connection, int, Sequence[str]], None]


def postgres_cpu(server: PostgresServer) -> float:
    """Seconds of CPU used so far by every process of the cluster (the postmaster's children included)."""
    master = int((server.datadir / "postmaster.pid").read_text().split()[0])
    pids = [master, *map(int, subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                             text=True).stdout.split())]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _uids(start: int, count: int) -> list[int]:
    return list(range(start, start + count))


def plain(conn: psycopg.Connection, start: int, words: Sequence[str]) -> None:
    conn.execute("INSERT INTO t (uid, words) SELECT * FROM unnest(%s::bigint[], %s::text[])",
                 (_uids(start, len(words)), list(words)))


def tokens(conn: psycopg.Connection, start: int, words: Sequence[str]) -> None:
    conn.execute("INSERT INTO t (uid, words, toks) SELECT u, w, string_to_array(w, ' ') "
                 "FROM unnest(%s::bigint[], %s::text[]) x(u, w)", (_uids(start, len(words)), list(words)))


def hashes(conn: psycopg.Connection, start: int, words: Sequence[str]) -> None:
    lists = [",".join(str(zlib.crc32(t.encode()) - 2**31) for t in set(w.split())) for w in words]
    conn.execute("INSERT INTO t (uid, words, hashes) SELECT u, w, string_to_array(h, ',')::int[] "
                 "FROM unnest(%s::bigint[], %s::text[], %s::text[]) x(u, w, h)",
                 (_uids(start, len(words)), list(words), lists))


def vocabulary() -> Insert:
    sent: set[str] = set()

    def insert(conn: psycopg.Connection, start: int, words: Sequence[str]) -> None:
        tokens(conn, start, words)
        new = {t for w in words for t in w.split()} - sent
        if new:
            conn.execute("INSERT INTO vocab (token) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (sorted(new),))
            sent.update(new)

    return insert


TABLE = "CREATE TABLE t (uid bigint PRIMARY KEY, words text, toks text[], hashes int[])"
VOCAB = ["CREATE TABLE vocab (token text PRIMARY KEY)", "CREATE INDEX ON vocab USING gin (token gin_trgm_ops)"]
CASES: dict[str, tuple[list[str], Callable[[], Insert]]] = {
    "no index": ([TABLE], lambda: plain),
    "pg_trgm GIN (the store today)": ([TABLE, "CREATE INDEX ON t USING gin (words gin_trgm_ops)"], lambda: plain),
    "pg_trgm GIN, 64 MB pending list": ([TABLE, "CREATE INDEX ON t USING gin (words gin_trgm_ops) "
                                                "WITH (gin_pending_list_limit = 65536)"], lambda: plain),
    "GIN over tokens (text[])": ([TABLE, "CREATE INDEX ON t USING gin (toks)"], lambda: tokens),
    "GIN over token hashes (int[])": ([TABLE, "CREATE INDEX ON t USING gin (hashes)"], lambda: hashes),
    "tokens + vocabulary (new only)": ([TABLE, "CREATE INDEX ON t USING gin (toks)", *VOCAB], vocabulary),
}


def run_case(server: PostgresServer, url: str, setup: list[str], insert: Insert,
             words: Sequence[str]) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS t, vocab")
        for statement in setup:
            conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("CHECKPOINT")
        cpu, started = postgres_cpu(server), time.perf_counter()
        for start in range(0, len(words), BATCH):
            with conn.transaction():
                insert(conn, start, words[start:start + BATCH])
        conn.execute("VACUUM t")  # flushes the GIN pending lists: their cost counts
        wall, used = time.perf_counter() - started, postgres_cpu(server) - cpu
    return used * 1e6 / len(words), wall * 1e6 / len(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=2000, help="bytes of prose per message")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    smtp_ingest.BODY = "words"
    words = [search_words([f"message {i}", "bench@example.com", "sink@example.com",
                           smtp_ingest._prose(args.size, i).decode().lower()]) for i in range(args.messages)]
    keys = statistics.mean(len(set(w.split())) for w in words)
    root = Path(tempfile.mkdtemp(prefix="mailnest-index-cost-"))
    root.chmod(0o755)  # the cluster runs as nobody when this runs as root
    (root / "pg").mkdir()
    server = PostgresServer(bindir, root / "pg")
    server.init()
    server.start()
    try:
        server.psql("CREATE DATABASE bench")
        server.psql("CREATE EXTENSION pg_trgm", "bench")
        url = server.url("bench")
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
        for _ in range(args.rounds):  # interleaved, so noise hits every case alike
            for name, (setup, make) in CASES.items():
                figures[name].append(run_case(server, url, setup, make(), words))
        print(f"{args.messages} messages of {args.size} bytes of prose ({keys:.0f} distinct tokens each), "
              f"{BATCH} per transaction, median of {args.rounds} rounds:")
        for name, values in figures.items():
            cpu = statistics.median(v[0] for v in values)
            wall = statistics.median(v[1] for v in values)
            print(f"  {name:34s} PostgreSQL CPU {cpu:6.0f} us/msg   wall {wall:6.0f} us/msg")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
