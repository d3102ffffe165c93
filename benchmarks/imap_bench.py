"""IMAP against Dovecot on the same 10,000 messages, in the same run (figures, not pass/fail).

Timed, each on a fresh session: SELECT INBOX, `FETCH 1:* (FLAGS ENVELOPE)` (the first run, which reads every
header, and the best of the following runs, which Dovecot answers from its cache and mailnest from its own)
and a few SEARCHes (flags only, a header key, a body key). The goal is mailnest within 2x of Dovecot.

mailnest runs in its own process (so the client here does not share its interpreter); Dovecot runs
preauthenticated on a pipe, reading a maildir. Both get the same bytes: the test corpus (tests/corpus) and
generated typical messages, cycled to the count asked for.

Run:  .venv/bin/python benchmarks/imap_bench.py [--messages 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.corpus import all_messages, build  # noqa: E402
from tests.imap.dovecot import Dovecot, dovecot_available  # noqa: E402
from tests.imap.wire import raw  # noqa: E402

SEARCHES = ("UNSEEN LARGER 2000", 'FROM "alice"', 'SUBJECT "summary" SINCE 1-Jan-2020', 'BODY "mailnest"')


def messages(count: int) -> list[bytes]:
    corpus = [m for m in all_messages().values() if len(m) < 100_000]
    out = []
    for n in range(count):
        out.append(corpus[n % len(corpus)] if n % 4 == 0 else build.typical_text_message(seed=n))
    return out


def fill_mailnest(db: Path, mails: list[bytes]) -> None:
    from mailnest.events import Hub
    from mailnest.models import Envelope
    from mailnest.store.sqlite import SQLiteStore

    async def run() -> None:
        store = SQLiteStore(db, Hub(), max_messages=0)
        await store.start()
        envelope = Envelope(mail_from="bench@example.com", rcpt_tos=("alice@example.org",))
        for start in range(0, len(mails), 500):
            await asyncio.gather(*(store.add(m, envelope) for m in mails[start:start + 500]))
        await store.close()

    asyncio.run(run())


def fill_dovecot(dovecot: Dovecot, mails: list[bytes]) -> None:
    cur = dovecot.home / "Maildir" / "cur"
    for n, mail in enumerate(mails):
        (cur / f"{1700000000 + n}.M{n}P1.bench:2,").write_bytes(mail)
    if os.geteuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody")
        for path in cur.iterdir():
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    with dovecot.session() as client:  # Dovecot builds its index on the first SELECT
        raw(client, "SELECT INBOX")


def serve(db: str, port_file: str) -> None:
    """The mailnest server process: IMAP only, over an existing database."""
    from mailnest.config import Config, Listen
    from mailnest.runtime import ServerThread

    config = Config(db=Path(db), smtp=None, http=None, imap=Listen("127.0.0.1", 0), max_messages=0)
    thread = ServerThread(config).start()
    Path(port_file).write_text(str(thread.imap_port))
    try:
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        thread.stop()


def timed(client: Any, command: str) -> tuple[float, int]:
    start = time.perf_counter()
    untagged, done = raw(client, command)
    elapsed = time.perf_counter() - start
    assert b" OK " in done, done
    return elapsed, len(untagged)


def measure(connects: dict[str, Any], runs: int) -> dict[str, dict[str, float]]:
    """Best of `runs` for every operation, the servers taking turns so that a busy moment on the machine
    hits both alike; the first FETCH of each server is measured once, as it only happens once."""
    results: dict[str, dict[str, float]] = {name: {} for name in connects}
    clients = {name: connect() for name, connect in connects.items()}
    counts: dict[str, dict[str, int]] = {name: {} for name in connects}
    for name, client in clients.items():
        raw(client, "SELECT INBOX")
        elapsed, counts[name]["FETCH"] = timed(client, "FETCH 1:* (FLAGS ENVELOPE)")
        results[name]["FETCH 1:* (FLAGS ENVELOPE), first"] = elapsed
    operations = ["SELECT", "FETCH 1:* (FLAGS ENVELOPE)", *(f"SEARCH {key}" for key in SEARCHES)]
    for operation in operations:
        for _ in range(runs):
            for name, client in clients.items():
                if operation == "SELECT":
                    fresh = connects[name]()
                    elapsed, _n = timed(fresh, "SELECT INBOX")
                    raw(fresh, "LOGOUT")
                else:
                    elapsed, _n = timed(client, operation)
                label = operation + (", later" if operation.startswith("FETCH") else "")
                results[name][label] = min(results[name].get(label, float("inf")), elapsed)
    for name, client in clients.items():
        for key in SEARCHES:
            untagged, _ = raw(client, f"SEARCH {key}")
            counts[name][key] = len(untagged[0].split()) - 2
        raw(client, "LOGOUT")
    if counts["mailnest"] != counts["dovecot"]:
        print(f"warning: the servers found different counts: {counts}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serve", nargs=2, metavar=("DB", "PORTFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    if not dovecot_available():
        sys.exit("Dovecot (/usr/lib/dovecot/imap) is needed for the comparison")
    mails = messages(args.messages)
    print(f"{len(mails)} messages, {sum(map(len, mails)) / 1e6:.1f} MB", file=sys.stderr)
    scratch = Path(tempfile.mkdtemp(prefix="mailnest-imap-bench-"))
    dovecot = Dovecot()
    server = None
    try:
        started = time.perf_counter()
        fill_mailnest(scratch / "bench.db", mails)
        print(f"mailnest store filled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        started = time.perf_counter()
        fill_dovecot(dovecot, mails)
        print(f"Dovecot maildir filled and indexed in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        port_file = scratch / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(scratch / "bench.db"), str(port_file)],
                                  stdin=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the mailnest server process did not start")
            time.sleep(0.05)
        port = int(port_file.read_text())

        def mailnest_client() -> imaplib.IMAP4:
            client = imaplib.IMAP4("127.0.0.1", port, timeout=300)
            client.login("*", "bench")
            return client

        results = measure({"mailnest": mailnest_client, "dovecot": dovecot.client}, args.runs)
        ours, theirs = results["mailnest"], results["dovecot"]
        print(f"\n{'operation (best of ' + str(args.runs) + ')':<52} {'mailnest':>10} {'dovecot':>10} {'ratio':>7}")
        for key in ours:
            ratio = ours[key] / theirs[key] if theirs[key] else float("inf")
            print(f"{key:<52} {ours[key] * 1000:>8.1f}ms {theirs[key] * 1000:>8.1f}ms {ratio:>6.2f}x")
    finally:
        if server is not None:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(30)
        dovecot.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
