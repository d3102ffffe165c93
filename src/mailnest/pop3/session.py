"""One POP3 conversation: the RFC 1939 state machine over the Store. No sockets here (see server.py).

The maildrop is a snapshot taken at login: message numbers stay fixed for the whole session, mail that
arrives meanwhile shows up at the next login, and DELE only marks. The marked messages are deleted from the
store when QUIT moves the session to UPDATE; a dropped connection or an idle timeout deletes nothing.

As on Dovecot, a message retrieved with RETR (not TOP) is marked read (IMAP \\Seen) when the session ends, by
QUIT or otherwise, unless RSET came after the RETR or the message was deleted at QUIT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from .. import events
from ..config import Config
from ..events import Event
from ..store.base import Store
from . import responses
from .parser import Command, CommandError, parse_command, parse_number

log = logging.getLogger(__name__)


class State(Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


# RFC 1939 sections 4-6 (and CAPA from RFC 2449): what each state allows. UPDATE allows nothing: the
# session enters it on QUIT and ends there.
ALLOWED: dict[State, frozenset[str]] = {
    State.AUTHORIZATION: frozenset({"USER", "PASS", "APOP", "CAPA", "QUIT", "STLS"}),
    State.TRANSACTION: frozenset({"STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "CAPA", "QUIT"}),
    State.UPDATE: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client offered to log in. USER/PASS fills `password`; APOP fills `timestamp` and `digest`."""

    mechanism: str  # "USER" or "APOP"
    username: str
    password: str | None = None
    timestamp: str | None = None  # the banner's <...> string the APOP digest covers
    digest: str | None = None  # lower-case hex MD5 from APOP
    peer_host: str = ""  # the client's address: failed logins are slowed down per address


# The one place login decisions are made; the authentication issue replaces the default with a checker.
Authenticator = Callable[[Credentials], Awaitable[bool]]


async def accept_any(credentials: Credentials) -> bool:
    """Any user name and any password: mailnest is a development tool without accounts (yet)."""
    return True


class SizeCache:
    """POP3 sizes (octets after CRLF normalisation) by store uid, shared by every session of a listener.

    A uid is never reused and stored bytes never change, so an entry is valid until the message goes;
    the hub tells us when that happens.
    """

    def __init__(self) -> None:
        self._sizes: dict[int, int] = {}

    def get(self, uid: int) -> int | None:
        return self._sizes.get(uid)

    def put(self, uid: int, size: int) -> None:
        self._sizes[uid] = size

    def on_event(self, event: Event) -> None:
        if isinstance(event, (events.MessagesDeleted, events.MessagesPruned)):
            for uid in event.uids:
                self._sizes.pop(uid, None)
        elif isinstance(event, events.AllDeleted):
            self._sizes.clear()

    def __len__(self) -> int:
        return len(self._sizes)


@dataclass(slots=True)
class _Entry:
    id: str
    uid: int
    stored_size: int  # the raw size, used only if the message vanished before we could measure it
    deleted: bool = False
    retrieved: bool = False  # RETR'd since login or the last RSET: marked read when the session ends


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes
    close: bool = False
    start_tls: bool = False  # after sending data, the server upgrades the connection (STLS)


# No EXPIRE: retention (max_messages, max_age) may delete mail, so "EXPIRE NEVER" would be untrue, and a
# number of days would be untrue for count-based pruning.
CAPABILITIES = ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION mailnest")


