"""The whole search language through Store.list/count on every backend: the cases and expected answers of
tests/test_search.py, over the same four messages stored through Store.add from real bytes (corpus.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, tzinfo

import pytest

from mailnest import mime, search
from mailnest.models import Address
from mailnest.search import QueryError
from mailnest.store.base import Store
from mailnest.tags import TagRule
from tests import test_search as cases

from .conftest import BACKENDS, store_maker
from .corpus import build

pytestmark = pytest.mark.anyio

ALL = cases.ALL
UNREAD = {key for key, fields in cases.MESSAGES.items() if not fields.get("read")}


@dataclass
class Corpus:
    store: Store
    keys: dict[str, str]  # message id -> the key of test_search.MESSAGES


@pytest.fixture(scope="module", params=BACKENDS)
def make_corpus_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return store_maker(str(request.param), request, tmp_path_factory)()


@pytest.fixture(scope="module")
async def corpus(make_corpus_store: Store) -> AsyncIterator[Corpus]:
    store = make_corpus_store
    await store.start()
    try:
        keys: dict[str, str] = {}
        for key, fields in cases.MESSAGES.items():
            built = build(key, fields)
            summary = await store.add(built.raw, built.envelope, read=built.read)
            if built.tags:
                # set_tags keeps names as given (the API cleans them first), as test_search's rows hold them
                assert await store.set_tags([summary.id], built.tags) == [summary.id]
            keys[summary.id] = key
        yield Corpus(store, keys)
    finally:
        await store.close()


async def found(corpus: Corpus, query: str | list[str], *, tz: tzinfo = UTC, mailbox: str | None = None
                ) -> set[str]:
    """The messages a query selects, checked to be the same set through list (and its page counts) and count."""
    page = await corpus.store.list(query=query, tz=tz, limit=100, mailbox=mailbox)
    keys = [corpus.keys[s.id] for s in page.messages]
    assert len(keys) == len(set(keys))
    selected = set(keys)
    assert await corpus.store.count(query=query, tz=tz, mailbox=mailbox) == len(selected)
    assert page.messages_count == len(selected)
    assert page.messages_unread == len(selected & UNREAD)
    if mailbox is None:
        assert (page.total, page.unread) == (len(ALL), len(UNREAD))
    return selected


def test_the_corpus_yields_the_fields_of_test_search() -> None:
    """The bytes stored are the messages test_search describes: the same search row (the store sorts the
    envelope's mailboxes), size, attachment and inline counts."""
    for key, fields in cases.MESSAGES.items():
        built = build(key, fields)
        parsed = mime.parse(built.raw)
        visible = {a.address.lower() for a in (*parsed.to, *parsed.cc)}
        bcc = [Address("", r) for r in built.envelope.rcpt_tos if r.lower() not in visible]
        stored = search.index_values(
            subject=parsed.subject, from_=parsed.from_, to=parsed.to, cc=parsed.cc, bcc=bcc,
            reply_to=parsed.reply_to, message_id=parsed.message_id, text=parsed.text, html=parsed.html,
            attachment_names=[a.filename for a in parsed.attachments], envelope_from=built.envelope.mail_from,
            mailboxes=sorted(built.envelope.rcpt_tos))
        described = search.index_values(
            subject=fields["subject"], from_=fields.get("from_"), to=fields.get("to", ()), cc=fields.get("cc", ()),
            bcc=fields.get("bcc", ()), reply_to=fields.get("reply_to", ()), message_id=fields.get("message_id", ""),
            text=fields.get("text", ""), html=fields.get("html", ""),
            attachment_names=fields.get("attachment_names", ()), envelope_from=fields.get("mail_from", ""),
            mailboxes=sorted(fields.get("rcpt", ())))
        assert stored == described, key
        assert len(built.raw) == fields.get("size", 1000), key
        assert (len(parsed.attachments), len(parsed.inline)) == (fields.get("attachments", 0),
                                                                 fields.get("inline", 0)), key


async def test_the_corpus_is_stored_as_described(corpus: Corpus) -> None:
    by_key = {corpus.keys[s.id]: s for s in (await corpus.store.list()).messages}
    assert set(by_key) == ALL
    for key, fields in cases.MESSAGES.items():
        summary = by_key[key]
        assert summary.size == fields.get("size", 1000)
        assert summary.read == bool(fields.get("read"))
        assert set(summary.tags) == set(fields.get("tags", ()))
        assert summary.attachments == fields.get("attachments", 0)
        assert summary.bcc == tuple(fields.get("bcc", ()))
        assert summary.created.isoformat() == fields["created"]


TABLES = [
    *cases.FREE_TEXT, *cases.PHRASES, *cases.UNICODE, *cases.NEGATION, *cases.ADDRESS_AND_ENVELOPE_FIELDS,
    *cases.FLAGS_TAGS_SIZES, *cases.DATES, *cases.SHORT_TERMS, *cases.UNKNOWN_PREFIXES, *cases.HTML_BODIES,
    *cases.FTS_OPERATORS,
]


@pytest.mark.parametrize(("query", "expected"), TABLES)
async def test_query(corpus: Corpus, query: str, expected: set[str]) -> None:
    assert await found(corpus, query) == expected


@pytest.mark.parametrize(("query", "tz", "expected"), cases.ZONES)
async def test_dates_without_a_zone_use_the_given_zone(corpus: Corpus, query: str, tz: tzinfo,
                                                       expected: set[str]) -> None:
    assert await found(corpus, query, tz=tz) == expected


@pytest.mark.parametrize("query", cases.LITERAL_SYNTAX)
async def test_query_syntax_of_sql_and_fts_is_literal(corpus: Corpus, query: str) -> None:
    await found(corpus, query)  # no SQL or full-text syntax error
    assert await corpus.store.count() == len(ALL)


@pytest.mark.parametrize(("query", "names"), cases.MALFORMED)
async def test_malformed_queries_name_the_bad_part(corpus: Corpus, query: str, names: str) -> None:
    for ask in (corpus.store.list(query=query), corpus.store.count(query=query)):
        with pytest.raises(QueryError) as error:
            await ask
        assert names in str(error.value)


async def test_query_length_is_bounded(corpus: Corpus) -> None:
    assert await found(corpus, " ".join(["ok"] * search.MAX_TERMS)) == {"reply"}
    with pytest.raises(QueryError, match="too many terms"):
        await corpus.store.list(query=" ".join(["ok"] * (search.MAX_TERMS + 1)))


@pytest.mark.parametrize(("query", "mailbox", "expected"), [
    ("", "bob@example.org", {"welcome"}),
    ("", "BOB@example.org", {"welcome"}),  # mailboxes are lower-cased addresses
    ("", "hidden@example.com", {"newsletter"}),  # a Bcc recipient's mailbox
    ("", "@example.org", {"welcome", "newsletter"}),  # a whole domain
    ("", "@example", set()),
    ("", "nobody@example.org", set()),
    ("anna", "anna@example.com", {"reply"}),
    ("-is:read", "@example.org", {"welcome", "newsletter"}),
    ("tag:billing", "bob@example.org", set()),
])
async def test_queries_within_a_mailbox(corpus: Corpus, query: str, mailbox: str, expected: set[str]) -> None:
    assert await found(corpus, query, mailbox=mailbox) == expected


@pytest.mark.parametrize(("queries", "expected"), [
    (["to:bob", "to:carol"], {"welcome", "invoice"}),  # several queries: any of them
    (["to:bob", ""], ALL),  # one matching everything matches everything
    (["nothing-like-this", "tag:Äbc"], {"reply"}),
    (["ok", "-ok"], ALL),
])
async def test_several_queries_match_any(corpus: Corpus, queries: list[str], expected: set[str]) -> None:
    assert await found(corpus, queries) == expected


async def test_uids_and_latest_follow_the_query(corpus: Corpus) -> None:
    store = corpus.store
    by_key = {corpus.keys[s.id]: s for s in (await store.list()).messages}
    assert await store.uids(query="example.org") == sorted(s.uid for s in by_key.values())
    assert await store.uids(query="is:read") == sorted([by_key["invoice"].uid, by_key["reply"].uid])
    assert await store.uids(query="to:bob", mailbox="bob@example.org") == [by_key["welcome"].uid]
    latest = await store.latest(query="is:read", tz=UTC)
    assert latest is not None and latest.id == by_key["reply"].id  # the newest stored, not the newest date
    assert await store.latest(query="nothing-like-this") is None


# Tag rules test one message as it is stored (search.compile(..., one_row=True)): every backend's rule must pick
# the messages its query lists. Not the tag queries (the corpus gets its tags after ingest) nor dates without a
# zone (rules read those in the server's zone, the tables in UTC).
RULE_CASES = [(query, expected) for query, expected in TABLES
              if "tag:" not in query.lower() and "is:tagged" not in query.lower()
              and (query, expected) not in cases.DATES]


@pytest.fixture(scope="module", params=BACKENDS)
def make_ruled_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = store_maker(str(request.param), request, tmp_path_factory)()
    store.configure_tags([TagRule(query, f"rule{n}") for n, (query, _) in enumerate(RULE_CASES)])
    return store


@pytest.fixture(scope="module")
async def ruled(make_ruled_store: Store) -> AsyncIterator[dict[str, set[str]]]:
    """tag -> the keys of the messages that got it at ingest."""
    store = make_ruled_store
    await store.start()
    try:
        tagged: dict[str, set[str]] = {}
        for key, fields in cases.MESSAGES.items():
            built = build(key, fields)
            summary = await store.add(built.raw, built.envelope, read=built.read)
            got = await store.get(summary.id)
            assert got is not None and got.summary.tags == summary.tags
            for tag in summary.tags:
                tagged.setdefault(tag, set()).add(key)
        yield tagged
    finally:
        await store.close()


@pytest.mark.parametrize(("n", "query", "expected"), [(n, q, e) for n, (q, e) in enumerate(RULE_CASES)])
async def test_tag_rules_pick_what_the_query_lists(ruled: dict[str, set[str]], n: int, query: str,
                                                   expected: set[str]) -> None:
    assert ruled.get(f"rule{n}", set()) == expected
