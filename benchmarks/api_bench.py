"""HTTP API figures with many stored messages: list, searches, one message, MailHog's list, live-event latency,
and SMTP ingest with and without websocket clients connected. Figures, not a pass/fail test.

A mailnest server runs in its own process (as `mailnest serve`); it is filled over SMTP with varied messages,
then each request is timed from this process over a keep-alive connection on loopback (so the figure is the
server's time plus well under a millisecond of client and network).

    python benchmarks/api_bench.py                     # 100,000 messages
    python benchmarks/api_bench.py --messages 20000 --repeat 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from smtp_ingest import _connection, _start, load  # noqa: E402

WORDS = ("invoice", "receipt", "welcome", "password", "reset", "newsletter", "order", "shipped", "delayed", "refund",
         "meeting", "agenda", "report", "quarterly", "summary", "verify", "account", "security", "alert", "trial",
         "expiring", "upgrade")
DOMAINS = ("shop.example", "bank.example", "app.example", "news.example", "travel.example")


def varied_message(index: int) -> bytes:
    """~2 KB, with subjects, senders and bodies drawn from a small vocabulary so searches hit some, not all."""
    word = WORDS[index % len(WORDS)]
    other = WORDS[(index * 7) % len(WORDS)]
    sender = f"{WORDS[(index * 3) % len(WORDS)]}@{DOMAINS[index % len(DOMAINS)]}"
    rare = f" zebra{index}" if index % 1000 == 0 else ""
    head = (f"From: Sender {index % 97} <{sender}>\r\nTo: user{index % 500}@example.com\r\n"
            f"Subject: Your {word} {other} #{index}{rare}\r\nMessage-ID: <{index}.{time.time_ns()}@bench>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    line = f"Hello, this is about your {word} and the {other}. Regards, the team of {sender}.\r\n".encode()
    return head + line * max(1, (2048 - len(head)) // len(line))


async def fill(smtp_port: int, count: int, connections: int = 20) -> float:
    per = [list(range(c, count, connections)) for c in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(_connection(smtp_port, [varied_message(i) for i in indexes], [], [])
                           for indexes in per))
    return count / (time.perf_counter() - started)


async def timed(client: httpx.AsyncClient, path: str, repeat: int, **params: str) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(path, params=params)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    samples.sort()
    return statistics.median(samples) * 1000, samples[min(len(samples) - 1, int(len(samples) * 0.95))] * 1000


async def requests(http_port: int, repeat: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=60) as client:
        first = (await client.get("/api/v1/messages", params={"limit": "1"})).json()["messages"][0]["ID"]
        cases = [
            ("list, first page (50)", "/api/v1/messages", {"limit": "50"}),
            ("list, page 100 (start 5000)", "/api/v1/messages", {"start": "5000", "limit": "50"}),
            ("free text, common word", "/api/v1/search", {"query": "invoice"}),
            ("free text, two words", "/api/v1/search", {"query": "refund meeting"}),
            ("free text, rare word", "/api/v1/search", {"query": "zebra5000"}),
            ("field: from:", "/api/v1/search", {"query": "from:refund@bank.example"}),
            ("field: subject: + is:unread", "/api/v1/search", {"query": "subject:shipped is:unread"}),
            ("field: to: (mailbox)", "/api/v1/search", {"query": "to:user42@example.com"}),
            ("one message", f"/api/v1/message/{first}", {}),
            ("message headers", f"/api/v1/message/{first}/headers", {}),
            ("MailHog v2 first page (50)", "/api/v2/messages", {"limit": "50"}),
            ("info", "/api/v1/info", {}),
        ]
        print(f"\n{'request':34s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for name, path, params in cases:
            await client.get(path, params=params)  # warm caches once
            p50, p95 = await timed(client, path, repeat, **params)
            print(f"{name:34s} {p50:8.2f} {p95:8.2f}")


async def event_latency(http_port: int, smtp_port: int, samples: int) -> tuple[float, float]:
    """From the 250 after DATA to the `new` event on a websocket."""
    delays = []
    async with websockets.connect(f"ws://127.0.0.1:{http_port}/api/events") as ws:
        await ws.recv()
        for i in range(samples):
            ids: list[tuple[str, float]] = []
            await _connection(smtp_port, [varied_message(10_000_000 + i)], [], ids)
            message_id, acked = ids[0]
            while not any(e["Type"] == "new" and e["Data"]["ID"] == message_id
                          for e in map(json.loads, str(await ws.recv()).split("\n"))):
                pass
            delays.append(time.perf_counter() - acked)
    delays.sort()
    # The event is published with the commit, before the 250 is written: a negative delay means it won.
    return statistics.median(delays) * 1000, delays[int(len(delays) * 0.99)] * 1000


def _listeners(http_port: int, clients: int, ready: Any, stop: Any) -> None:
    """In a child process, so that reading events does not slow the load generator itself."""
    async def listen() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{http_port}/api/events", max_queue=None) as ws:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.2)

    async def run() -> None:
        tasks = [asyncio.create_task(listen()) for _ in range(clients)]
        await asyncio.sleep(0.3)
        ready.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_with_clients(server_pid: int, http_port: int, smtp_port: int, clients: int,
                        rounds: int) -> tuple[float, float]:
    """Best SMTP ingest rate, and the server's CPU milliseconds per message, with `clients` websockets open."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    child = context.Process(target=_listeners, args=(http_port, clients, ready, stop)) if clients else None
    if child is not None:
        child.start()
        ready.wait(30)
    best, cpu_per_message = 0.0, []
    for _ in range(rounds):
        cpu = _cpu_seconds(server_pid)
        result = asyncio.run(load(smtp_port, size=2048, connections=10, per_connection=100))
        cpu_per_message.append((_cpu_seconds(server_pid) - cpu) / 1000 * 1000)
        best = max(best, result["msgs_per_s"])
    if child is not None:
        stop.set()
        child.join(30)
    return best, min(cpu_per_message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30, help="requests per figure")
    parser.add_argument("--rounds", type=int, default=4, help="ingest rounds per websocket setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ports_file = Path(tmp, "ports.json")
        proc, ports = _start([sys.executable, "-m", "mailnest.cli", "serve", "--smtp", "127.0.0.1:0",
                              "--http", "127.0.0.1:0", "--ports-file", str(ports_file), "--log-level", "WARNING",
                              "--max-messages", "0", "--db", str(Path(tmp, "bench.db"))], ports_file, "json")
        try:
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.messages} messages")
            rate = asyncio.run(fill(ports["smtp"], args.messages))
            print(f"filled at {rate:.0f} msgs/s over SMTP")
            asyncio.run(requests(ports["http"], args.repeat))
            p50, p99 = asyncio.run(event_latency(ports["http"], ports["smtp"], 200))
            print(f"\nwebsocket `new` event after the SMTP 250: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            print("\nSMTP ingest (2 KB, 10 connections x 100 messages), best of rounds, interleaved; the clients "
                  "read in another process:")
            figures: dict[int, list[tuple[float, float]]] = {0: [], 5: []}
            for _ in range(2):
                for clients in (0, 5):
                    figures[clients].append(ingest_with_clients(proc.pid, ports["http"], ports["smtp"], clients,
                                                                args.rounds))
            (without, cpu0), (with_clients, cpu5) = max(figures[0]), max(figures[5])
            cpu0, cpu5 = min(c for _, c in figures[0]), min(c for _, c in figures[5])
            print(f"  no websocket clients: {without:8.1f} msgs/s, server CPU {cpu0:.3f} ms per message")
            print(f"  5 websocket clients:  {with_clients:8.1f} msgs/s, server CPU {cpu5:.3f} ms per message "
                  f"({(with_clients / without - 1) * 100:+.1f}% rate, {(cpu5 / cpu0 - 1) * 100:+.1f}% CPU)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
