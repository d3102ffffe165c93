"""What the fast ingest path relies on (schema version 2, ingest.py, notify.py): the column types its array
parameters are cast to, a version-1 database migrated with its mail still found, the `words` index column, the
totals kept by statement triggers, a deleted message's rows going with it, and summaries carried in NOTIFY
payloads (one too long for a payload read back by the receiving node)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from mailnest import events, search
from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.store.postgres import PostgresStore, ingest, notify, schema

from .test_notify import Recorder, _next

pytestmark = pytest.mark.anyio
ENVELOPE = Envelope("a@example.com", ("b@example.org", "c@example.org"))
TABLES = ("messages", "bodies", "search_index", "recipients")


def _raw(n: int, subject: str = "") -> bytes:
    return (f"From: a@example.com\r\nTo: b@example.org\r\nSubject: {subject or f'message {n}'}\r\n\r\n"
            f"The quick brown fox {n} jumps over the lazy dog.\r\n").encode()


def _one(url: str, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


async def test_the_array_casts_are_the_column_types(pg_url: str, open_pg: Callable[..., Any]) -> None:
    await open_pg(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'mailnest' AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (list(TABLES),)).fetchall()
    assert rows
    for name, type_ in rows:
        assert ingest.COLUMN_TYPES.get(name, "text") == type_, name


async def test_a_version_1_database_keeps_its_mail_findable(pg_url: str, open_pg: Callable[..., Any]) -> None:
    """Rows written under version 1 get their `words` from the migration and are found by the new queries;
    the totals the old row triggers kept carry on under the statement triggers."""
    values = ("hello there", "a <a@example.com>", "b@example.org", "", "", "", "the quick brown fox, again",
              "1@example.com", "a@example.com", "b@example.org")
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await schema.migrate(conn, "mailnest", schema.MIGRATIONS[:1]) == 1
        await conn.execute("SET search_path TO mailnest, public")
        await conn.execute("INSERT INTO messages (uid, id, subject, created, size, envelope_json) "
                           "VALUES (1, 'old', 'Hello there', 1.0, 10, '{}')")
        await conn.execute("INSERT INTO bodies (uid, raw) VALUES (1, 'x')")
        await conn.execute("INSERT INTO recipients VALUES ('b@example.org', 1)")
        await conn.execute("INSERT INTO search_index VALUES (1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", values)
        await conn.execute("SELECT setval('uid_seq', 1)")
    store: PostgresStore = await open_pg(pg_url)
    words = _one(pg_url, "SELECT words FROM mailnest.search_index WHERE uid = 1")[0]
    assert set(words.split(" ")) == set(ingest.search_words(values).split(" "))
    for query in ("quick brown", "fox,", "subject:hello", "-nothing brown", "to:example.org"):
        assert await store.count(query=query) == 1, query
    for query in ("brown quick fox zebra", "subject:quick", "-quick"):
        assert await store.count(query=query) == 0, query
    new = await store.add(_raw(2), ENVELOPE)
    assert new.uid == 2
    assert (await store.stats()).total == 2
    assert await store.count(query="quick brown fox 2") == 1


def test_words_holds_every_token_once() -> None:
    assert ingest.search_words(("a b a", "", "b  c", "dé-jà vu")) == "a b c dé-jà vu"


async def test_a_needle_across_tokens_is_found_exactly(pg_url: str, open_pg: Callable[..., Any]) -> None:
    """`words` holds tokens in no order: the exact test on the column decides, never the index column."""
    store: PostgresStore = await open_pg(pg_url)
    await store.add(_raw(1, "alpha beta gamma"), ENVELOPE)
    assert await store.count(query='subject:"beta gamma"') == 1
    assert await store.count(query='subject:"ta gam"') == 1  # tokens cut at both ends
    assert await store.count(query='subject:"gamma beta"') == 0  # both tokens are there, not in this order
    assert await store.count(query='"alpha gamma"') == 0


async def test_totals_follow_batches_reads_moves_and_deletes(pg_url: str, open_pg: Callable[..., Any]) -> None:
    store: PostgresStore = await open_pg(pg_url)
    added = await asyncio.gather(*(store.add(_raw(n), ENVELOPE, read=n % 3 == 0) for n in range(30)))
    await store.set_read([s.id for s in added[:10]], True)
    await store.set_read_matching(False, query="message 2")
    await store.delete([s.id for s in added[20:25]])
    await store.imap_create_folder(None, "Archive")
    await store.imap_copy([s.uid for s in added[25:27]], None, "Archive", move=True)
    recount = _one(pg_url, "SELECT count(*), count(*) FILTER (WHERE read = 0), coalesce(sum(size), 0) "
                           "FROM mailnest.messages WHERE folder = '' AND owner = ''")
    kept = _one(pg_url, "SELECT total, unread, size FROM mailnest.totals")
    assert kept == recount and recount[0] == 23
    stats = await store.stats()
    assert (stats.total, stats.unread) == recount[:2]


async def test_a_deleted_message_leaves_no_rows_behind(pg_url: str, open_pg: Callable[..., Any]) -> None:
    store: PostgresStore = await open_pg(pg_url)
    added = await asyncio.gather(*(store.add(_raw(n), ENVELOPE) for n in range(6)))
    await store.delete([added[0].id])
    await store.delete_matching(query="message 1")
    await store.imap_create_folder(None, "Kept")
    await store.imap_copy([added[2].uid], None, "Kept")
    await store.delete_all()  # delivered mail only: the copy in Kept stays, with its rows
    counts = [_one(pg_url, f"SELECT count(DISTINCT uid) FROM mailnest.{t}")[0] for t in TABLES[:3]]
    assert counts == [1, 1, 1]
    assert _one(pg_url, "SELECT count(*) FROM mailnest.recipients")[0] == 0
    assert await store.count(query="folder:Kept quick") == 1


async def test_a_summary_travels_in_the_payload_unless_too_long(pg_url: str,
                                                                  open_pg: Callable[..., Any]) -> None:
    one: PostgresStore = await open_pg(pg_url)
    two: PostgresStore = await open_pg(pg_url, hub=Hub())
    await one.wait_listening()
    await two.wait_listening()
    long_subject = "x" * (notify.PAYLOAD_MAX + 100)  # its summary alone is past a payload's limit
    with Recorder(two.hub) as there:
        short = await one.add(_raw(1), ENVELOPE)
        [payload] = notify.payloads("n", 1, [events.MessageAdded(short)])
        assert '"summary":' in payload
        assert (await _next(there, events.MessageAdded)).summary == short
        long = await one.add(_raw(2, long_subject), ENVELOPE)
        [payload] = notify.payloads("n", 1, [events.MessageAdded(long)])
        assert '"summary":' not in payload and len(payload.encode()) <= notify.PAYLOAD_MAX
        added = await _next(there, events.MessageAdded)  # read back from the database there
        assert added.summary == long
    assert search.normalize(long.subject) == long_subject
