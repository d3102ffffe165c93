"""The search language end to end: raw messages through SQLiteStore.add, queries through store.list/count.

This checks the whole chain the API uses: MIME parsing, the index row the store writes, the compiled filter in
the store's own SQL, that deleting a message removes it from the index, and that messages stored with their
search row pending are moved into the full-text index when the writer is idle, or under a flood, as they come.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailnest.events import NEW, Event, Hub
from mailnest.models import Envelope
from mailnest.search import QueryError
from mailnest.store import schema
from mailnest.store.sqlite import SQLiteStore
from mailnest.store.sqlite.indexer import Indexer

GREETING = (
    b"From: =?utf-8?q?Anna_M=C3=BCller?= <anna@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
    b"Message-ID: <greeting.1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hello Bob,\r\nyour verification code is QX-7781.\r\n"
)
NEWSLETTER = (
    b"From: News <news@letters.test>\r\nTo: list@example.org\r\nReply-To: replies@letters.test\r\n"
    b"Subject: Weekly digest\r\nMessage-ID: <digest.2@letters.test>\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>p { color: chartreuse }</style></head>"
    b"<body><p>Read about <b>zeppelins</b> &amp; airships</p>"
    + b"<p>Filler paragraph, long enough to push what follows past any snippet.</p>" * 8
    + b"<p>The last word is dirigible.</p></body></html>\r\n"
)
REPORT = (
    b"From: Reports <reports@app.test>\r\nTo: carol@example.net\r\nCc: Dave <dave@example.org>\r\n"
    b"Subject: Quarterly report\r\nMessage-ID: <report.3@app.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=sep\r\n\r\n--sep\r\nContent-Type: text/plain\r\n\r\n"
    b"Numbers attached.\r\n--sep\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename=report-q3.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + b"JVBERi0xLjQK" * 2000 + b"\r\n--sep--\r\n"
)


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(tmp_path: Path, scenario: Callable[[SQLiteStore], Awaitable[None]]) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "mail.db", Hub())
        await store.start()
        try:
            await store.add(GREETING, Envelope("bounce@app.test", ("bob@example.org", "secret@example.net"),
                                               received=day("2026-01-10T09:00:00")))
            await store.add(NEWSLETTER, Envelope("list-bounce@letters.test", ("list@example.org",),
                                                 received=day("2026-02-01T09:00:00")))
            await store.add(REPORT, Envelope("reports@app.test", ("carol@example.net", "dave@example.org"),
                                             received=day("2026-03-01T09:00:00")))
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


async def subjects(store: SQLiteStore, query: str, mailbox: str | None = None) -> set[str]:
    page = await store.list(query=query, mailbox=mailbox)
    assert page.messages_count == len(page.messages)
    return {m.subject for m in page.messages}


GREET, NEWS, REP = "Grüße aus Köln", "Weekly digest", "Quarterly report"
EVERY = {GREET, NEWS, REP}

CASES = [
    ("", EVERY),
    ("verification", {GREET}),
    ("VERIFICATION code", {GREET}),
    ('"verification code is"', {GREET}),
    ('"code verification"', set()),
    ("köln", {GREET}),
    ("KÖLN", {GREET}),
    ("grüsse", {GREET}),  # ß folds to ss
    ("müller", {GREET}),
    ("subject:quarterly", {REP}),
    ("subject:numbers", set()),
    ("from:anna", {GREET}),
    ("to:bob@example.org", {GREET}),
    ("cc:dave", {REP}),
    ("bcc:secret@example.net", {GREET}),  # an envelope recipient missing from the headers
    ("reply-to:replies", {NEWS}),
    ("addressed:dave", {REP}),
    ("addressed:news@letters.test", {NEWS}),
    ("message-id:<digest.2@letters.test>", {NEWS}),
    ("mailbox:secret@example.net", {GREET}),
    ("mailbox:example.org", {GREET, NEWS, REP}),
    ("envelope-from:list-bounce", {NEWS}),
    ("-envelope-from:app.test", {NEWS}),
    ("has:attachment", {REP}),
    ("-has:attachment", {GREET, NEWS}),
    ("report-q3.pdf", {REP}),
    ("larger:10k", {REP}),
    ("smaller:10k", {GREET, NEWS}),
    ("after:2026-02-01T00:00:00Z", {NEWS, REP}),
    ("before:2026-02-01T00:00:00Z", {GREET}),
    ("after:2026-01-15T00:00:00Z before:2026-02-15T00:00:00Z", {NEWS}),
    ("-bob", {NEWS, REP}),
    ("!from:anna !from:news", {REP}),
    ("qx", {GREET}),  # short terms
    ("code qx", {GREET}),
    ("-qx", {NEWS, REP}),
    ("nosuchword", set()),
    ("foo:bar", set()),
]


def index_state(store: SQLiteStore) -> tuple[int, int]:
    """(rows in the full-text index, rows still pending), read on a connection of the test's own."""
    with sqlite3.connect(store.path) as conn:
        return (conn.execute("SELECT count(*) FROM search").fetchone()[0],
                conn.execute("SELECT count(*) FROM search_pending").fetchone()[0])


