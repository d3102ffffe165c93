"""The Store protocol: everything a front door may ask of the store. Front doors never see SQL.

IDs: every message has an opaque public `id` (Mailpit style, a string) and an integer `uid` that only grows
and is never reused; the uid is the IMAP UID in every mailbox at once.

Views: `mailbox=None` is the catch-all view of delivered mail; `mailbox="alice@example.com"` is the mail whose
envelope named that recipient (lower-cased). A query with a `folder:` term looks beyond delivered mail, at the
messages IMAP clients filed in folders (`folder:Archive`; `folder:INBOX` is delivered mail); with a mailbox, at
that mailbox's delivered mail and the folders of the IMAP login of that name. Queries are strings in mailnest's search language
(`mailnest.search`); a malformed query raises `mailnest.search.QueryError`. Where a `Query` is taken, a sequence
of queries means messages matching any of them; `tz` is the zone for dates written without one (None: local).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..events import Hub
from ..models import Envelope, Message, Page, Stats, Summary

if TYPE_CHECKING:  # tags imports config, whose defaults check a tenant through store.select, which imports us
    from ..tags import TagRule

Query = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class Mailboxes:
    """The mail a login limited to mailbox patterns may see (per-login isolation, `scoping.py`): delivered mail
    with an envelope recipient matching any of `patterns` (whole addresses, lower-case, `*` standing for any run
    of characters: `*@alice.test`, `alice@*`), and the IMAP folders of the login `owner` (None: no folders).
    `within` narrows it further to one ordinary mailbox (an address or `@domain`) the login asked for.

    Wherever a `mailbox` is taken, a `Mailboxes` may stand instead of the address."""

    patterns: tuple[str, ...]
    owner: str | None = None
    within: str | None = None

    def matches(self, address: str) -> bool:
        """Whether one address (any case) is among `patterns` (pure; the stores ask the same in SQL)."""
        return any(pattern_matches(p, address.lower()) for p in self.patterns)


def pattern_matches(pattern: str, address: str) -> bool:
    """`pattern` (lower-case, `*` any run of characters) against a whole lower-case address."""
    if "*" not in pattern:
        return pattern == address
    parts = pattern.split("*")
    if not address.startswith(parts[0]) or not address.endswith(parts[-1]) \
            or len(address) < len(parts[0]) + len(parts[-1]):
        return False
    at = len(parts[0])
    end = len(address) - len(parts[-1])
    for part in parts[1:-1]:
        found = address.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


Mailbox = str | Mailboxes | None  # what `mailbox=` takes: None is all delivered mail

INBOX = "INBOX"  # the IMAP name of delivered mail
CATCH_ALL_OWNER = "*"  # the owner of folders made by the catch-all IMAP login (`login=None`)


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    address: str
    total: int
    unread: int
    # `created` of its newest message (None when unknown); not compared, so a count check needs no clock
    latest: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Space:
    """A throwaway address space (`POST /api/v1/mailboxes`): every address at `domain` (lower-case), with its own
    retention applied by the store's retention job (`max_messages` 0: no limit; `max_age` seconds, None: no limit)
    and an optional `webhook` URL that each message for the domain is posted to. `created`: seconds since the epoch.

    A space's mail is the delivered mail with an envelope recipient at exactly `domain` (the view `@domain`)."""

    domain: str
    created: float
    max_messages: int = 0
    max_age: float | None = None
    webhook: str | None = None


class SpaceExistsError(Exception):
    """`create_space` of a domain that has a space already (nothing was written)."""


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """An IMAP folder other than INBOX: `owner` is the IMAP login that made it ('*' for the catch-all login)."""

    name: str
    owner: str
    total: int
    unread: int


class FolderError(Exception):
    """An IMAP folder operation that cannot be done; the message is the reason given to the client."""


@dataclass(frozen=True, slots=True)
class View:
    """Every message of an IMAP view in uid order (as parallel lists: a view may hold many thousands)."""

    uids: list[int]
    flags: list[frozenset[str]]  # system flags and keywords, \Seen included when read; never \Recent
    sizes: list[int]  # RFC822.SIZE: the stored bytes
    created: list[float]  # INTERNALDATE, seconds since the epoch
    recent_mark: int  # the highest uid some session of this login has seen (\Recent is above it)
    uidnext: int
    first_unseen: int = -1  # index of the first message without \Seen; -1 when every message is seen


@dataclass(frozen=True, slots=True)
class FolderStatus:
    messages: int
    unseen: int
    recent: int
    uidnext: int


def owner_of(login: str | None) -> str:
    """The owner column of a login's folders."""
    return CATCH_ALL_OWNER if login is None else login


class StoreFullError(Exception):
    """The disk holding the database is full: nothing was written. Temporary: the same write succeeds once space
    is freed (SMTP answers 452, HTTP 507). Messages already acknowledged are untouched."""


class StoreUnavailableError(Exception):
    """The database cannot be reached (a PostgreSQL server restarting, a network cut): nothing was written or read.
    Temporary: SMTP answers 451, HTTP 503 with Retry-After, /readyz 503; the store reconnects by itself."""


