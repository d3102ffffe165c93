"""The long-polls of `GET /api/v1/wait`: who waits for what, and which new message may concern whom.

The prefilter here only ever skips a re-count it can prove useless: a waiter whose re-count is skipped by mistake
blocks until its timeout instead of answering at once. So any query term it cannot decide exactly, from what a
new message's Summary says, makes it answer "may match" and leaves the question to the store.
"""

from __future__ import annotations

import asyncio
import logging

from .. import events, search
from ..models import Summary
from ..store.base import Store

log = logging.getLogger("mailnest.http")

WaitKey = tuple[str, str | None]  # (query, mailbox lower-cased)
Needles = tuple[tuple[str, str], ...]  # (field, normalized text)


# The search fields whose text a new message's Summary holds, and the index column each searches.
_SUMMARY_TEXT: dict[str, str] = {
    "subject": "subject",
    "from": "from_addr",
    "to": "to_addr",
    "cc": "cc_addr",
    "bcc": "bcc_addr",
    "reply-to": "reply_to_addr",
}


def _summary_texts(summary: Summary) -> dict[str, str]:
    """Those fields' text for a new message, made by the very function that makes its row of the search index
    (from the same Summary fields the store indexes), so the prefilter cannot drift from the index."""
    row = search.index_values(subject=summary.subject, from_=summary.from_, to=summary.to, cc=summary.cc,
                              bcc=summary.bcc, reply_to=summary.reply_to, message_id="", text="")
    return {name: row[search.FTS_COLUMNS.index(column)] for name, column in _SUMMARY_TEXT.items()}


# Words that combine terms other than by AND in other search languages (and may in ours as it grows): a query that
# has one, or a parenthesis, is not taken for a plain conjunction, in which every term is required of every match.
_OPERATORS = frozenset({"or", "and", "not"})
# Fields over state that changes after a message arrived (read, tags, IMAP folders): an UPDATE event can make a
# message match them.
_MUTABLE_FIELDS = frozenset({"is", "tag", "folder"})


def _terms(query: str) -> tuple[search.Term, ...]:
    return search.parse(query.replace("\x00", " "))  # as search.compile reads it


def _needles(query: str) -> Needles:
    """The (field, normalized text) every match of `query` must contain, for the fields a Summary shows.

    Empty (no prefilter) unless the query is a plain conjunction of terms: with an operator word or a parenthesis
    anywhere, a term may be optional. Raises QueryError for a malformed query."""
    terms = _terms(query)
    if "(" in query or ")" in query or any(t.field == "" and t.value.strip().lower() in _OPERATORS
                                             for t in terms):
        return ()
    return tuple((t.field, search.normalize(t.value)) for t in terms
                 if not t.negated and t.field in _SUMMARY_TEXT)


def _changes_with_state(query: str) -> bool:
    """Whether a message can come to match `query` after it arrived (a read flag, a tag, a folder changes)."""
    return any(t.field in _MUTABLE_FIELDS for t in _terms(query))


def _may_match(needles: Needles, texts: dict[str, str]) -> bool:
    """False when the new message cannot match (a needed text is missing); True when only the store can tell."""
    return all(needle in texts[name] for name, needle in needles)


def _mailbox_keys(summary: Summary) -> set[str]:
    """Every `mailbox` value whose view the new message is in: each recipient address (the envelope's are always
    among To, Cc and Bcc, the store shows the others as Bcc), and each `@domain` one ends with (as the store's
    `LIKE '%@domain'`)."""
    keys: set[str] = set()
    for item in (*summary.to, *summary.cc, *summary.bcc):
        address = item.address.lower()
        keys.add(address)
        at = address.find("@")
        while at != -1:
            keys.add(address[at:])
            at = address.find("@", at + 1)
    return keys