async def until_indexed(store: SQLiteStore, total: int) -> None:
    for _ in range(500):
        if index_state(store) == (total, 0):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not indexed after 5 s: {index_state(store)} (indexed, pending)")


def test_queries_through_the_store(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        await until_indexed(store, 3)  # the idle writer moved every pending row into the index
        wrong = []
        for query, expected in CASES:
            got, counted = await subjects(store, query), await store.count(query=query)
            if got != expected or counted != len(expected):
                wrong.append(f"{query!r}: listed {sorted(got)}, counted {counted}; expected {sorted(expected)}")
        assert not wrong, "\n".join(wrong)

    run(tmp_path, scenario)


@pytest.mark.parametrize("flood", [False, True])
def test_a_message_is_searchable_from_its_commit_and_a_flood_indexes_as_it_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flood: bool) -> None:
    """Right after its commit (when its NEW event is published) a message is found by every kind of term;
    its search row is still pending unless unindexed text is over the limit (a flood the idle indexer cannot
    keep up with), in which case the same transaction indexed as much as it added."""
    if flood:
        monkeypatch.setattr(Indexer, "pending_max_chars", 0)

    async def main() -> None:
        store = SQLiteStore(tmp_path / "mail.db", Hub())
        await store.start()
        seen: list[tuple[int, int]] = []

        def on_commit(event: Event) -> None:
            if event.type == NEW:
                seen.append(index_state(store))

        store.hub.add_listener(on_commit)
        try:
            summary = await store.add(GREETING, Envelope("bounce@app.test", ("bob@example.org",)))
            assert seen == ([(1, 0)] if flood else [(0, 1)])
            for query in ("verification", "subject:köln", "qx", "from:anna -nosuchword", "-nosuchword"):
                assert [m.id for m in (await store.list(query=query)).messages] == [summary.id], query
            assert await store.count(query="-verification") == 0
            await until_indexed(store, 1)
        finally:
            await store.close()

    asyncio.run(main())


def test_pending_rows_survive_a_restart_and_are_indexed_by_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"

    async def first() -> None:
        store = SQLiteStore(path, Hub())
        await store.start()
        await store.add(GREETING, Envelope("bounce@app.test", ("bob@example.org",)))
        await store.close()

    asyncio.run(first())
    with sqlite3.connect(path) as conn:  # as if the process had stopped before indexing: put the row back
        conn.execute("DELETE FROM search_pending")
        conn.execute("INSERT INTO search_pending (id, n, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9) "
                     "SELECT rowid, 1, subject, from_addr, to_addr, cc_addr, bcc_addr, reply_to_addr, body, "
                     "message_id, envelope_from, rcpt FROM search")
        conn.execute("DELETE FROM search")
    assert sqlite3.connect(path).execute("SELECT count(*) FROM search_pending").fetchone()[0] == 1

    async def second() -> None:
        store = SQLiteStore(path, Hub())
        await store.start()
        try:
            assert await subjects(store, "verification") == {GREET}
            await until_indexed(store, 1)
            assert await subjects(store, "verification") == {GREET}
        finally:
            await store.close()

    asyncio.run(second())


