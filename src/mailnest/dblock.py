"""One server per SQLite file: `mailnest serve --db mail.db` holds an exclusive lock on the file while it runs, so a
second server on the same file is refused at start instead of running beside the first with a live view that
silently diverges (its events, its waits and its IMAP sessions never hear of the other's mail).

The lock is `flock` on the database file itself: it is the kernel's, released when the process ends however it
ends (a `kill -9` leaves nothing stale behind), it needs no extra file, and it does not touch SQLite's own locks
(POSIX record locks, which are independent of `flock` on Linux and the BSDs). Tools that read or add to a file
beside a running server (`mailnest dump --db`, `mailnest ingest --db`) do not take it. PostgreSQL is meant for
sharing and takes none; where `flock` does not exist (Windows) there is no lock."""

from __future__ import annotations

import os
from pathlib import Path

from .config import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


class DatabaseLock:
    """An exclusive hold on one SQLite file for as long as this server runs."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def take(cls, db: Path) -> DatabaseLock:
        """Lock `db` (created empty if missing, which SQLite takes for a new database), or raise ConfigError."""
        if fcntl is None:  # pragma: no cover
            return cls(None)
        try:
            fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return cls(None)  # a file that cannot be opened: the store says why, in its own words
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"--db {db} is in use by another mailnest server; stop that one, or give this one "
                              "another --db file (several servers share mail through a postgresql:// --db)") from None
        except OSError:
            os.close(fd)  # a file system without flock (some network mounts): run without the lock
            return cls(None)
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
