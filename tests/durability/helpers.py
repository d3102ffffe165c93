"""A real `mailnest serve --db FILE` in a subprocess, and SMTP clients that record what got 250."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from mailnest.events import Hub
from mailnest.store.sqlite import SQLiteStore

MAILNEST = str(Path(sys.executable).parent / "mailnest")
ID_HEADER = "X-Durability-Id"


class Server:
    """`mailnest serve` on a database file, SMTP and HTTP on ports it picks; IMAP and POP3 off."""

    def __init__(self, db: Path, workdir: Path) -> None:
        self.db = db
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.smtp_port = 0
        self.http_port = 0
        self.runs = 0

    def start(self, timeout: float = 15) -> Server:
        self.runs += 1
        ports_file = self.workdir / f"ports-{self.runs}.json"
        log = (self.workdir / f"server-{self.runs}.log").open("wb")
        self.process = subprocess.Popen(
            [MAILNEST, "serve", "--db", str(self.db), "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--imap", "off", "--pop3", "off", "--ports-file", str(ports_file)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ports_file.exists() and ports_file.read_text().endswith("\n"):
                ports = json.loads(ports_file.read_text())
                self.smtp_port, self.http_port = ports["smtp"], ports["http"]
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"mailnest did not start:\n{self.log()}")

    def log(self) -> str:
        return (self.workdir / f"server-{self.runs}.log").read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no shutdown, no checkpoint."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def message(key: str, size: int) -> bytes:
    """A message of about `size` bytes carrying its unique key in a header; the body varies with the key so that
    a mix-up between two messages shows."""
    head = (f"From: load@example.com\r\nTo: sink@example.com\r\nSubject: durability {key}\r\n"
            f"{ID_HEADER}: {key}\r\n\r\n").encode()
    line = (key * (72 // len(key) + 1))[:72].encode() + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def send(port: int, raw: bytes, timeout: float = 30) -> int:
    """The SMTP reply code to the end of DATA (a connection refused or dropped counts as no reply: 0)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as smtp:
            code, _ = smtp.ehlo()
            smtp.mail("load@example.com")
            smtp.rcpt("sink@example.com")
            code, _ = smtp.data(raw)
            return code
    except (OSError, smtplib.SMTPException):
        return 0


def stored_by_key(db: Path) -> dict[str, bytes]:
    """Every stored message's raw bytes by its key, read back through the store itself."""

    async def read() -> dict[str, bytes]:
        store = SQLiteStore(db, Hub())
        await store.start()
        try:
            raws = await store.imap_raw(await store.uids())
        finally:
            await store.close()
        found: dict[str, bytes] = {}
        for raw in raws.values():
            marker = f"\r\n{ID_HEADER}: ".encode()
            start = raw.index(marker) + len(marker)
            key = raw[start:raw.index(b"\r\n", start)].decode()
            assert key not in found, f"{key} stored twice"
            found[key] = raw
        return found

    return asyncio.run(read())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