def test_html_bodies_are_searched_as_text(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        assert await subjects(store, "zeppelins") == {NEWS}
        assert await subjects(store, '"zeppelins & airships"') == {NEWS}
        assert await subjects(store, "chartreuse") == set()  # a style sheet is not text
        # Past the snippet: needs the whole HTML body in the index (sqlite.py passing html=parsed.html).
        assert await subjects(store, "dirigible") == {NEWS}

    run(tmp_path, scenario)


def test_read_and_tags_follow_changes(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        assert await subjects(store, "is:read") == set()
        ids = {m.subject: m.id for m in (await store.list()).messages}
        await store.set_read([ids[NEWS]], True)
        assert await subjects(store, "is:read") == {NEWS}
        assert await subjects(store, "is:unread") == {GREET, REP}
        assert await subjects(store, "is:tagged") == set()
        await store.set_tags([ids[REP], ids[GREET]], ["Finance", "urgent"])
        assert await subjects(store, "tag:finance") == {REP, GREET}
        assert await subjects(store, "tag:urgent -tag:nothing") == {REP, GREET}
        assert await subjects(store, "is:tagged is:unread quarterly") == {REP}
        await store.set_tags([ids[GREET]], [])
        assert await subjects(store, "is:tagged") == {REP}
        assert await subjects(store, "-is:tagged") == {GREET, NEWS}

    run(tmp_path, scenario)


def test_mailbox_view_and_query_combine(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        assert await subjects(store, "", mailbox="dave@example.org") == {REP}
        assert await subjects(store, "quarterly", mailbox="dave@example.org") == {REP}
        assert await subjects(store, "verification", mailbox="dave@example.org") == set()
        page = await store.list(query="verification", mailbox="secret@example.net")
        assert [m.subject for m in page.messages] == [GREET]
        assert page.total == 1

    run(tmp_path, scenario)


def test_deleted_messages_leave_the_index(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        deleted = await store.delete_matching(query="subject:quarterly")
        assert len(deleted) == 1
        assert await subjects(store, "") == {GREET, NEWS}
        assert await subjects(store, "report") == set()
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("SELECT count(*) FROM search_text").fetchone()[0] == 2  # indexed or pending
            assert conn.execute("SELECT count(*) FROM search WHERE search MATCH '\"quarterly\"'").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM search_text WHERE c0 LIKE '%quarterly%'").fetchone()[0] == 0

    run(tmp_path, scenario)


@pytest.mark.parametrize("query", ['subject:"unbalanced', "larger:abc", "before:notadate", "is:starred"])
def test_malformed_queries_raise_query_error(tmp_path: Path, query: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        with pytest.raises(QueryError):
            await store.list(query=query)
        with pytest.raises(QueryError):
            await store.count(query=query)
        assert len((await store.list()).messages) == 3  # nothing else disturbed

    run(tmp_path, scenario)


def test_a_nul_in_a_query_is_harmless() -> None:
    import asyncio

    from mailnest.events import Hub
    from mailnest.models import Envelope
    from mailnest.store.sqlite import SQLiteStore

    async def main() -> None:
        store = SQLiteStore(None, Hub())
        await store.start()
        try:
            await store.add(b"Subject: zebra crossing\r\n\r\nbody\r\n", Envelope("a@x.test", ("b@x.test",)))
            assert await store.count(query="zebra\x00crossing") == 1
            assert await store.count(query="\x00") == 1
        finally:
            await store.close()

    asyncio.run(main())


def test_a_database_from_before_pending_rows_migrates(tmp_path: Path) -> None:
    """A schema-2 file (every search row in the FTS table, no search_pending) opens, finds, and deletes."""
    path = tmp_path / "mail.db"

    async def fill() -> None:
        store = SQLiteStore(path, Hub())
        await store.start()
        await store.add(GREETING, Envelope("bounce@app.test", ("bob@example.org",)))
        await store.add(NEWSLETTER, Envelope("list-bounce@letters.test", ("list@example.org",)))
        await until_indexed(store, 2)
        await store.close()

    asyncio.run(fill())
    with sqlite3.connect(path) as conn:  # back to schema 2, as mailnest before this change wrote it
        conn.executescript("""
            DROP TABLE work; DROP TABLE spaces; DROP VIEW search_text; DROP TABLE search_pending; DROP TRIGGER messages_cleanup;
            ALTER TABLE bodies DROP COLUMN raw_codec;
            DROP TRIGGER totals_insert; DROP TRIGGER totals_delete; DROP TRIGGER totals_update; DROP TABLE totals;
            CREATE TRIGGER messages_cleanup AFTER DELETE ON messages BEGIN
                DELETE FROM bodies WHERE uid = old.uid;
                DELETE FROM recipients WHERE uid = old.uid;
                DELETE FROM search WHERE rowid = old.uid;
            END;
            PRAGMA user_version = 2;
        """)

    async def reopen() -> None:
        store = SQLiteStore(path, Hub())
        await store.start()
        try:
            assert await subjects(store, "verification") == {GREET}
            assert await subjects(store, "zeppelins") == {NEWS}
            assert (await store.stats()).total == 2  # totals start from a count of what is there
            await store.delete_matching(query="zeppelins")
            assert (await store.stats()).total == 1
            assert await subjects(store, "") == {GREET}
            await store.add(REPORT, Envelope("reports@app.test", ("carol@example.net",)))
            assert await subjects(store, "numbers") == {REP}
            await until_indexed(store, 2)
        finally:
            await store.close()

    asyncio.run(reopen())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)


def test_several_queries_are_ored_even_when_one_matches_everything(tmp_path: Path) -> None:
    async def scenario(store: SQLiteStore) -> None:
        assert await store.count(query=["verification", "zeppelins"]) == 2
        assert await store.count(query=["verification", ""]) == 3  # "" matches all: the others add nothing
        assert {m.subject for m in (await store.list(query=["nosuchword", ""])).messages} == EVERY

    run(tmp_path, scenario)


def test_the_null_sender_is_found_by_envelope_from_angle_brackets() -> None:
    async def main() -> None:
        store = SQLiteStore(None, Hub())
        await store.start()
        try:
            bounce = await store.add(b"Subject: Undelivered Mail Returned to Sender\r\n\r\nsorry\r\n",
                                     Envelope("", ("app@example.com",)))
            normal = await store.add(b"Subject: hello\r\n\r\nhi\r\n", Envelope("a@x.test", ("app@example.com",)))
            for query in ("envelope-from:<>", "envelope-from:<> subject:undelivered", 'envelope-from:"<>"'):
                assert [m.id for m in (await store.list(query=query)).messages] == [bounce.id], query
            assert [m.id for m in (await store.list(query="-envelope-from:<>")).messages] == [normal.id]
            assert await store.count(query="envelope-from:a@x.test") == 1
            await until_indexed(store, 2)  # indexed rows too, not only pending ones
            assert await store.count(query="envelope-from:<>") == 1
        finally:
            await store.close()

    asyncio.run(main())
