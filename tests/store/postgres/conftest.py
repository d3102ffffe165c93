"""Tests of what only the PostgreSQL backend has; the cluster comes from tests/pgcluster.py.

Tests are async on anyio's asyncio runner (stores' tasks belong to the loop that started them). `pg_url` is a
fresh database per test; `open_pg(url)` starts a PostgresStore on it and closes it after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from mailnest.events import Hub
from mailnest.store.postgres import PostgresStore
from tests.pgcluster import PostgresServer, postgres_server  # noqa: F401  (a fixture: importing it registers it)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:  # noqa: F811
    return postgres_server.create_database()


@pytest.fixture
async def open_pg() -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:
        async def opened(url: str, **options: Any) -> PostgresStore:
            store = PostgresStore(url, options.pop("hub", None) or Hub(), **options)
            await store.start()
            stack.push_async_callback(store.close)
            return store

        yield opened
