"""IMAP under load against Dovecot, in the same run (figures, not pass/fail).

50 IMAP sessions (`--sessions`) each repeat, back to back, `SELECT INBOX`, a FETCH of the newest 20 messages'
`(FLAGS ENVELOPE)`, `SEARCH UNSEEN FROM "alice"` and a `STORE +FLAGS (\\Seen)` on one message, while new mail
arrives at `--rate` messages per second (2,000 in all by default): to mailnest over SMTP (its own front door, 4
connections), to Dovecot as files written into its maildir's `new/` (Dovecot has no SMTP here; a maildir delivery
is what its LDA does, and cheaper for Dovecot than SMTP is for mailnest). Each server starts from the same 2,000
messages. The servers take turns, `--rounds` interleaved rounds of `--seconds` each, and the figures are the
median over rounds of each command's median and p99 latency.

mailnest runs in its own process (the client here does not share its interpreter); Dovecot runs one process
per session, preauthenticated on a pipe, over one maildir. The clients are asyncio over raw streams (no imaplib
threads), so both servers see the same load generator.

`--before DIR` adds a third server: mailnest from another checkout's `src/` (e.g. `git worktree add /tmp/before
<commit>`), on its own copy of the same store, taking its turn in every round: a before/after figure from one run.

Run:  .venv/bin/python benchmarks/imap_load.py [--sessions 50] [--rounds 3] [--seconds 6] [--rate 330]
      .venv/bin/python benchmarks/imap_load.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.corpus import build  # noqa: E402
from tests.imap.dovecot import Dovecot, dovecot_available  # noqa: E402

COMMANDS = ("SELECT", "FETCH", "SEARCH", "STORE")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.M)


def message(n: int) -> bytes:
    return build.typical_text_message(seed=n)


class Session:
    """One IMAP session on a pair of streams: commands one at a time, literals read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 process: asyncio.subprocess.Process | None = None) -> None:
        self.reader, self.writer, self.process = reader, writer, process
        self.tags = (f"a{n}".encode() for n in itertools.count())

    async def greeting(self) -> None:
        await self.reader.readline()

    async def command(self, text: str) -> bytes:
        tag = next(self.tags)
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        out = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("the server closed the session")
            out.append(line)
            literal = _LITERAL.search(line)
            if literal:
                out.append(await self.reader.readexactly(int(literal.group(1))))
                continue
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text!r} failed: {line!r}")
                return b"".join(out)


async def work(session: Session, stop: float, latencies: dict[str, list[float]]) -> None:
    """One session's loop until `stop` (monotonic): SELECT, FETCH the newest 20, SEARCH, STORE one."""
    while time.monotonic() < stop:
        start = time.perf_counter()
        answer = await session.command("SELECT INBOX")
        latencies["SELECT"].append(time.perf_counter() - start)
        exists = int(_EXISTS.search(answer).group(1)) if _EXISTS.search(answer) else 0  # type: ignore[union-attr]
        if exists == 0:
            continue
        for name, text in (("FETCH", f"FETCH {max(1, exists - 19)}:{exists} (FLAGS ENVELOPE)"),
                           ("SEARCH", 'SEARCH UNSEEN FROM "alice"'),
                           ("STORE", f"STORE {1 + (exists * 7919) % exists} +FLAGS (\\Seen)")):
            start = time.perf_counter()
            await session.command(text)
            latencies[name].append(time.perf_counter() - start)


def deliver_smtp(port: int, count: int, rate: float, stop: threading.Event) -> int:
    """`count` messages over 4 SMTP connections at about `rate` per second; the number sent."""
    sent = 0
    lock = threading.Lock()
    start = time.monotonic()

    def sender() -> None:
        nonlocal sent
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            while not stop.is_set():
                with lock:
                    if sent >= count:
                        return
                    n = sent
                    sent += 1
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                smtp.sendmail("bench@example.com", ["alice@example.org"], message(10_000 + n))

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def deliver_maildir(new: Path, count: int, rate: float, stop: threading.Event) -> int:
    """The same messages as files in a maildir's new/ (tmp/ then a rename, as a maildir delivery does)."""
    tmp = new.parent / "tmp"
    start = time.monotonic()
    owner = (os.stat(new).st_uid, os.stat(new).st_gid)
    for n in range(count):
        if stop.is_set():
            return n
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        name = f"{int(time.time())}.M{n}P{os.getpid()}.load"
        (tmp / name).write_bytes(message(10_000 + n))
        if os.geteuid() == 0:
            os.chown(tmp / name, *owner)
        os.rename(tmp / name, new / name)
    return count


