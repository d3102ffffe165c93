"""The team store: mailnest nodes on one PostgreSQL against a mailnest on SQLite, in the same run.

Starts a throwaway PostgreSQL cluster (as the tests do), one `mailnest serve` on a SQLite file and two on one
PostgreSQL database, then, in interleaved rounds of sustained load (each round sends for `--seconds`):

- 2 KB ingest: SQLite node, one PostgreSQL node, and two PostgreSQL nodes loaded at once; messages per second
  and the ratio to SQLite, the median of the rounds;
- PostgreSQL's own CPU per message (user + system time of every postgres process, from /proc) against the
  receiving node's CPU per message, so one can tell how many nodes one database can serve;
- how long after its 250 on node A a message is visible through the API of node B (p50/p99).

Figures, not a pass/fail test.

    python benchmarks/team_bench.py
    python benchmarks/team_bench.py --rounds 5 --seconds 3 --samples 300
    python benchmarks/team_bench.py --body words          # varied prose: what indexing real text costs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import smtp_ingest  # noqa: E402
from smtp_ingest import _start, load, visibility  # noqa: E402
from tests.pgcluster import PostgresServer, find_bindir  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return total


def postgres_pids(server: PostgresServer) -> list[int]:
    """The postmaster and every process it forked (backends, WAL writer, checkpointer...)."""
    postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == postmaster:
            pids.append(int(stat.parent.name))
    return pids


@contextmanager
def node(db: str, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int]]]:
    ports_file = workdir / f"ports-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "mailnest.cli", "serve", "--db", db, "--smtp", "127.0.0.1:0", "--http",
           "127.0.0.1:0", "--imap", "off", "--pop3", "off", "--max-messages", "0", "--log-level", "WARNING",
           "--ports-file", str(ports_file)]
    proc, ports = _start(cmd, ports_file, "smtp")
    try:
        yield proc, ports
    finally:
        proc.terminate()
        proc.wait(15)


def sustained(ports: list[int], seconds: float, connections: int) -> tuple[int, float]:
    """Send 2 KB messages to every port at once, back to back, for `seconds`; (messages, elapsed)."""
    async def run() -> int:
        sent = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            await asyncio.gather(*(load(port, size=2048, connections=connections, per_connection=20)
                                   for port in ports))
            sent += len(ports) * connections * 20
        return sent

    started = time.perf_counter()
    sent = asyncio.run(run())
    return sent, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each sustained round")
    parser.add_argument("--connections", type=int, default=10, help="per node")
    parser.add_argument("--samples", type=int, default=200, help="messages timed for cross-node visibility")
    parser.add_argument("--body", choices=("repeat", "words"), default="repeat",
                        help="one repeated line (cheap to index), or varied prose (smtp_ingest.py's --body)")
    args = parser.parse_args()
    smtp_ingest.BODY = args.body
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="mailnest-team-bench-"))
    root.chmod(0o755)  # the cluster runs as nobody when this runs as root
    server = PostgresServer(bindir, root / "pg")
    (root / "pg").mkdir()
    server.init()
    server.start()
    try:
        server.psql("CREATE DATABASE bench")
        url = server.url("bench")
        with node(str(root / "mail.db"), root) as (_lite, lite_ports), \
                node(url, root) as (pg_a, a_ports), node(url, root) as (_pg_b, b_ports):
            rates: dict[str, list[float]] = {"sqlite": [], "postgresql": [], "postgresql x2": []}
            pg_share: list[float] = []
            for _ in range(args.rounds):  # interleaved, so noise hits every case alike
                sent, elapsed = sustained([lite_ports["smtp"]], args.seconds, args.connections)
                rates["sqlite"].append(sent / elapsed)
                pids = postgres_pids(server)
                pg_before, node_before = cpu_seconds(pids), cpu_seconds([pg_a.pid])
                sent, elapsed = sustained([a_ports["smtp"]], args.seconds, args.connections)
                rates["postgresql"].append(sent / elapsed)
                pg_cpu = cpu_seconds(postgres_pids(server)) - pg_before
                node_cpu = cpu_seconds([pg_a.pid]) - node_before
                pg_share.append(pg_cpu / node_cpu if node_cpu else float("nan"))
                sent, elapsed = sustained([a_ports["smtp"], b_ports["smtp"]], args.seconds, args.connections)
                rates["postgresql x2"].append(sent / elapsed)
            base = statistics.median(rates["sqlite"])
            print(f"2 KB ingest, {args.connections} connections per node, {args.rounds} interleaved rounds of "
                  f"{args.seconds:.0f} s (median):")
            for name, values in rates.items():
                rate = statistics.median(values)
                print(f"  {name:14s} {rate:8.1f} msgs/s  ratio to sqlite {rate / base:4.2f}x  "
                      f"(rounds: {', '.join(f'{v:.0f}' for v in values)})")
            print(f"PostgreSQL CPU per message / receiving node's CPU per message: "
                  f"{statistics.median(pg_share):.2f} (rounds: {', '.join(f'{v:.2f}' for v in pg_share)})")
            p50, p99 = asyncio.run(visibility(b_ports["http"], a_ports["smtp"], args.samples))  # send A, read B
            print(f"250 on node A to visible through node B's API: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"({args.samples} messages, one at a time)")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
