"""SMTP ingest load generator: mailnest against two baselines that store nothing, in the same run: a bare
aiosmtpd server (the library mailnest builds on, `bare_aiosmtpd.py`) and Node's smtp-server (`node_sink/`,
installed with npm on first use; left out when node is missing).

An asyncio client on raw sockets sends N messages over C connections (K messages per connection) to each server
and prints messages per second, p50/p99 latency (MAIL FROM to the 250 after DATA), the server's CPU time per
message (user + system, from /proc) and the ratio to each baseline. For mailnest it also prints how long after its
250 a message is visible through the API (p50/p99) and the server's resident memory. Figures, not a pass/fail
test.

    python benchmarks/smtp_ingest.py                      # the standard set (2 KB three ways, 100 KB, 5 MB)
    python benchmarks/smtp_ingest.py --size 2k --connections 10 --per-connection 10 --rounds 7 --seconds 3
    python benchmarks/smtp_ingest.py --memory 20000       # RSS after 20,000 messages
    python benchmarks/smtp_ingest.py --size 2k --body words   # varied prose instead of one repeated line
    python benchmarks/smtp_ingest.py --size 2k --sustain 10   # back-to-back rounds for 10 s per server

The default body repeats one line, which a trigram index stores cheaply; `--body words` sends prose from a
3,000-word vocabulary (Zipf-distributed, a different text per message), about four times the index work.
`--sustain` measures a flood that never lets mailnest's writer idle, so indexing cannot wait for a pause.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


BODY = "repeat"  # or "words": set from --body
_LETTERS = random.Random(0)
_VOCABULARY = ["".join(_LETTERS.choice("etaoinshrdlucmfwypvbgk") for _ in range(2 + i % 9)) for i in range(3000)]
_CUMULATIVE = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(_VOCABULARY))))


def _prose(length: int, seed: int) -> bytes:
    words = random.Random(seed).choices(_VOCABULARY, cum_weights=_CUMULATIVE, k=length // 4 + 16)
    lines, line, done = [], "", 0
    for word in words:
        line += word + " "
        if len(line) > 70:
            lines.append(line.rstrip() + "\r\n")
            done += len(lines[-1])
            line = ""
            if done >= length:
                break
    return "".join(lines).encode()[:length]


def make_message(size: int, index: int) -> bytes:
    head = (f"From: Bench <bench@example.com>\r\nTo: sink@example.com\r\nSubject: message {index}\r\n"
            f"Message-ID: <{index}.{time.time_ns()}@bench>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    if BODY == "words":
        body = _prose(size - len(head), index)
        return head + body[: body.rfind(b"\r\n") + 2]
    line = b"The quick brown fox jumps over the lazy dog, again and again and again. 0123456789\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return line


async def _connection(port: int, messages: list[bytes], latencies: list[float], ids: list[tuple[str, float]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await _reply(reader)
    writer.write(b"EHLO bench\r\n")
    await _reply(reader)
    for data in messages:
        start = time.perf_counter()
        writer.write(b"MAIL FROM:<bench@example.com>\r\n")
        await _reply(reader)
        writer.write(b"RCPT TO:<sink@example.com>\r\n")
        await _reply(reader)
        writer.write(b"DATA\r\n")
        await _reply(reader)
        writer.write(data)
        writer.write(b".\r\n")
        reply = await _reply(reader)
        done = time.perf_counter()
        if not reply.startswith(b"250"):
            raise RuntimeError(f"server refused a message: {reply!r}")
        latencies.append(done - start)
        words = reply.split()
        if b"as" in words:
            ids.append((words[-1].decode(), done))
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()


async def load(port: int, *, size: int, connections: int, per_connection: int) -> dict[str, float]:
    latencies: list[float] = []
    ids: list[tuple[str, float]] = []
    batches = [[make_message(size, c * per_connection + k) for k in range(per_connection)]
               for c in range(connections)]
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, b, latencies, ids) for b in batches))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "msgs_per_s": len(latencies) / elapsed,
        "mb_per_s": len(latencies) * size / elapsed / 1e6,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def _start(cmd: list[str], port_file: Path, key: str | None) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        if port_file.exists() and port_file.stat().st_size:
            text = port_file.read_text()
            try:
                ports = json.loads(text) if key else {"smtp": int(text)}
                return proc, ports
            except ValueError:
                pass
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def visibility(http_port: int, port: int, samples: int) -> tuple[float, float]:
    """Send one message at a time and time from its 250 until the API returns it."""
    import httpx

    delays = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
        for i in range(samples):
            ids: list[tuple[str, float]] = []
            await _connection(port, [make_message(2048, i)], [], ids)
            message_id, acked = ids[0]
            while True:
                response = await client.get(f"/api/v1/message/{message_id}")
                if response.status_code == 200:
                    break
            delays.append(time.perf_counter() - acked)
    delays.sort()
    return statistics.median(delays) * 1000, delays[int(len(delays) * 0.99)] * 1000


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, name: str, port: int, pid: int) -> None:
        self.name, self.port, self.pid = name, port, pid


def sustained(server: Server, size: int, seconds: float, connections: int,
              per_connection: int) -> tuple[float, float, list[dict[str, float]]]:
    """Back-to-back loads on one server for `seconds`: (messages per second, server CPU µs per message, each
    load's figures)."""
    runs: list[dict[str, float]] = []
    cpu = _cpu_seconds(server.pid)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        runs.append(asyncio.run(load(server.port, size=size, connections=connections,
                                     per_connection=per_connection)))
    elapsed = time.perf_counter() - started
    sent = len(runs) * connections * per_connection
    return sent / elapsed, (_cpu_seconds(server.pid) - cpu) / sent * 1e6, runs


def run_sustained(size: int, connections: int, per_connection: int, seconds: float,
                  servers: list[Server]) -> None:
    print(f"\n{_human(size)} messages, {connections} connections x {per_connection} messages, back to back for "
          f"{seconds:.0f} s per server:")
    rates = {server.name: sustained(server, size, seconds, connections, per_connection)[:2] for server in servers}
    for name, (rate, cpu) in rates.items():
        print(f"  {name:14s} {rate:8.1f} msgs/s  {cpu:7.0f} us CPU/msg  ratio to bare aiosmtpd "
              f"{rate / rates['bare-aiosmtpd'][0]:4.2f}x")


def run_case(size: int, connections: int, per_connection: int, rounds: int, seconds: float,
             servers: list[Server]) -> None:
    """Interleaved sustained rounds (each server gets `seconds` of back-to-back load per round, A B C A B C); the
    median of the rounds, and the median of the per-round ratios to each baseline."""
    results: dict[str, list[dict[str, float]]] = {server.name: [] for server in servers}
    for _ in range(rounds):  # interleave the servers so noise hits them alike
        for server in servers:
            rate, cpu, runs = sustained(server, size, seconds, connections, per_connection)
            results[server.name].append({"msgs_per_s": rate, "mb_per_s": rate * size / 1e6, "cpu_us": cpu,
                                         "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                                         "p99_ms": max(r["p99_ms"] for r in runs)})
    print(f"\n{_human(size)} messages, {connections} connections x {per_connection} messages, back to back for "
          f"{seconds:g} s per server and round, median of {rounds} interleaved rounds:")
    for name, rs in results.items():
        print(f"  {name:14s} {statistics.median(r['msgs_per_s'] for r in rs):8.1f} msgs/s  "
              f"{statistics.median(r['mb_per_s'] for r in rs):7.1f} MB/s  "
              f"p50 {statistics.median(r['p50_ms'] for r in rs):7.2f} ms  "
              f"p99 {statistics.median(r['p99_ms'] for r in rs):7.2f} ms  "
              f"CPU {statistics.median(r['cpu_us'] for r in rs):6.0f} us/msg")
    for baseline in [name for name in results if name != "mailnest"]:
        ratios = [m["msgs_per_s"] / b["msgs_per_s"] for m, b in zip(results["mailnest"], results[baseline],
                                                                  strict=True)]
        print(f"  ratio mailnest / {baseline} {statistics.median(ratios):4.2f}x "
              f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})")


# The standard set: (size, connections, messages per connection). "Persistent" connections each send for the
# whole of a round; the others open, send their few messages and quit, over and over.
STANDARD = [(2 * 1024, 10, 10), (2 * 1024, 50, 10), (2 * 1024, 10, 300), (100 * 1024, 10, 10),
            (5 * 1024 * 1024, 2, 5)]


def node_sink() -> list[str] | None:
    """The command of the Node baseline, installing smtp-server with npm on first use; None without node."""
    import shutil

    node, npm = shutil.which("node"), shutil.which("npm")
    folder = HERE / "node_sink"
    if node is None:
        return None
    if not (folder / "node_modules" / "smtp-server").is_dir():
        if npm is None:
            return None
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=folder, check=True)
    return [node, str(folder / "sink.js")]


def _human(size: int) -> str:
    return f"{size // (1024 * 1024)} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def parse_size(text: str) -> int:
    text = text.lower().rstrip("b")
    factor = {"k": 1024, "m": 1024 * 1024}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, help="message size (default: the standard set)")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--per-connection", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds per size; the median is reported, never the best")
    parser.add_argument("--seconds", type=float, default=2.0, help="back-to-back load per server and round")
    parser.add_argument("--memory", type=int, default=0, help="also send this many messages and report RSS")
    parser.add_argument("--body", choices=("repeat", "words"), default="repeat",
                        help="message body: one repeated line (default) or varied prose")
    parser.add_argument("--sustain", type=float, default=0, metavar="SECONDS",
                        help="one long flood per server instead of interleaved rounds: this many seconds each")
    parser.add_argument("--no-node", action="store_true", help="leave out the Node smtp-server baseline")
    args = parser.parse_args()
    global BODY
    BODY = args.body

    with tempfile.TemporaryDirectory() as tmp:
        nest_ports_file, bare_port_file = Path(tmp, "nest.json"), Path(tmp, "bare.port")
        nest, nest_ports = _start([sys.executable, "-m", "mailnest.cli", "serve", "--smtp", "127.0.0.1:0",
                                   "--http", "127.0.0.1:0", "--imap", "off", "--pop3", "off", "--ports-file", str(nest_ports_file),
                                   "--log-level", "WARNING", "--max-messages", "0"], nest_ports_file, "json")
        bare, bare_ports = _start([sys.executable, str(HERE / "bare_aiosmtpd.py"), str(bare_port_file)],
                                  bare_port_file, None)
        procs = [nest, bare]
        servers = [Server("bare-aiosmtpd", bare_ports["smtp"], bare.pid)]
        node = node_sink() if not args.no_node else None
        if node is not None:
            node_port_file = Path(tmp, "node.port")
            node_proc, node_ports = _start([*node, str(node_port_file)], node_port_file, None)
            procs.append(node_proc)
            servers.append(Server("node-smtp", node_ports["smtp"], node_proc.pid))
        servers.append(Server("mailnest", nest_ports["smtp"], nest.pid))
        try:
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, baselines: "
                  f"{', '.join(s.name for s in servers if s.name != 'mailnest')}")
            if args.sustain:
                for size in ([args.size] if args.size else [2 * 1024, 100 * 1024]):
                    run_sustained(size, args.connections, args.per_connection, args.sustain, servers)
            elif args.size:
                run_case(args.size, args.connections, args.per_connection, args.rounds, args.seconds, servers)
            else:
                for size, connections, per_connection in STANDARD:
                    run_case(size, connections, per_connection, args.rounds, args.seconds, servers)
            p50, p99 = asyncio.run(visibility(nest_ports["http"], nest_ports["smtp"], 200))
            print(f"\nvisible through the API after its 250: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            if args.memory:
                before = _rss_mb(nest.pid)
                sent = 0
                while sent < args.memory:
                    n = min(1000, args.memory - sent)
                    asyncio.run(load(nest_ports["smtp"], size=2048, connections=10, per_connection=n // 10))
                    sent += n
                print(f"mailnest RSS: {before:.1f} MB before, {_rss_mb(nest.pid):.1f} MB after {sent} more "
                      f"2 KB messages")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
