"""What a failed SQLite write means to its caller: a full disk is StoreFullError (temporary; the writer carries
on), anything else is itself; and how to leave the connection clean after one."""

from __future__ import annotations

import errno
import logging
import sqlite3

from .base import StoreFullError

log = logging.getLogger(__name__)


def store_error(exc: BaseException) -> BaseException:
    """The exception a write's caller sees: StoreFullError for a full disk (SQLite's SQLITE_FULL, or ENOSPC from
    the OS), else the exception itself."""
    if isinstance(exc, StoreFullError):
        return exc
    full = (isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL) or (
        isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "database or disk is full" in str(exc)
    if full:
        error = StoreFullError(f"the disk holding the database is full ({exc}); free some space and try again")
        error.__cause__ = exc
        return error
    return exc


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction: SQLite has already rolled back some (a full disk)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback after a failed write: %s", exc)
