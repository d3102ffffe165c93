"""Searching stays linear in the number of messages, whether their search rows are pending or indexed: the time
for 2n messages within a small factor of the time for n (median of several runs; the bound is generous)."""

from __future__ import annotations

import sqlite3
import statistics
import time

import pytest

from mailnest import search
from mailnest.models import Address
from mailnest.store import schema

N = 3000
QUERIES = ("zeppelin", "zeppelin ab", "zeppelin -ab", "subject:zeppelin from:a1", "ab", "-zeppelin ab",
           "zeppelin -airship", "is:unread zeppelin ab")


def build(n: int, *, indexed: bool) -> sqlite3.Connection:
    """n messages through the store's own schema and search rows (pending, or moved into the index)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.migrate(conn)
    conn.execute("BEGIN")
    for uid in range(1, n + 1):
        conn.execute("INSERT INTO messages (uid, id, created, size, envelope_json) VALUES (?, ?, 1, 1, '{}')",
                     (uid, f"id{uid}"))
        values = search.index_values(
            subject=f"zeppelin report {uid}", from_=Address("A", f"a{uid}@x.test"), to=[Address("", "b@x.test")],
            cc=[], bcc=[], reply_to=[], message_id=f"<{uid}@x.test>", text=f"body ab text number {uid} airship",
            envelope_from="e@x.test", mailboxes=["b@x.test"])
        conn.execute(search.INSERT_PENDING, (uid, 10, *values))
    if indexed:
        for statement in search.INDEX_PENDING:
            conn.execute(statement, (n,))
    conn.execute("COMMIT")
    return conn


def timed(conn: sqlite3.Connection, query: str) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        compiled = search.compile(query)
        conn.execute(f"SELECT count(*) FROM messages m WHERE m.folder = '' AND m.owner = '' AND ({compiled.where})",
                     compiled.params).fetchone()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


@pytest.mark.parametrize("indexed", [False, True], ids=["pending", "indexed"])
def test_search_time_grows_linearly_with_the_rows(indexed: bool) -> None:
    small, large = build(N, indexed=indexed), build(2 * N, indexed=indexed)
    slow = []
    for query in QUERIES:
        n, two_n = timed(small, query), timed(large, query)
        # Below 10 ms, cache effects and a shared machine outweigh any growth; quadratic plans took seconds here.
        if two_n > 3 * max(n, 0.01):
            again_n, again_two_n = timed(small, query), timed(large, query)  # one retry against noise
            if again_two_n > 3 * max(again_n, 0.01):
                slow.append((query, round(again_n * 1000, 1), round(again_two_n * 1000, 1)))
    assert not slow, f"(query, ms for {N}, ms for {2 * N}) grew faster than linearly: {slow}"
