"""Every query of tests/test_search.py gives PostgreSQL the same set of messages as SQLiteStore, over the same
four messages stored through `add()` from real bytes (tests/store/conformance/corpus.py builds them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, tzinfo
from pathlib import Path

import pytest

from mailnest.events import Hub
from mailnest.search import QueryError
from mailnest.store.base import Store
from mailnest.store.postgres import PostgresStore
from mailnest.store.sqlite import SQLiteStore
from tests import test_search as cases
from tests.pgcluster import PostgresServer
from tests.store.conformance.corpus import build

pytestmark = pytest.mark.anyio

# Every module-level table of (query, expected set); LITERAL_SYNTAX (queries only), ZONES and MALFORMED apart.
TABLES = tuple(name for name, value in vars(cases).items() if name.isupper() and isinstance(value, list)
               and value and all(isinstance(row, tuple) and len(row) == 2 and isinstance(row[1], set)
                                 for row in value))
QUERIES = [(query, UTC) for table in TABLES for query, _ in getattr(cases, table)]
QUERIES += [(query, UTC) for query in cases.LITERAL_SYNTAX]
QUERIES += [(query, UTC) for query, _ in cases.MALFORMED]
QUERIES += [(query, tz) for query, tz, _ in cases.ZONES]
# Escapes and operators of both engines' syntax, and terms around the trigram length.
QUERIES += [(q, UTC) for q in ("%", "_", "\\", "%%", "a_c", "o%", "\\%", "'", "''", "\"'\"", "x", "ex", "exa",
                               "-ex", "-exa", "tag:Ä", "tag:ä", "mailbox:@example.org", "NEAR(a b)", "*")]


async def _fill(store: Store) -> dict[str, str]:
    keys: dict[str, str] = {}
    for key, fields in cases.MESSAGES.items():
        built = build(key, fields)
        summary = await store.add(built.raw, built.envelope, read=built.read)
        if built.tags:
            await store.set_tags([summary.id], built.tags)
        keys[summary.id] = key
    return keys


async def _answer(store: Store, keys: dict[str, str], query: str, tz: tzinfo) -> object:
    try:
        page = await store.list(query=query, tz=tz, limit=100)
        count = await store.count(query=query, tz=tz)
    except QueryError as exc:
        return ("QueryError", str(exc))
    return (sorted(keys[s.id] for s in page.messages), count, page.messages_count, page.messages_unread,
            page.total, page.unread)


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parity") / "mail.db"


@pytest.fixture(scope="module")
def pg_parity_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture(scope="module")
async def both(sqlite_path: Path, pg_parity_url: str) -> AsyncIterator[tuple[tuple[Store, dict[str, str]], ...]]:
    lite, pg = SQLiteStore(sqlite_path, Hub()), PostgresStore(pg_parity_url, Hub())
    await lite.start()
    await pg.start()
    try:
        yield (lite, await _fill(lite)), (pg, await _fill(pg))
    finally:
        await pg.close()
        await lite.close()


@pytest.mark.parametrize(("query", "tz"), QUERIES, ids=[f"{n}-{q!r}" for n, (q, _) in enumerate(QUERIES)])
async def test_postgres_answers_every_query_as_sqlite_does(
        both: tuple[tuple[Store, dict[str, str]], ...], query: str, tz: tzinfo) -> None:
    (lite, lite_keys), (pg, pg_keys) = both
    assert await _answer(pg, pg_keys, query, tz) == await _answer(lite, lite_keys, query, tz)


def test_every_table_is_asked() -> None:
    assert {"FREE_TEXT", "NEGATION", "SHORT_TERMS", "DATES", "FTS_OPERATORS"} <= set(TABLES)
    assert len(QUERIES) > 100


async def test_the_expected_answers_hold_too(both: tuple[tuple[Store, dict[str, str]], ...]) -> None:
    """Parity alone would pass if both were wrong the same way: the tables' own answers, on PostgreSQL."""
    _, (pg, keys) = both
    for table in TABLES:
        for query, expected in getattr(cases, table):
            page = await pg.list(query=query, limit=100)
            assert {keys[s.id] for s in page.messages} == expected, (table, query)
