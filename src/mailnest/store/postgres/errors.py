"""What a PostgreSQL failure means to the Store protocol: a full disk is StoreFullError, anything that says the
server cannot be reached now (connection refused or lost, an admin shutdown, no pool connection in time) is
StoreUnavailableError. Both are temporary; the pool reconnects by itself when the server is back."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors

from ..base import StoreFullError, StoreUnavailableError

__all__ = ["StoreUnavailableError", "store_error"]


def store_error(exc: BaseException) -> BaseException:
    """The Store protocol's exception for `exc` (itself when it is none of those)."""
    if isinstance(exc, (StoreFullError, StoreUnavailableError)):
        return exc
    if isinstance(exc, pg_errors.DiskFull):
        return StoreFullError(f"the PostgreSQL server's disk is full: {exc}")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, OSError)):
        return StoreUnavailableError(f"the PostgreSQL database is unavailable: {exc}")
    return exc
