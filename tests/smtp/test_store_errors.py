"""A store that cannot take a message gets the client to retry later: 452 on a full disk, 451 for any other
failure. Nothing acknowledged is lost and the listener goes on serving."""

from __future__ import annotations

import os
import resource
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailnest import Config, ServerThread

BIG = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 150  # 150 KB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(port: int, limit: int = 60) -> tuple[list[int], tuple[int, bytes] | None]:
    """Send BIG until refused: (the numbers acknowledged with 250, the refusal)."""
    acknowledged = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for n in range(limit):
            try:
                client.sendmail("a@example.com", ["b@example.com"], BIG.replace(b"big", b"big %d" % n, 1))
            except smtplib.SMTPDataError as exc:
                assert client.noop()[0] == 250  # the session goes on
                return acknowledged, (exc.smtp_code, exc.smtp_error)
            acknowledged.append(n)
    return acknowledged, None


def test_a_full_disk_answers_452_and_keeps_what_was_acknowledged(small_disk: Path) -> None:
    with ServerThread(Config(db=small_disk / "mail.db")) as server:
        acknowledged, refusal = fill(server.smtp_port)
        assert refusal is not None, "the disk never filled up"
        assert refusal == (452, b"4.3.1 Insufficient system storage, try again later")
        assert acknowledged  # some fitted, and every one of them is kept
        assert server.call(server.store.count()) == len(acknowledged)


def test_any_other_store_failure_answers_451(tmp_path: Path) -> None:
    """A file-size limit (EFBIG, not a full disk) makes SQLite's write fail with an I/O error."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "mail.db")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)))
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        _, refusal = fill(port)
        child.stdin.write("\n")
        child.stdin.flush()
        _, err = child.communicate(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert refusal == (451, b"4.3.0 Could not store the message; try again later"), (refusal, err[-2000:])


CHILD = """
import sys
from pathlib import Path
from mailnest import Config, ServerThread
with ServerThread(Config(db=Path(sys.argv[1]), http=None)) as server:
    print(server.smtp_port, flush=True)
    sys.stdin.readline()
"""
