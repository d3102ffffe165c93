"""Versioned migrations: schema_version per tenant schema, one transaction each, no race between nodes starting
together on a new database, a newer database refused; tenants are schemas that never see each other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store.postgres import PostgresStore, schema

pytestmark = pytest.mark.anyio
RAW = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
ENVELOPE = Envelope("a@example.com", ("b@example.org",))


def _versions(url: str, name: str = "mailnest") -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(f"SELECT version FROM {name}.schema_version ORDER BY version")]


async def test_a_new_database_gets_every_version_once(pg_url: str, open_pg: Callable[..., Any]) -> None:
    store = await open_pg(pg_url)
    assert _versions(pg_url) == list(range(1, len(schema.MIGRATIONS) + 1))
    uidvalidity = store.uidvalidity
    assert uidvalidity > 0
    await store.close()
    again = await open_pg(pg_url)  # a restart migrates nothing and keeps UIDVALIDITY
    assert _versions(pg_url) == list(range(1, len(schema.MIGRATIONS) + 1))
    assert again.uidvalidity == uidvalidity


async def test_nodes_starting_together_do_not_race(pg_url: str, open_pg: Callable[..., Any]) -> None:
    stores = await asyncio.gather(*(open_pg(pg_url) for _ in range(4)))
    assert _versions(pg_url) == list(range(1, len(schema.MIGRATIONS) + 1))
    assert len({s.uidvalidity for s in stores}) == 1
    summaries = await asyncio.gather(*(s.add(RAW, ENVELOPE) for s in stores))
    assert len({s.uid for s in summaries}) == 4 and await stores[0].count() == 4


async def test_a_failed_migration_leaves_the_version_before(pg_url: str) -> None:
    broken = (*schema.MIGRATIONS, ("CREATE TABLE later (x int)", "SELECT no_such_function()"))
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            await schema.migrate(conn, "mailnest", broken)
    assert _versions(pg_url) == list(range(1, len(schema.MIGRATIONS) + 1))
    with psycopg.connect(pg_url, autocommit=True) as conn:  # its first statement was rolled back with it
        assert conn.execute("SELECT to_regclass('mailnest.later')").fetchone() == (None,)


async def test_a_database_of_a_newer_mailnest_is_refused(pg_url: str, open_pg: Callable[..., Any]) -> None:
    await open_pg(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO mailnest.schema_version (version) VALUES (%s)", (len(schema.MIGRATIONS) + 1,))
    with pytest.raises(RuntimeError, match="newer mailnest"):
        await PostgresStore(pg_url, Hub()).start()


async def test_tenants_are_schemas_of_their_own(pg_url: str, open_pg: Callable[..., Any]) -> None:
    team_a = await open_pg(pg_url, tenant="team_a")
    team_b = await open_pg(pg_url, tenant="team_b")
    await team_a.add(RAW, ENVELOPE)
    assert (await team_a.count(), await team_b.count()) == (1, 0)
    assert _versions(pg_url, "team_b") == list(range(1, len(schema.MIGRATIONS) + 1))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
    assert {"team_a", "team_b"} <= names and "mailnest" not in names


@pytest.mark.parametrize("tenant", ["", "Team", "a-b", "1abc", "x" * 64, "a b", 'a"; DROP SCHEMA x; --'])
def test_a_tenant_that_is_not_a_plain_schema_name_is_refused(tenant: str) -> None:
    with pytest.raises(ValueError, match="lower-case letters, digits and _"):
        PostgresStore("postgresql://127.0.0.1/x", Hub(), tenant=tenant)
