"""mailnest nodes as real `mailnest serve` processes sharing one PostgreSQL database, for the team-instance tests."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

MAILNEST = [sys.executable, "-m", "mailnest.cli"]


def wait_until(check: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[str]
    ports: dict[str, int]
    log: Path
    acknowledged: list[str] = field(default_factory=list)  # ids of the 250s this node gave

    @classmethod
    def start(cls, name: str, db: str, workdir: Path, *args: str, env: dict[str, str] | None = None) -> Node:
        workdir.mkdir(parents=True, exist_ok=True)
        ports_file = workdir / "ports.json"
        log = workdir / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [*MAILNEST, "serve", "--db", db, "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0",
                 "--imap", "127.0.0.1:0", "--pop3", "off", "--ports-file", str(ports_file), *args],
                stdout=out, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 30
        while not (ports_file.exists() and ports_file.read_text().endswith("\n")):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"node {name} did not start:\n{log.read_text()}")
            time.sleep(0.05)
        return cls(name, proc, json.loads(ports_file.read_text()), log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def api(self, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def send(self, subject: str, to: str = "team@example.com", body: str = "hello") -> str:
        """Send one message; returns the id from the 250 (raises on anything else)."""
        return self.send_raw(f"From: app@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n", to)

    def send_raw(self, raw: str, to: str) -> str:
        """Send `raw` over SMTP to `to`; returns the id from the 250 (raises on anything else)."""
        with smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=30) as client:
            client.ehlo()
            client.mail("app@example.com")
            client.rcpt(to)
            code, reply = client.data(raw.encode())
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        message_id = reply.decode().rsplit(" ", 1)[-1]
        self.acknowledged.append(message_id)
        return message_id

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")
