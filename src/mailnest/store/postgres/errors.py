"""What a PostgreSQL failure means to the Store protocol: a full disk is StoreFullError, anything that says the
server cannot be reached now (connection refused or lost, an admin shutdown, no pool connection in time) is
StoreUnavailableError. Both are temporary; the pool reconnects by itself when the server is back."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors

from ..base import MessageRejectedError, StoreFullError, StoreUnavailableError

__all__ = ["MessageRejectedError", "StoreUnavailableError", "rejected", "store_error"]


def store_error(exc: BaseException) -> BaseException:
    """The Store protocol's exception for `exc` (itself when it is none of those)."""
    if isinstance(exc, (StoreFullError, StoreUnavailableError)):
        return exc
    if isinstance(exc, pg_errors.DiskFull):
        return StoreFullError(f"the PostgreSQL server's disk is full: {exc}")
    if is_unreachable(exc):
        return StoreUnavailableError(f"the PostgreSQL database is unavailable: {exc}")
    return exc


# SQLSTATEs that say the server cannot serve now: admin or crash shutdown, cannot connect now, too many
# connections. Class 08 (connection exceptions) too. Other OperationalErrors (a deadlock, an index row too big,
# a cancelled statement) are about one statement: the batch is retried a message at a time, nothing is "down".
_UNREACHABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def is_unreachable(exc: BaseException) -> bool:
    """`exc` says the server cannot be reached or cannot serve now (as opposed to one statement failing)."""
    if isinstance(exc, (psycopg.InterfaceError, OSError)):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in _UNREACHABLE_STATES


# SQLSTATE classes that say a statement's values can never be stored as they are: 22 data exception (a value out
# of range, a string too long), 54 program limit exceeded (an index row too big: a 3,000-character recipient).
_PERMANENT_CLASSES = ("22", "54")


def rejected(exc: BaseException) -> BaseException:
    """For one message's own insert: MessageRejectedError when sending it again can never work, else `exc`."""
    state = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, psycopg.Error) and state[:2] in _PERMANENT_CLASSES:
        return MessageRejectedError(f"the database cannot store this message: {exc}")
    return exc
