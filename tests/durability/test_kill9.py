"""kill -9 at random moments under load, restart on the same file: every message that got 250 is there,
byte for byte, and the file opens every time."""

from __future__ import annotations

import random
import smtplib
import threading
import time
from pathlib import Path

from .helpers import ID_HEADER, Server, message, stored_by_key

CLIENTS = 16
PER_CONNECTION = 20  # messages per SMTP connection before it reconnects
ROUNDS = 6  # kills
BIG_EVERY = 40  # one message in this many is 1 MB, the rest 2 KB


class Load:
    """CLIENTS threads sending over their own connections until stopped; records every message that got 250."""

    def __init__(self, port: int, round_: int) -> None:
        self.port = port
        self.round = round_
        self.acknowledged: dict[str, bytes] = {}
        self.refused: list[int] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive()

    def _client(self, n: int) -> None:
        sent = 0
        while not self.stopping.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as smtp:
                    smtp.ehlo()
                    for _ in range(PER_CONNECTION):
                        if self.stopping.is_set():
                            return
                        key = f"r{self.round}-c{n}-m{sent}"
                        # Each client's 1 MB messages fall at its own place in the cycle, so a short round on a
                        # slow machine still sends some (with one place for all, a round that ended before the
                        # 40th message sent none).
                        big = (sent + n * 7) % BIG_EVERY == BIG_EVERY - 1
                        raw = message(key, 1_000_000 if big else 2_000)
                        sent += 1
                        codes = [smtp.mail("load@example.com")[0], smtp.rcpt("sink@example.com")[0]]
                        if codes != [250, 250]:
                            with self.lock:
                                self.refused += codes
                            smtp.rset()
                            continue
                        code, _ = smtp.data(raw)
                        with self.lock:
                            if code == 250:
                                self.acknowledged[key] = raw
                            else:
                                self.refused.append(code)
            except (OSError, smtplib.SMTPException):
                # The server was killed (or is not up yet): whatever got no 250 was never promised.
                time.sleep(0.01)


def test_nothing_acknowledged_is_lost_across_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    server = Server(db, tmp_path)
    rng = random.Random()
    acknowledged: dict[str, bytes] = {}
    started = time.monotonic()
    try:
        for round_ in range(ROUNDS):
            server.start()
            with Load(server.smtp_port, round_) as load:
                time.sleep(rng.uniform(0.4, 1.6))  # a random moment mid-load, 1 MB messages included
                server.kill()
            assert not load.refused, f"refusals under load: {load.refused[:10]}"
            acknowledged.update(load.acknowledged)
        server.start()  # the file opens after the last kill too, and serves
        with Load(server.smtp_port, ROUNDS) as load:
            time.sleep(0.3)
        acknowledged.update(load.acknowledged)
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    stored = stored_by_key(db)
    missing = sorted(set(acknowledged) - set(stored))
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged messages lost: {missing[:10]}"
    changed = [key for key, raw in acknowledged.items() if stored[key] != raw]
    assert not changed, f"stored bytes differ from what was sent: {changed[:10]}"
    big = sum(len(raw) > 500_000 for raw in acknowledged.values())
    assert len(acknowledged) >= 1000 and big >= 5, (len(acknowledged), big)
    assert all(f"{ID_HEADER}: ".encode() in raw for raw in stored.values())
    assert elapsed < 40, f"the durability run took {elapsed:.1f} s"
