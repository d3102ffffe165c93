"""Migrations: a database of any earlier version upgrades to exactly the layout of a new one, and a failure
part-way through a version leaves the version before intact for the next start."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mailnest import search
from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store import schema
from mailnest.store.sqlite import SQLiteStore

MESSAGE = b"From: a@x.test\r\nTo: b@x.test\r\nSubject: kept across upgrades\r\n\r\nzeppelin body\r\n"


def layout(path: Path) -> tuple[int, list[tuple[str, str, str, str | None]]]:
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    conn.close()
    return version, rows


def build(path: Path, migrations: tuple[tuple[str, ...], ...]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    schema.migrate(conn, migrations)
    conn.close()


async def open_store_and_use(path: Path) -> list[str]:
    store = SQLiteStore(path, Hub())
    await store.start()
    try:
        await store.add(MESSAGE, Envelope("a@x.test", ("b@x.test",)))
        return [m.subject for m in (await store.list(query="zeppelin")).messages]
    finally:
        await store.close()


def test_every_earlier_version_upgrades_to_the_layout_of_a_new_database(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    asyncio.run(open_store_and_use(fresh))
    expected = layout(fresh)
    assert expected[0] == len(schema.MIGRATIONS)
    for version in range(len(schema.MIGRATIONS)):
        path = tmp_path / f"from-{version}.db"
        build(path, schema.MIGRATIONS[:version])
        if version:  # a version-1 database already holds messages: they must survive the upgrade
            with sqlite3.connect(path) as conn:
                conn.execute("INSERT INTO messages (id, created, size, envelope_json) VALUES ('old', 1, 1, '{}')")
                conn.execute("INSERT INTO bodies (uid, raw) VALUES (1, x'41')")
            conn.close()
        assert layout(path)[0] == version
        subjects = asyncio.run(open_store_and_use(path))
        assert subjects == ["kept across upgrades"]
        assert layout(path) == expected, f"a database upgraded from schema {version} differs from a new one"
        if version:
            with sqlite3.connect(path) as conn:
                assert conn.execute("SELECT id FROM messages ORDER BY uid LIMIT 1").fetchone() == ("old",)
            conn.close()


def test_search_py_agrees_with_the_frozen_search_tables(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    build(path, schema.MIGRATIONS)
    with sqlite3.connect(path) as conn:
        fts = [r[1] for r in conn.execute("PRAGMA table_info(search)")]
        pending = [r[1] for r in conn.execute("PRAGMA table_info(search_pending)")]
        text = [r[1] for r in conn.execute("PRAGMA table_info(search_text)")]
    conn.close()
    assert tuple(fts) == search.FTS_COLUMNS
    assert tuple(pending) == ("id", "n", *search.CONTENT_COLUMNS)
    assert tuple(text) == ("id", *search.CONTENT_COLUMNS)


@pytest.mark.parametrize("failing", range(1, len(schema.MIGRATIONS)))
def test_a_failure_inside_a_migration_leaves_the_previous_version_and_the_next_start_succeeds(
        tmp_path: Path, failing: int) -> None:
    path = tmp_path / "mail.db"
    build(path, schema.MIGRATIONS[:failing])
    before = layout(path)
    # The version's own statements run, then one that fails at run time (a NOT NULL constraint), as a disk
    # error or a bug would part-way through.
    broken = (*schema.MIGRATIONS[:failing], (*schema.MIGRATIONS[failing], "INSERT INTO meta VALUES (NULL, NULL)"))
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError):
        schema.migrate(conn, broken)
    assert not conn.in_transaction
    conn.close()
    assert layout(path) == before, "the failed migration left part of its schema behind"

    assert asyncio.run(open_store_and_use(path)) == ["kept across upgrades"]
    fresh = tmp_path / "fresh.db"
    build(fresh, schema.MIGRATIONS)
    assert layout(path)[0] == len(schema.MIGRATIONS)
    assert [r for r in layout(path)[1] if r[1] != "sqlite_sequence"] == \
        [r for r in layout(fresh)[1] if r[1] != "sqlite_sequence"]


def test_a_database_from_a_newer_mailnest_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    build(path, schema.MIGRATIONS)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(schema.MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer mailnest"):
        asyncio.run(open_store_and_use(path))