class WaitersFull(Exception):
    """As many clients wait as the server keeps (`Waiters.limit`)."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"too many clients are waiting ({limit}, the most this server keeps); "
                         f"try again in {retry_after} seconds")
        self.limit = limit
        self.retry_after = retry_after


class Waiters:
    """The long-polls of `/api/v1/wait`, grouped by what they wait for, checked in bulk.

    A waiter subscribing to the hub and counting its own query on every new message made ingest 90-300x slower
    with 2,000 of them. Here one hub listener notes which groups (identical query and mailbox) a new message may
    concern: a mailbox group only when the message is in that mailbox's view (see `_mailbox_keys`), a query only
    when the message has the subject and address texts it needs. A group whose query looks at read flags, tags
    or folders is also checked on every UPDATE event. One task then counts each such group once, at most
    CHECK_SLOTS counts at a time in the store's reader threads (so other reads always find a free one); messages
    that arrive meanwhile are checked together in the next round. A waiter whose time runs out counts once more
    itself, so a message the shortcut skipped by mistake is still found then. At most `limit` waiters at once;
    more raise WaitersFull."""

    CHECK_SLOTS = 2
    RETRY_AFTER = 2

    def __init__(self, store: Store, limit: int) -> None:
        self.store = store
        self.limit = limit
        self.size = 0
        self._groups: dict[WaitKey, dict[asyncio.Future[int], int]] = {}  # waiter -> the count it waits for
        self._needles: dict[WaitKey, Needles] = {}
        # Groups indexed for the listener: those whose query needs no text, by mailbox; the others by the field
        # and text of their first needle, so a new message costs one `in` per distinct text, not a call per group.
        self._plain: dict[str | None, set[WaitKey]] = {}
        self._by_needle: dict[str, dict[str, set[WaitKey]]] = {}
        self._on_update: set[WaitKey] = set()
        self._due: set[WaitKey] = set()
        self._task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        store.hub.add_listener(self._on_event)

    def _index(self, key: WaitKey) -> set[WaitKey]:
        needles = self._needles[key]
        if not needles:
            return self._plain.setdefault(key[1], set())
        field_name, text = needles[0]
        return self._by_needle.setdefault(field_name, {}).setdefault(text, set())

    def add(self, key: WaitKey, count: int) -> asyncio.Future[int]:
        if self.size >= self.limit:
            raise WaitersFull(self.limit, self.RETRY_AFTER)
        group = self._groups.get(key)
        if group is None:
            self._needles[key] = _needles(key[0])  # raises QueryError (400) for a malformed query
            group = self._groups[key] = {}
            self._index(key).add(key)
            if _changes_with_state(key[0]):
                self._on_update.add(key)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        group[future] = count
        self.size += 1
        return future

    def remove(self, key: WaitKey, future: asyncio.Future[int]) -> None:
        group = self._groups.get(key)
        if group is None or group.pop(future, None) is None:
            return
        self.size -= 1
        if group:
            return
        self._index(key).discard(key)  # emptied sets stay: there are at most as many as distinct queries
        del self._groups[key], self._needles[key]
        self._on_update.discard(key)
        self._due.discard(key)

    def _on_event(self, event: events.Event) -> None:
        if not self._groups:
            return
        if isinstance(event, events.MessageAdded):
            self._on_new(event.summary)
        elif event.type == events.UPDATE:  # read flags, tags, IMAP flags and folders
            self._due.update(self._on_update)
        if self._due and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._check(), name="mailnest-wait-check")

    def _on_new(self, summary: Summary) -> None:
        mailboxes = _mailbox_keys(summary)
        due = self._due
        due.update(self._plain.get(None, ()))
        for mailbox in mailboxes:
            due.update(self._plain.get(mailbox, ()))
        if not self._by_needle:
            return
        texts = _summary_texts(summary)
        for field_name, by_text in self._by_needle.items():
            text = texts[field_name]
            for needle in [n for n in by_text if n in text]:
                due.update(key for key in by_text[needle] if (key[1] is None or key[1] in mailboxes)
                           and _may_match(self._needles[key], texts))

    async def _check(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.CHECK_SLOTS)
        while self._due:
            due, self._due = self._due, set()
            await asyncio.gather(*(self._check_group(key) for key in due))

    async def _check_group(self, key: WaitKey) -> None:
        assert self._slots is not None
        async with self._slots:
            if key not in self._groups:
                return
            try:
                arrived = await self.store.count(query=key[0], mailbox=key[1])
            except Exception as exc:  # the waiters' own first count already proved the query; the store may close
                log.warning("checking waiters for %r failed: %s", key, exc)
                return
        for future, wanted in tuple(self._groups.get(key, {}).items()):
            if arrived >= wanted and not future.done():
                future.set_result(arrived)
