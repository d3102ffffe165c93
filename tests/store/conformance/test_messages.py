"""Messages through the Store protocol on every backend: ingest, reading, paging, changing, deleting, and the
events each change publishes; the null sender; bytes kept exactly as received."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailnest.models import Address, Envelope, TLSInfo
from mailnest.store.base import MailboxInfo, Store

from .conftest import Events

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def message(subject: str, to: str = "alice@example.com", body: str = "body\r\n") -> bytes:
    return f"From: sender@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}".encode()


def envelope(*rcpts: str, sender: str = "sender@example.com", at: int = 0) -> Envelope:
    return Envelope(sender, rcpts or ("alice@example.com",), "client.test", "127.0.0.1:4000",
                    received=T0 + timedelta(minutes=at))


RICH = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.com>\r\n"
    b"To: Alice <alice@example.com>, bob@example.com\r\n"
    b"Cc: Carol <carol@example.com>\r\n"
    b"Reply-To: replies@example.com\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Date: Sun, 01 Mar 2026 11:59:00 +0000\r\n"
    b"Message-ID: <rich.1@example.com>\r\n"
    b"Return-Path: <bounce@example.com>\r\n"
    b"List-Unsubscribe: <mailto:off@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
    b"--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello text\r\n"
    b"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>html</b></p>\r\n--b2--\r\n"
    b"--b1\r\nContent-Type: image/png\r\nContent-ID: <logo@example.com>\r\nContent-Disposition: inline\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    b"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
)


async def test_add_then_get_raw_and_the_envelope(store: Store, published: Events) -> None:
    sent = Envelope("Bounce@Example.com", ("alice@example.com", "dave@example.com"), "client.test",
                    "192.0.2.7:40000", received=T0, auth_user="app", tls=TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
                    smtputf8=True, source="smtp")
    summary = await store.add(RICH, sent)
    assert await published.take(1) == [("MessageAdded", {"id": summary.id, "uid": summary.uid, "folder": ""})]
    assert summary.subject == "Grüße" and summary.message_id == "rich.1@example.com"
    assert summary.from_ == Address("Jürgen", "jurgen@example.com")
    assert summary.to == (Address("Alice", "alice@example.com"), Address("", "bob@example.com"))
    assert summary.cc == (Address("Carol", "carol@example.com"),)
    assert summary.bcc == (Address("", "dave@example.com"),)  # an envelope recipient missing from the headers
    assert summary.reply_to == (Address("", "replies@example.com"),)
    assert summary.size == len(RICH) and summary.attachments == 1 and not summary.read
    assert summary.created == T0 and summary.folder == "" and summary.snippet.startswith("Hello text")

    got = await store.get(summary.id)
    assert got is not None
    assert got.summary == summary
    assert got.envelope == sent
    assert got.date == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    assert got.text.strip() == "Hello text" and "<b>html</b>" in got.html
    assert [(a.filename, a.content_type, a.inline) for a in got.attachments] == [("a.pdf", "application/pdf", False)]
    assert [(a.content_id, a.inline) for a in got.inline] == [("logo@example.com", True)]
    assert got.return_path == "bounce@example.com"
    assert got.list_unsubscribe == "<mailto:off@example.com>"
    assert got.flags == ()
    assert await store.raw(summary.id) == RICH
    assert await store.raw_with_envelopes([summary.id, "no-such-id"]) == {summary.id: (RICH, sent)}
    assert await store.id_for_uid(summary.uid) == summary.id
    assert await store.summaries_by_uid([summary.uid]) == [summary]
    assert await store.get("no-such-id") is None and await store.raw("no-such-id") is None
    assert await store.id_for_uid(summary.uid + 1000) is None


async def test_add_read_and_received_filled_in(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    summary = await store.add(message("now"), Envelope("a@example.com", ("b@example.com",)), read=True)
    got = await store.get(summary.id)
    assert got is not None and got.summary.read and got.flags == ("\\Seen",)
    assert got.envelope.received is not None and got.envelope.received >= before  # the store's clock
    assert before <= summary.created <= datetime.now(UTC) + timedelta(seconds=1)


async def test_list_pages_newest_first(store: Store) -> None:
    added = [await store.add(message(f"m{i}"), envelope(at=i)) for i in range(7)]
    uids = [s.uid for s in added]
    assert uids == sorted(uids) and len(set(uids)) == 7  # uids only grow
    assert len({s.id for s in added}) == 7
    newest_first = [s.id for s in reversed(added)]
    for start, limit in [(0, 3), (3, 3), (6, 3), (0, 50), (2, 1), (7, 3), (50, 3)]:
        page = await store.list(start=start, limit=limit)
        assert [s.id for s in page.messages] == newest_first[start:start + limit]
        assert (page.total, page.unread, page.messages_count, page.start) == (7, 7, 7, start)
    latest = await store.latest()
    assert latest is not None and latest.id == added[-1].id
    assert await store.count() == 7
    assert await store.uids() == uids
    assert [s.id for s in await store.summaries_by_uid([uids[4], 10**9, uids[1]])] == [added[4].id, added[1].id]


async def test_mailboxes_stats_and_domains(store: Store) -> None:
    a = await store.add(message("x"), envelope("One@Example.com", "two@example.com"))
    await store.add(message("y", body="longer body\r\n"), envelope("two@example.com", "three@other.test"))
    boxes = {b.address: (b.total, b.unread) for b in await store.mailboxes()}
    assert boxes == {"one@example.com": (1, 1), "two@example.com": (2, 2), "three@other.test": (1, 1)}
    assert [b.address for b in await store.mailboxes()] == sorted(boxes)
    await store.set_read([a.id], True)
    boxes = {b.address: (b.total, b.unread) for b in await store.mailboxes()}
    assert boxes["two@example.com"] == (2, 1) and boxes["one@example.com"] == (1, 0)
    stats = await store.stats()
    sizes = [s.size for s in (await store.list()).messages]
    assert (stats.total, stats.unread, stats.size) == (2, 1, sum(sizes))
    only = await store.stats(mailbox="three@other.test")
    assert (only.total, only.unread) == (1, 1)
    assert (await store.stats(mailbox="@example.com")).total == 2
    assert await store.count(mailbox="@other.test") == 1
    assert await store.folders() == []


async def test_set_read_and_set_read_matching(store: Store, published: Events) -> None:
    a = await store.add(message("alpha"), envelope("alice@example.com"))
    b = await store.add(message("beta"), envelope("bob@example.com"))
    c = await store.add(message("gamma"), envelope("bob@example.com"))
    await published.take(3)
    assert await store.set_read([a.id, a.id, "no-such-id"], True) == [a.id]
    assert await published.take(1) == [("ReadChanged", {"ids": {a.id}, "uids": {a.uid}, "read": True})]
    assert await store.set_read([a.id], True) == []  # unchanged: nothing changed, nothing published
    assert set(await store.set_read_matching(True, mailbox="bob@example.com")) == {b.id, c.id}
    assert await published.take(1) == [("ReadChanged", {"ids": {b.id, c.id}, "uids": {b.uid, c.uid}, "read": True})]
    assert await store.count(query="is:unread") == 0
    assert await store.set_read_matching(False, query="subject:gamma") == [c.id]
    assert await published.take(1) == [("ReadChanged", {"ids": {c.id}, "uids": {c.uid}, "read": False})]
    assert await store.set_read_matching(False, query="subject:gamma") == []
    assert (await store.stats()).unread == 1
    assert (await store.list()).unread == 1
    assert await published.take() == []


async def test_delete_and_delete_matching(store: Store, published: Events) -> None:
    added = [await store.add(message(f"n{i}", to="x@example.com"), envelope("x@example.com")) for i in range(3)]
    other = await store.add(message("keep"), envelope("y@example.com"))
    await published.take(4)
    assert await store.delete([added[0].id, "no-such-id"]) == [added[0].id]
    assert await published.take(1) == [("MessagesDeleted", {"ids": {added[0].id}, "uids": {added[0].uid}})]
    assert await store.get(added[0].id) is None and await store.raw(added[0].id) is None
    assert await store.id_for_uid(added[0].uid) is None
    assert await store.delete([added[0].id]) == []
    assert await store.delete_matching(query="subject:nothing-like-this") == []
    assert await published.take() == []
    assert set(await store.delete_matching(mailbox="x@example.com")) == {added[1].id, added[2].id}
    assert await published.take(1) == [("MessagesDeleted", {"ids": {added[1].id, added[2].id},
                                                   "uids": {added[1].uid, added[2].uid}})]
    assert [s.id for s in (await store.list()).messages] == [other.id]
    assert await store.count(query="n1") == 0  # gone from the search index too
    assert await store.mailboxes() == [MailboxInfo("y@example.com", 1, 1)]
    later = await store.add(message("later"), envelope())
    assert later.uid > added[-1].uid and later.uid > other.uid  # uids are never reused


async def test_delete_all(store: Store, published: Events) -> None:
    for i in range(4):
        await store.add(message(f"t{i}"), envelope())
    await published.take(4)
    assert await store.delete_all() == 4
    assert await published.take(1) == [("AllDeleted", {})]
    assert await store.count() == 0 and (await store.stats()).total == 0
    assert (await store.list()).messages == () and await store.mailboxes() == []
    assert await store.delete_all() == 0


async def test_set_tags(store: Store, published: Events) -> None:
    a = await store.add(message("a"), envelope())
    b = await store.add(message("b"), envelope())
    await published.take(2)
    assert set(await store.set_tags([a.id, b.id, "no-such-id"], ["red", "blue", "red"])) == {a.id, b.id}
    (kind, data), = await published.take(1)
    assert kind == "TagsChanged" and data["ids"] == {a.id, b.id} and set(data["tags"]) == {"red", "blue"}
    assert await store.set_tags([a.id], ["red", "blue"]) == []  # unchanged
    assert await published.take() == []
    got = await store.get(a.id)
    assert got is not None and set(got.summary.tags) == {"red", "blue"}
    assert await store.count(query="tag:red") == 2
    assert set((await store.list()).tags) == {"red", "blue"}
    assert set((await store.stats()).tags) == {"red", "blue"}
    assert await store.set_tags([a.id], []) == [a.id]
    (kind, data), = await published.take(1)
    assert kind == "TagsChanged" and data["ids"] == {a.id} and data["tags"] == ()
    assert await store.count(query="is:tagged") == 1
    await store.set_tags([b.id], [])
    assert (await store.list()).tags == () and (await store.stats()).tags == ()


async def test_the_null_sender(store: Store) -> None:
    bounce = await store.add(message("Undelivered"), Envelope("", ("alice@example.com",), received=T0))
    await store.add(message("normal"), envelope())
    got = await store.get(bounce.id)
    assert got is not None and got.envelope.mail_from == ""
    assert [s.id for s in (await store.list(query="envelope-from:<>")).messages] == [bounce.id]
    assert await store.count(query="-envelope-from:<>") == 1
    assert await store.raw_with_envelopes([bounce.id]) == {bounce.id: (message("Undelivered"), got.envelope)}


BYTE_EXACT = {
    "latin-1 headers and body": b"From: J\xfcrgen <j@example.com>\r\nSubject: Gr\xfc\xdfe\r\n\r\nK\xf6ln\r\n",
    "raw utf-8": "From: Jürgen <j@example.com>\r\nSubject: Grüße 東京\r\n\r\nKöln\r\n".encode(),
    "bare line feeds": b"From: a@example.com\nSubject: lf\n\nline one\nline two\n",
    "bare carriage returns": b"From: a@example.com\rSubject: cr\r\rbody\r",
    "no final line end": b"From: a@example.com\r\nSubject: short\r\n\r\nno newline at the end",
    "nul and control bytes": b"From: a@example.com\r\nSubject: nul\r\n\r\nbefore\x00after\x01\x7f\xff\r\n",
    "no header at all": b"just some text, no header\r\n",
    "empty": b"",
    "a header line without a colon": b"From: a@example.com\r\nthis is not a header\r\nSubject: x\r\n\r\nbody\r\n",
    "a boundary that never comes": (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=never\r\n"
                                    b"\r\n--other\r\nContent-Type: text/plain\r\n\r\ntext\r\n"),
    "broken base64 and encoded words": (b"Subject: =?utf-8?b?broken?= =?x-unknown?q?abc?=\r\n"
                                        b"Content-Transfer-Encoding: base64\r\n\r\n%%%not base64***\r\n"),
    "trailing whitespace kept": b"From: a@example.com  \r\nSubject: \t spaced \t\r\n\r\nbody  \r\n\r\n\r\n",
}


@pytest.mark.parametrize("name", list(BYTE_EXACT))
async def test_bytes_are_kept_exactly(store: Store, name: str) -> None:
    raw = BYTE_EXACT[name]
    summary = await store.add(raw, envelope())
    assert summary.size == len(raw)
    assert await store.raw(summary.id) == raw
    assert await store.imap_raw([summary.uid]) == {summary.uid: raw}
    assert (await store.raw_with_envelopes([summary.id]))[summary.id][0] == raw
    got = await store.get(summary.id)
    assert got is not None and got.summary.id == summary.id  # parsed as well as it goes, never refused
    assert [s.id for s in (await store.list()).messages] == [summary.id]


async def test_eight_bit_headers_are_readable_and_searchable(store: Store) -> None:
    summary = await store.add(BYTE_EXACT["raw utf-8"], envelope())
    assert summary.subject == "Grüße 東京"
    assert summary.from_ == Address("Jürgen", "j@example.com")
    assert await store.count(query="subject:grüße") == 1
    assert await store.count(query="köln") == 1


async def test_changes_by_query_read_dates_in_the_zone_given(store: Store) -> None:
    late = await store.add(message("late"), Envelope("a@example.com", ("x@example.com",),
                                                     received=datetime(2026, 1, 1, 23, 30, tzinfo=UTC)))
    early = await store.add(message("early"), Envelope("a@example.com", ("x@example.com",),
                                                       received=datetime(2026, 1, 1, 0, 30, tzinfo=UTC)))
    plus_one = timezone(timedelta(hours=1))  # there, `late` is already 2 January
    assert await store.count(query="after:2026-01-02", tz=plus_one) == 1
    assert await store.count(query="after:2026-01-02", tz=UTC) == 0
    assert await store.set_read_matching(True, query="before:2026-01-02", tz=plus_one) == [early.id]
    latest = await store.latest(query="after:2026-01-02", tz=plus_one)
    assert latest is not None and latest.id == late.id
    assert await store.latest(query="after:2026-01-02", tz=UTC) is None
    assert await store.delete_matching(query="after:2026-01-02", tz=plus_one) == [late.id]
    assert [s.id for s in (await store.list()).messages] == [early.id]
