"""A full disk: the client gets a temporary 452, listeners keep answering, nothing acknowledged is lost, and
ingest comes back by itself once space is freed (no restart). Runs on a 20 MB tmpfs mounted for the test."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store.base import StoreFullError
from mailnest.store.sqlite import SQLiteStore
from tests.conftest import IN_CI

from .helpers import Server, message, send, stored_by_key

SIZE = "20m"
WAL_BOUND = 10 * 1024 * 1024  # the store keeps its WAL file near 8 MB at most (sqlite.py: _WAL_REWIND_FILE_BYTES)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        reason = f"cannot mount a {SIZE} tmpfs (needs root): {result.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write a file until the disk has no room left."""
    chunk = b"\0" * 256 * 1024
    with path.open("wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):  # the last few KB
            while True:
                out.write(b"\0" * 4096)


def test_disk_full_then_freed(small_disk: Path, tmp_path: Path) -> None:
    db = small_disk / "x.db"
    server = Server(db, tmp_path).start()
    acknowledged: dict[str, bytes] = {}
    try:
        # 3 MB of mail: a commit writes several times its message to the WAL, which grew past this whole disk
        # before any checkpoint when only message bytes were counted.
        wal = db.with_name(db.name + "-wal")
        for i in range(60):
            raw = message(f"before-{i}", 50_000)
            assert send(server.smtp_port, raw) == 250, server.log()
            acknowledged[f"before-{i}"] = raw
        assert wal.stat().st_size <= WAL_BOUND, f"the WAL grew to {wal.stat().st_size} bytes"

        filler = small_disk / "filler"
        fill(filler)
        codes = []
        for i in range(60):
            raw = message(f"full-{i}", 100_000)
            code = send(server.smtp_port, raw)
            codes.append(code)
            if code == 250:
                acknowledged[f"full-{i}"] = raw
            elif code == 452:
                break
        assert codes[-1] == 452, f"no 452 on a full disk: {codes}\n{server.log()}"
        assert all(code in (250, 452) for code in codes), codes

        # The listeners still answer: SMTP and HTTP.
        assert send(server.smtp_port, message("still-full", 100_000)) in (250, 452)
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10) as http:
            assert http.get("/livez").status_code == 200
            assert http.get("/api/v1/messages").status_code == 200

        # Free space: ingest comes back by itself, on the same running server.
        filler.unlink()
        deadline = time.monotonic() + 10
        code = 0
        while time.monotonic() < deadline:
            raw = message("after", 100_000)
            code = send(server.smtp_port, raw)
            if code == 250:
                acknowledged["after"] = raw
                break
            time.sleep(0.2)
        assert code == 250, f"ingest did not come back after space was freed\n{server.log()}"
        for i in range(20):
            raw = message(f"after-{i}", 50_000)
            assert send(server.smtp_port, raw) == 250, server.log()
            acknowledged[f"after-{i}"] = raw
        wal_size = wal.stat().st_size if wal.exists() else 0
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.stop()
    stored = stored_by_key(db)
    missing = sorted(set(acknowledged) - set(stored))
    assert not missing, f"acknowledged with 250 but not stored: {missing}"
    assert all(stored[k] == raw for k, raw in acknowledged.items())
    assert wal_size <= WAL_BOUND, f"the WAL grew to {wal_size} bytes"


def test_enospc_is_what_fill_gives(small_disk: Path) -> None:
    """The helper really fills the disk (else the test above proves nothing)."""
    fill(small_disk / "filler")
    with pytest.raises(OSError) as raised:
        (small_disk / "more").write_bytes(b"x" * 65536)
    assert raised.value.errno == errno.ENOSPC
    os.unlink(small_disk / "filler")


def test_every_write_on_a_full_disk_raises_store_full_error_and_recovers(small_disk: Path) -> None:
    """The store itself: add() and the other writes (here IMAP APPEND) raise StoreFullError, never a bare
    sqlite3 error, and succeed again once there is room, on the same store."""

    async def main() -> None:
        store = SQLiteStore(small_disk / "x.db", Hub())
        await store.start()
        try:
            kept = [await store.add(message(f"k{i}", 20_000), Envelope("a@x.test", ("b@x.test",)))
                    for i in range(10)]
            fill(small_disk / "filler")
            with pytest.raises(StoreFullError, match="full"):
                for i in range(50):
                    await store.add(message(f"big{i}", 1_000_000), Envelope("a@x.test", ("b@x.test",)))
            with pytest.raises(StoreFullError):
                await store.imap_append(None, "INBOX", message("appended", 1_000_000), [], None)
            (small_disk / "filler").unlink()
            await store.add(message("after", 1_000_000), Envelope("a@x.test", ("b@x.test",)))
            await store.imap_append(None, "INBOX", message("appended", 1_000_000), [], None)
            for summary in kept:
                assert await store.raw(summary.id) == message(summary.subject.split()[-1], 20_000)
        finally:
            await store.close()

    asyncio.run(main())
