"""Only a database that cannot be reached is 'unavailable' (451/503, and calls fail fast until it is back): one
statement failing (a deadlock, an index row too big, a cancelled query) is that statement's error, so the batch
is retried a message at a time and the other messages are stored."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors

from mailnest.store.base import StoreUnavailableError
from mailnest.store.postgres.errors import is_unreachable, store_error


def test_only_connection_failures_mean_unavailable() -> None:
    for down in (psycopg.OperationalError("connection refused"), pg_errors.AdminShutdown(),
                 pg_errors.CannotConnectNow(), pg_errors.TooManyConnections(), pg_errors.ConnectionFailure(),
                 psycopg.InterfaceError("the connection is closed"), OSError("network is unreachable")):
        assert is_unreachable(down), down
        assert isinstance(store_error(down), StoreUnavailableError)
    for one_statement in (pg_errors.ProgramLimitExceeded(), pg_errors.DeadlockDetected(),
                          pg_errors.QueryCanceled(), pg_errors.SerializationFailure()):
        assert not is_unreachable(one_statement), one_statement
        assert store_error(one_statement) is one_statement