async def round_(connect: Callable[[], Awaitable[Session]], sessions: int, seconds: float,
                 deliver: Callable[[threading.Event], int]) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {name: [] for name in COMMANDS}
    clients = [await connect() for _ in range(sessions)]
    stop_delivery = threading.Event()
    delivery = asyncio.get_running_loop().run_in_executor(None, deliver, stop_delivery)
    stop = time.monotonic() + seconds
    try:
        await asyncio.gather(*(work(client, stop, latencies) for client in clients))
    finally:
        stop_delivery.set()
        await delivery
        for client in clients:
            with contextlib.suppress(Exception):
                client.writer.write(b"z LOGOUT\r\n")
                client.writer.close()
            if client.process is not None:
                await client.process.wait()
    return latencies


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def serve(db: str, port_file: str) -> None:
    """The mailnest server process: SMTP and IMAP over an existing database."""
    from mailnest.config import Config, Listen
    from mailnest.runtime import ServerThread

    config = Config(db=Path(db), smtp=Listen("127.0.0.1", 0), http=None, imap=Listen("127.0.0.1", 0),
                    max_messages=0)
    thread = ServerThread(config).start()
    Path(port_file).write_text(f"{thread.smtp_port} {thread.imap_port}")
    try:
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        thread.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=330.0, help="new messages per second during a round")
    parser.add_argument("--messages", type=int, default=2000, help="messages each server starts with")
    parser.add_argument("--profile", metavar="FILE", help="record where mailnest's time goes with py-spy "
                        "(installed separately) into FILE, a flame graph (SVG)")
    parser.add_argument("--before", metavar="DIR", help="also run mailnest from this checkout (its src/)")
    parser.add_argument("--fill", nargs=2, metavar=("DB", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, metavar=("DB", "PORTFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from imap_bench import fill_dovecot, fill_mailnest

    if args.fill:  # a store written by the mailnest on PYTHONPATH (each version its own schema)
        fill_mailnest(Path(args.fill[0]), [message(n) for n in range(int(args.fill[1]))])
        return
    if not dovecot_available():
        sys.exit("Dovecot (/usr/lib/dovecot/imap) is needed for the comparison")

    initial = [message(n) for n in range(args.messages)]
    per_round = int(args.rate * args.seconds)
    scratch = Path(tempfile.mkdtemp(prefix="mailnest-imap-load-"))
    dovecot = Dovecot()
    servers_started: list[subprocess.Popen[bytes]] = []
    try:
        fill_mailnest(scratch / "load.db", initial)
        fill_dovecot(dovecot, initial)
        trees = {"mailnest": ROOT / "src"}
        if args.before:
            trees["before"] = Path(args.before).resolve() / "src"
            subprocess.run([sys.executable, __file__, "--fill", str(scratch / "before.db"), str(args.messages)],
                           check=True, env={**os.environ, "PYTHONPATH": str(trees["before"])})
        ports: dict[str, tuple[int, int]] = {}
        for name, tree in trees.items():
            port_file = scratch / f"{name}.ports"
            command = [sys.executable, __file__, "--serve", str(scratch / ("load.db" if name == "mailnest"
                                                                          else "before.db")), str(port_file)]
            if args.profile and name == "mailnest":
                command = ["py-spy", "record", "--threads", "--nonblocking", "--format",
                           "raw" if args.profile.endswith(".txt") else "flamegraph", "-o", args.profile, "--",
                           *command]
            process = subprocess.Popen(command, stdin=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(tree)})
            servers_started.append(process)
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or process.poll() is not None:
                    sys.exit(f"the {name} server process did not start")
                time.sleep(0.05)
            smtp_port, imap_port = map(int, port_file.read_text().split())
            ports[name] = (smtp_port, imap_port)

        def mailnest_session(port: int) -> Callable[[], Awaitable[Session]]:
            async def connect() -> Session:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
                session = Session(reader, writer)
                await session.greeting()
                await session.command('LOGIN "*" bench')
                return session
            return connect

        async def dovecot_session() -> Session:
            proc = await asyncio.create_subprocess_shell(dovecot.command, stdin=subprocess.PIPE,
                                                         stdout=subprocess.PIPE, limit=1 << 22)
            assert proc.stdin is not None and proc.stdout is not None
            session = Session(proc.stdout, proc.stdin, proc)  # type: ignore[arg-type]
            await session.greeting()
            return session

        def smtp_delivery(port: int) -> Callable[[threading.Event], int]:
            return lambda stop: deliver_smtp(port, per_round, args.rate, stop)

        servers: dict[str, tuple[Callable[[], Awaitable[Session]], Callable[[threading.Event], int]]] = {
            name: (mailnest_session(imap), smtp_delivery(smtp)) for name, (smtp, imap) in ports.items()}
        servers["dovecot"] = (dovecot_session, lambda stop: deliver_maildir(dovecot.home / "Maildir" / "new",
                                                                            per_round, args.rate, stop))
        figures: dict[str, dict[str, list[tuple[float, float]]]] = {n: {c: [] for c in COMMANDS} for n in servers}
        counts: dict[str, list[int]] = {n: [] for n in servers}
        for number in range(args.rounds):
            for name, (connect, deliver) in servers.items():
                latencies = asyncio.run(round_(connect, args.sessions, args.seconds, deliver))
                counts[name].append(sum(map(len, latencies.values())))
                for command, values in latencies.items():
                    figures[name][command].append((statistics.median(values), p(values, 0.99)))
                print(f"round {number + 1} {name}: {counts[name][-1]} commands", file=sys.stderr)
        print(f"\n{args.sessions} sessions, {args.rate:g} new messages/s, {args.rounds} rounds of {args.seconds:g} s "
              f"(median over rounds)")

        def med(name: str, command: str, which: int) -> float:
            return statistics.median(x[which] for x in figures[name][command])

        names = list(servers)
        print(f"{'command':<8}" + "".join(f" {n + ' p50':>14} {'p99':>9}" for n in names)
              + "".join(f" {n + '/dovecot':>17}" for n in names if n != "dovecot")
              + (f" {'after/before':>13}" if "before" in names else ""))
        for command in COMMANDS:
            row = f"{command:<8}" + "".join(
                f" {med(n, command, 0) * 1000:>12.1f}ms {med(n, command, 1) * 1000:>7.1f}ms" for n in names)
            row += "".join(f" {med(n, command, 0) / med('dovecot', command, 0):>16.2f}x"
                           for n in names if n != "dovecot")
            if "before" in names:
                row += f" {med('mailnest', command, 0) / med('before', command, 0):>12.2f}x"
            print(row)
        print("commands per round: " + ", ".join(f"{n} {statistics.median(c):.0f}" for n, c in counts.items()))
    finally:
        for process in servers_started:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(30)
        dovecot.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
