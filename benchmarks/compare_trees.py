"""SMTP ingest of this tree against another checkout of mailnest, in the same run: is a change slower?

Starts `mailnest serve` twice on temporary SQLite files: once from this checkout and once from `--old` (the `src`
directory of another checkout, e.g. `git worktree add /tmp/base main`), then sends interleaved sustained rounds
to each (A B A B) and prints messages per second for both and the ratio new/old: the median of the rounds.
Figures, not a pass/fail test.

    git worktree add /tmp/base main
    python benchmarks/compare_trees.py --old /tmp/base/src
    python benchmarks/compare_trees.py --old /tmp/base/src --sizes 2k --rounds 7 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_ingest import _human, parse_size, sustained


def serve(src: Path | None, workdir: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    """`mailnest serve` from `src` (None: this checkout, as installed), and its SMTP port."""
    ports_file = workdir / f"{name}-ports.json"
    env = {**os.environ, "PYTHONPATH": str(src)} if src is not None else None
    cmd = [sys.executable, "-m", "mailnest.cli", "serve", "--db", str(workdir / f"{name}.db"), "--smtp",
           "127.0.0.1:0", "--http", "127.0.0.1:0", "--imap", "off", "--pop3", "off", "--max-messages", "0",
           "--log-level", "WARNING", "--ports-file", str(ports_file)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (ports_file.exists() and ports_file.read_text().endswith("\n")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"mailnest from {src or 'this checkout'} did not start")
        time.sleep(0.05)
    return proc, int(json.loads(ports_file.read_text())["smtp"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True, help="the src directory of the checkout to compare with")
    parser.add_argument("--sizes", default="2k,100k,5m")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each sustained round")
    args = parser.parse_args()
    if not (args.old / "mailnest" / "__init__.py").exists():
        sys.exit(f"--old {args.old}: no mailnest package there (give the checkout's src directory)")
    with tempfile.TemporaryDirectory(prefix="mailnest-compare-") as tmp:
        workdir = Path(tmp)
        old, old_port = serve(args.old.resolve(), workdir, "old")
        new, new_port = serve(None, workdir, "new")
        try:
            for size in (parse_size(s) for s in args.sizes.split(",")):
                connections, per_connection = (2, 2) if size >= 1024 * 1024 else (10, 10)
                rates: dict[str, list[float]] = {"old": [], "new": []}
                for _ in range(args.rounds):  # A B A B: the machine's noise falls on both alike
                    rates["old"].append(sustained(old_port, size, args.seconds, connections, per_connection)[0])
                    rates["new"].append(sustained(new_port, size, args.seconds, connections, per_connection)[0])
                ratios = [n / o for n, o in zip(rates["new"], rates["old"], strict=True)]
                print(f"{_human(size)}: old {statistics.median(rates['old']):8.1f} msgs/s, new "
                      f"{statistics.median(rates['new']):8.1f} msgs/s, new/old {statistics.median(ratios):.2f}x "
                      f"(median of {args.rounds} rounds of {args.seconds:.0f} s; per round: "
                      f"{', '.join(f'{r:.2f}' for r in ratios)})")
        finally:
            for proc in (old, new):
                proc.terminate()
                proc.wait(15)


if __name__ == "__main__":
    main()