class MessageRejectedError(Exception):
    """This message can never be stored as it is (a value beyond a database limit, such as an index row too big):
    nothing was written, and the same message sent again would fail again. Permanent, and about this message
    only: SMTP answers 554 5.3.4 (the client must not retry), HTTP 422; the other messages of its batch are stored."""


class DuplicateMessageError(Exception):
    """With `ignore_duplicate_ids`: a message whose Message-ID delivered mail already has was not stored (the
    first is kept). Not a failure: SMTP answers 250, as Mailpit's --ignore-duplicate-ids does. `first_id` is the
    public id of the message kept ('' if it went in the meantime)."""

    def __init__(self, message_id: str, first_id: str) -> None:
        super().__init__(f"a message with Message-ID <{message_id}> is stored already"
                         + (f" (id {first_id})" if first_id else "") + "; not stored again")
        self.message_id = message_id
        self.first_id = first_id


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One kind of once-only work (a webhook URL, the relay, a file output) still to do for one message.

    `holder` is the node that claimed it (the receiving node at first); it holds the work until `lease_until`
    (seconds since the epoch, by the database's clock on PostgreSQL) and renews the lease while the work runs. A
    row whose lease has run out belongs to nobody: any node configured for its kind may claim it. `attempts`
    counts the claims after the first holder's (a message whose work kills every node that claims it is dropped
    after a few)."""

    uid: int
    kind: str
    holder: str
    lease_until: float
    attempts: int


@runtime_checkable
class Store(Protocol):
    hub: Hub
    uidvalidity: int  # stable for the life of a database file

    @property
    def duplicates_ignored(self) -> int: ...  # add() calls refused as duplicates since start (Mailpit's SMTPIgnored)

    # Ingest options, before start. `ignore_duplicate_ids`: `add()` of a message whose Message-ID delivered mail
    # already has raises DuplicateMessageError and stores nothing (a message without one is always stored); the
    # check and the insert are one atomic step, so nodes sharing a database keep exactly one. `use_message_dates`:
    # a message's `created` is its Date header when that parses (else its arrival); lists are newest first by it.
    # `compress`: new messages' raw bytes are stored zstd-compressed (codec.py); every read gives back the bytes
    # received, whichever way each row was written.
    def configure_ingest(self, *, ignore_duplicate_ids: bool = False, use_message_dates: bool = False,
                         compress: bool = False) -> None: ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    # Ingest. Returns once the message is committed (so the SMTP 250 may follow). Every write raises
    # StoreFullError when the disk is full; every call raises StoreUnavailableError while the database is
    # unreachable; with ignore_duplicate_ids, a duplicate raises DuplicateMessageError.
    async def add(self, raw: bytes, envelope: Envelope, *, tags: Sequence[str] = (), read: bool = False) -> Summary: ...

    # Reading
    async def list(self, *, query: Query = "", mailbox: Mailbox = None, start: int = 0, limit: int = 50,
                   tz: tzinfo | None = None) -> Page: ...
    async def get(self, id: str) -> Message | None: ...
    async def raw(self, id: str) -> bytes | None: ...
    async def raw_with_envelopes(self, ids: Sequence[str]) -> dict[str, tuple[bytes, Envelope]]: ...
    async def latest(self, *, query: Query = "", mailbox: Mailbox = None,
                     tz: tzinfo | None = None) -> Summary | None: ...
    async def count(self, *, query: Query = "", mailbox: Mailbox = None, tz: tzinfo | None = None) -> int: ...
    async def stats(self, *, mailbox: Mailbox = None) -> Stats: ...
    async def mailboxes(self) -> builtins.list[MailboxInfo]: ...
    # Mail that IMAP clients filed in folders; list it with the query `folder:NAME`.
    async def folders(self) -> builtins.list[FolderInfo]: ...
    async def summaries_by_uid(self, uids: Sequence[int]) -> builtins.list[Summary]: ...
    async def uids(self, *, mailbox: Mailbox = None, query: Query = "") -> builtins.list[int]: ...
    async def id_for_uid(self, uid: int) -> str | None: ...
    # The ids of `ids` that `mailbox` holds (its delivered mail and, for a `Mailboxes`, its owner's folders), in
    # the order given: what a login limited to some mailboxes may read or change by id.
    async def among(self, ids: Sequence[str], mailbox: Mailboxes) -> builtins.list[str]: ...

    # Changing. Each returns the ids it changed and publishes the matching hub event.
    async def set_read(self, ids: Sequence[str], read: bool) -> builtins.list[str]: ...
    async def set_read_matching(self, read: bool, *, query: Query = "", mailbox: Mailbox = None,
                                tz: tzinfo | None = None) -> builtins.list[str]: ...
    async def delete(self, ids: Sequence[str]) -> builtins.list[str]: ...
    async def delete_matching(self, *, query: Query = "", mailbox: Mailbox = None,
                              tz: tzinfo | None = None) -> builtins.list[str]: ...
    async def delete_all(self) -> int: ...
    async def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> builtins.list[str]: ...

    # Tags (`--tag` rules apply at ingest; the rest is the API's tag management).
    def configure_tags(self, rules: Sequence[TagRule]) -> None: ...
    async def tag_counts(self) -> dict[str, int]: ...
    async def rename_tag(self, old: str, new: str) -> builtins.list[str]: ...
    async def delete_tag(self, name: str) -> builtins.list[str]: ...

    # Once-only work (webhooks, relay, file outputs), claimed through the store so that it happens once per message
    # whatever the number of nodes, and survives the node that claimed it dying. `configure_work` (before start)
    # names the kinds this node does, the node's holder id and the lease in seconds; from then on `add()` writes
    # one row per kind in the message's own transaction, held by this node (nothing is written when no kind is
    # configured). A consumer finishes a kind with `finish_work` (done, or given up for good); `renew_work`
    # extends this node's leases that end within half a lease; `claim_work` takes rows of the configured kinds
    # whose lease has run out (another node died, or let them go with `release_work` at shutdown), at most
    # `limit`, each claimed by one node only. Deleting a message deletes its rows.
    def configure_work(self, kinds: Sequence[str], *, holder: str, lease: float) -> None: ...
    async def claim_work(self, limit: int = 100) -> builtins.list[WorkItem]: ...
    async def renew_work(self) -> int: ...
    async def finish_work(self, done: Sequence[tuple[int, str]]) -> int: ...
    async def release_work(self) -> int: ...
    async def pending_work(self) -> builtins.list[WorkItem]: ...

    # IMAP and POP3 logins limited to mailbox patterns (`--auth-file` entries with a third field): the INBOX of
    # such a login is the delivered mail for any of its patterns, or addressed to the login itself (an APPEND to
    # INBOX is filed under it). Other logins keep their own address. Before start; lower-case names.
    def configure_logins(self, patterns: Mapping[str, Sequence[str]]) -> None: ...
    # The delivered mail of one IMAP/POP3 login (None: the catch-all login): what `mailbox=` takes for it.
    def login_mailbox(self, login: str | None) -> Mailbox: ...

    # IMAP. A view is what one IMAP mailbox shows to one login (`login=None`: the catch-all login): INBOX is the
    # login's delivered mail (all delivered mail for the catch-all), any other folder the rows filed there by that
    # login. Flags belong to the message, so every view showing it agrees; \Seen is the API's read state. APPEND,
    # COPY and MOVE make new rows with new uids. Folder operations that cannot be done raise FolderError.
    async def imap_folders(self, login: str | None) -> builtins.list[str]: ...
    async def imap_subscriptions(self, login: str | None) -> builtins.list[str]: ...
    async def imap_folder_exists(self, login: str | None, name: str) -> bool: ...
    async def imap_create_folder(self, login: str | None, name: str) -> None: ...
    async def imap_delete_folder(self, login: str | None, name: str, delimiter: str) -> None: ...
    async def imap_rename_folder(self, login: str | None, old: str, new: str, delimiter: str) -> None: ...
    async def imap_subscribe(self, login: str | None, name: str, subscribed: bool) -> None: ...
    async def imap_view(self, login: str | None, folder: str) -> View: ...
    async def imap_status(self, login: str | None, folder: str) -> FolderStatus: ...
    async def imap_uidnext(self) -> int: ...
    async def imap_claim_recent(self, login: str | None, folder: str, up_to: int) -> int: ...
    async def imap_raw(self, uids: Sequence[int]) -> dict[int, bytes]: ...
    async def imap_headers(self, uids: Sequence[int]) -> dict[int, bytes]: ...
    async def imap_store_flags(self, uids: Sequence[int], mode: str,
                               flags: Sequence[str]) -> dict[int, frozenset[str]]: ...
    async def imap_expunge(self, uids: Sequence[int]) -> builtins.list[int]: ...
    async def imap_append(self, login: str | None, folder: str, raw: bytes, flags: Sequence[str],
                          date: datetime | None) -> int: ...
    async def imap_copy(self, uids: Sequence[int], login: str | None, folder: str,
                        *, move: bool = False) -> builtins.list[tuple[int, int]]: ...

    # Spaces (mailboxes on demand, `Space`): shared by every node of a database. `create_space` raises
    # SpaceExistsError for a domain taken; `delete_space` removes the space and its mail in one transaction and
    # returns the ids deleted (None: no such space, nothing done). `prune_spaces` applies every space's retention
    # once (on PostgreSQL by one node per round, under an advisory lock: the others get []), and removes a space
    # older than its max_age that has no mail left; it returns the ids pruned. The store runs it every
    # SPACE_PRUNE_EVERY seconds while started; `now` (seconds since the epoch) is for tests.
    async def create_space(self, space: Space) -> None: ...
    async def get_space(self, domain: str) -> Space | None: ...
    async def spaces(self) -> builtins.list[Space]: ...
    async def delete_space(self, domain: str) -> builtins.list[str] | None: ...
    async def prune_spaces(self, now: float | None = None) -> builtins.list[str]: ...


SPACE_PRUNE_EVERY = 5.0  # seconds between two rounds of the spaces' retention