class Session:
    def __init__(self, store: Store, config: Config, *, timestamp: str,
                 authenticate: Authenticator = accept_any, sizes: SizeCache | None = None,
                 peer: str = "", peer_host: str = "", tls_available: bool = False,
                 tls_active: bool = False) -> None:
        self.store = store
        self.peer_host = peer_host
        self.tls_available = tls_available  # a certificate is configured: STLS can be offered
        self.tls_active = tls_active
        self.config = config
        self.timestamp = timestamp
        self.authenticate = authenticate
        self.sizes = sizes if sizes is not None else SizeCache()
        self.peer = peer
        self.state = State.AUTHORIZATION
        self.username: str | None = None  # set once logged in
        self._pending_user: str | None = None
        self._maildrop: list[_Entry] = []

    # -- driving ---------------------------------------------------------------------------------------

    def greeting(self) -> bytes:
        return responses.greeting(self.config.hostname, self.timestamp)

    async def handle_line(self, line: bytes) -> Reply:
        try:
            command = parse_command(line)
        except CommandError as exc:
            log.info("pop3 %s: bad command line: %s", self.peer, exc)
            return Reply(responses.err(str(exc)))
        return await self.handle(command)

    async def handle(self, command: Command) -> Reply:
        if command.name not in ALLOWED[self.state]:
            log.info("pop3 %s: %s refused in state %s", self.peer, command.name, self.state.value)
            when = "before login" if self.state is State.AUTHORIZATION else "after login"
            return Reply(responses.err(f"{command.name} is not allowed {when}"))
        handler = getattr(self, "_cmd_" + command.name.lower())
        reply: Reply = await handler(*command.args)
        return reply

    # -- AUTHORIZATION ---------------------------------------------------------------------------------

    async def _cmd_capa(self) -> Reply:
        return Reply(responses.multiline_lines("Capability list follows", self.capabilities()))

    def capabilities(self) -> Iterable[str]:
        if self.tls_available and not self.tls_active and self.state is State.AUTHORIZATION:
            return (*CAPABILITIES, "STLS")
        return CAPABILITIES

    async def _cmd_stls(self) -> Reply:
        if not self.tls_available:
            return Reply(responses.err("STLS is not available: this server has no TLS certificate (--tls)"))
        if self.tls_active:
            return Reply(responses.err("the connection is already encrypted"))
        return Reply(responses.ok("begin TLS negotiation"), start_tls=True)

    def _login_refusal(self, mechanism: str) -> Reply | None:
        """RFC 2595: with TLS configured, passwords wait for it (unless allowed); --require-tls: everything does."""
        if self.tls_active or not self.tls_available:
            return None
        if self.config.require_tls or (mechanism == "USER" and not self.config.allow_insecure_auth):
            return Reply(responses.err("[AUTH] use STLS first: this server does not take passwords in the clear"))
        return None

    async def _cmd_user(self, name: str) -> Reply:
        if (refusal := self._login_refusal("USER")) is not None:
            return refusal
        self._pending_user = name
        return Reply(responses.ok(f"send PASS for {name}"))

    async def _cmd_pass(self, password: str) -> Reply:
        name, self._pending_user = self._pending_user, None
        if name is None:
            return Reply(responses.err("send USER first"))
        return await self._login(Credentials("USER", name, password=password, peer_host=self.peer_host))

    async def _cmd_apop(self, name: str, digest: str) -> Reply:
        self._pending_user = None
        if (refusal := self._login_refusal("APOP")) is not None:
            return refusal
        if len(digest) != 32 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            return Reply(responses.err("APOP digest must be 32 hexadecimal digits"))
        return await self._login(Credentials("APOP", name, timestamp=self.timestamp, digest=digest.lower(),
                                             peer_host=self.peer_host))

    async def _login(self, credentials: Credentials) -> Reply:
        if not await self.authenticate(credentials):
            log.info("pop3 %s: login refused for %r (%s)", self.peer, credentials.username, credentials.mechanism)
            return Reply(responses.err("[AUTH] invalid user name or password"))
        name = credentials.username
        # The catch-all login's maildrop is all delivered mail; a login limited to mailbox patterns (the auth
        # file's third field) has the mail for them, as its IMAP INBOX; any other login its own address's.
        uids = await self.store.uids(mailbox=self.store.login_mailbox(
            None if name == self.config.catch_all_login else name))
        summaries = await self.store.summaries_by_uid(uids)
        self._maildrop = [_Entry(s.id, s.uid, s.size) for s in summaries]
        self.username = name
        self.state = State.TRANSACTION
        return Reply(responses.ok(f"{name} has {len(self._maildrop)} message(s)"))

    # -- TRANSACTION -----------------------------------------------------------------------------------

    async def _size(self, entry: _Entry) -> int:
        size = self.sizes.get(entry.uid)
        if size is None:
            raw = await self.store.raw(entry.id)
            if raw is None:
                return entry.stored_size
            size = responses.maildrop_octets(raw)
            self.sizes.put(entry.uid, size)
        return size

    async def _sizes(self, entries: list[_Entry]) -> list[int]:
        # A handful at a time: the store reads on a small thread pool, and a big maildrop should not
        # queue thousands of reads at once in front of other clients.
        sizes: list[int] = []
        for start in range(0, len(entries), 16):
            sizes += await asyncio.gather(*(self._size(e) for e in entries[start:start + 16]))
        return sizes

    def _live(self) -> list[tuple[int, _Entry]]:
        return [(n, e) for n, e in enumerate(self._maildrop, 1) if not e.deleted]

    def _entry(self, number_text: str) -> _Entry | str:
        """The live entry for a message number, or the reason it cannot be used."""
        number = parse_number(number_text)
        if number is None:
            return f"invalid message number {number_text!r}"
        if not 1 <= number <= len(self._maildrop):
            return f"no such message {number}, only {len(self._maildrop)} in maildrop"
        entry = self._maildrop[number - 1]
        if entry.deleted:
            return f"message {number} already deleted"
        return entry

    async def _cmd_stat(self) -> Reply:
        live = [e for _, e in self._live()]
        sizes = await self._sizes(live)
        return Reply(responses.ok(f"{len(live)} {sum(sizes)}"))

    async def _cmd_list(self, number_text: str | None = None) -> Reply:
        if number_text is not None:
            entry = self._entry(number_text)
            if isinstance(entry, str):
                return Reply(responses.err(entry))
            return Reply(responses.ok(responses.scan_listing(int(number_text), await self._size(entry))))
        live = self._live()
        sizes = await self._sizes([e for _, e in live])
        lines = [responses.scan_listing(n, size) for (n, _), size in zip(live, sizes, strict=True)]
        return Reply(responses.multiline_lines(f"{len(live)} messages ({sum(sizes)} octets)", lines))

    async def _cmd_uidl(self, number_text: str | None = None) -> Reply:
        if number_text is not None:
            entry = self._entry(number_text)
            if isinstance(entry, str):
                return Reply(responses.err(entry))
            return Reply(responses.ok(responses.scan_listing(int(number_text), entry.id)))
        lines = [responses.scan_listing(n, e.id) for n, e in self._live()]
        return Reply(responses.multiline_lines("unique-id listing follows", lines))

    async def _message_text(self, entry: _Entry) -> bytes | None:
        raw = await self.store.raw(entry.id)
        if raw is None:
            return None
        text = responses.normalize_crlf(raw)
        self.sizes.put(entry.uid, len(text))
        return text

    async def _cmd_retr(self, number_text: str) -> Reply:
        entry = self._entry(number_text)
        if isinstance(entry, str):
            return Reply(responses.err(entry))
        text = await self._message_text(entry)
        if text is None:
            return Reply(responses.err("[SYS/PERM] message was deleted by another client"))
        entry.retrieved = True
        return Reply(responses.multiline(f"{len(text)} octets", text))

    async def _cmd_top(self, number_text: str, lines_text: str) -> Reply:
        entry = self._entry(number_text)
        if isinstance(entry, str):
            return Reply(responses.err(entry))
        lines = parse_number(lines_text)
        if lines is None:
            return Reply(responses.err(f"invalid line count {lines_text!r}"))
        text = await self._message_text(entry)
        if text is None:
            return Reply(responses.err("[SYS/PERM] message was deleted by another client"))
        return Reply(responses.multiline("top of message follows", responses.top(text, lines)))

    async def _cmd_dele(self, number_text: str) -> Reply:
        entry = self._entry(number_text)
        if isinstance(entry, str):
            return Reply(responses.err(entry))
        entry.deleted = True
        return Reply(responses.ok(f"message {int(number_text)} deleted"))

    async def _cmd_rset(self) -> Reply:
        for entry in self._maildrop:
            entry.deleted = False
            entry.retrieved = False
        return Reply(responses.ok(f"maildrop has {len(self._maildrop)} message(s)"))

    async def _cmd_noop(self) -> Reply:
        return Reply(responses.ok())

    # -- QUIT and UPDATE -------------------------------------------------------------------------------

    async def _cmd_quit(self) -> Reply:
        if self.state is State.AUTHORIZATION:
            return Reply(responses.ok(f"{self.config.hostname} POP3 server signing off"), close=True)
        self.state = State.UPDATE
        await self._mark_retrieved()
        marked = [e.id for e in self._maildrop if e.deleted]
        if marked:
            try:
                await self.store.delete(marked)
            except Exception:
                log.exception("pop3 %s: deleting %d message(s) at QUIT failed", self.peer, len(marked))
                return Reply(responses.err("[SYS/TEMP] some deleted messages not removed"), close=True)
        return Reply(responses.ok(f"{self.config.hostname} POP3 server signing off "
                                  f"({len(marked)} message(s) deleted)"), close=True)

    async def finish(self) -> None:
        """The connection is over (QUIT, a drop, a timeout): what was retrieved is marked read, as on QUIT."""
        await self._mark_retrieved()

    async def _mark_retrieved(self) -> None:
        ids = [e.id for e in self._maildrop if e.retrieved and not e.deleted]
        for entry in self._maildrop:
            entry.retrieved = False
        if not ids:
            return
        try:
            await self.store.set_read(ids, True)
        except Exception as exc:  # e.g. the store is closing at shutdown: the messages stay unread, nothing else
            log.warning("pop3 %s: could not mark %d retrieved message(s) read: %s", self.peer, len(ids), exc)
