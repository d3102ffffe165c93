"""mbox: every message appended to one file, each after a ``From sender date`` line.

Format: the "mboxo" flavour that Python's `mailbox.mbox` and mutt write and read. A body line starting
with ``From `` is written ``>From `` so it cannot be mistaken for the start of the next message; each
message ends with a newline and is followed by one empty line. Line ends are LF.

Locking: the same two locks mutt and `mailbox.mbox` take, in the same order: a POSIX ``fcntl`` lock on the
file, then a ``FILE.lock`` dot-lock (skipped when the directory is not writable, as mutt does). A failed
write (disk full) is cut back off the file, so a half-written message never corrupts the mailbox.
"""

from __future__ import annotations

import errno
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .delivery import Delivery, unix_lines

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: dot-locking alone
    fcntl = None  # type: ignore[assignment]

LOCK_TIMEOUT = 10.0  # seconds to wait for another program's lock before giving up on this message
STALE_DOTLOCK = 300.0  # a dot-lock older than this was left by a crashed program
_FROM_LINE = re.compile(rb"^From ", re.MULTILINE)
_UNSAFE_SENDER = re.compile(r"[\x00-\x20\x7f]")


class LockTimeout(OSError):
    """Another program held the mbox lock for longer than LOCK_TIMEOUT."""


def from_line(mail_from: str, received: datetime | None) -> bytes:
    """``From sender asctime``: the envelope sender (``MAILER-DAEMON`` for the null sender) with no
    spaces or control characters, and the UTC time of arrival in asctime form."""
    sender = _UNSAFE_SENDER.sub("_", mail_from) or "MAILER-DAEMON"
    when = (received or datetime.now(UTC)).astimezone(UTC)
    return f"From {sender} {time.asctime(when.timetuple())}\n".encode("utf-8", "surrogateescape")


def entry(delivery: Delivery) -> bytes:
    """One message as it goes into the mbox, separator line and trailing blank line included."""
    body = _FROM_LINE.sub(b">From ", unix_lines(delivery.raw))
    if not body.endswith(b"\n"):
        body += b"\n"
    return from_line(delivery.envelope.mail_from, delivery.envelope.received) + body + b"\n"


class MboxOutput:
    name = "mbox"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, delivery: Delivery) -> None:
        data = entry(delivery)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with _fcntl_lock(fd), _dot_lock(self.path):
                size = os.lseek(fd, 0, os.SEEK_END)
                data = _separator(fd, size) + data
                try:
                    _write_all(fd, data)
                except BaseException:
                    os.ftruncate(fd, size)
                    raise
        finally:
            os.close(fd)


def _separator(fd: int, size: int) -> bytes:
    """What must come before a new message so the previous one ends with a blank line."""
    if size == 0:
        return b""
    os.lseek(fd, max(0, size - 2), os.SEEK_SET)
    tail = os.read(fd, 2)
    os.lseek(fd, 0, os.SEEK_END)
    if tail.endswith(b"\n\n") or tail == b"\n":
        return b""
    return b"\n" if tail.endswith(b"\n") else b"\n\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextmanager
def _fcntl_lock(fd: int) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except (BlockingIOError, PermissionError):
            if time.monotonic() > deadline:
                raise LockTimeout("mbox is locked by another program") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)


@contextmanager
def _dot_lock(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    pre = path.with_name(f".{path.name}.{uuid.uuid4().hex}.prelock")
    try:
        os.close(os.open(pre, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except PermissionError:
        yield  # directory not writable: the fcntl lock is all we can take, as mutt does
        return
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                _link_or_create(pre, lock)
                break
            except FileExistsError:
                _remove_if_stale(lock)
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{lock} is held by another program") from None
                time.sleep(0.05)
    finally:
        pre.unlink(missing_ok=True)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _link_or_create(pre: Path, lock: Path) -> None:
    try:
        os.link(pre, lock)  # atomic even over NFS, unlike O_EXCL
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))  # no hard links here


def _remove_if_stale(lock: Path) -> None:
    try:
        if time.time() - lock.stat().st_mtime > STALE_DOTLOCK:
            lock.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
