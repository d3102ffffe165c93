"""One IMAP connection's state machine (RFC 3501 section 3) over the Store.

The session never touches a socket: the server hands it whole commands and gives it two callables, one to
send bytes and one to read a further client line (for AUTHENTICATE and IDLE). Every command is checked
against the table of what the current state allows before it runs.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

from ..config import Config
from ..events import Hub, Subscription
from ..store.base import FolderError, Store, View
from . import idle, mailboxes
from .cache import MessageCache
from .fetch import Fetcher
from .mailboxes import DELIMITER
from .parser import Command, ParseError, parse_command
from .responses import (
    PERMANENT_FLAGS,
    SYSTEM_FLAG_ORDER,
    capability_line,
    continuation,
    tagged,
    untagged,
)
from .search import Searcher
from .selected import Selected, SequenceError
from .views import Views

log = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]
ReadLine = Callable[..., Awaitable[bytes | None]]  # read_line(waiting=False): IDLE waits with its own deadline


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
_AUTHENTICATED = _ANY | {
    "ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB",
    "STATUS", "APPEND", "NAMESPACE", "IDLE",
}
ALLOWED: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: _ANY | {"LOGIN", "AUTHENTICATE", "STARTTLS"},
    State.AUTHENTICATED: _AUTHENTICATED,
    State.SELECTED: _AUTHENTICATED | {
        "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
        "UID FETCH", "UID SEARCH", "UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE",
    },
    State.LOGOUT: frozenset(),
}
# Sequence numbers must not shift under a client in the middle of these (RFC 3501 section 7.4.1).
_NO_EXPUNGE_AFTER = frozenset({"FETCH", "STORE", "SEARCH"})


Authenticator = Callable[[str, str, str], Awaitable[bool]]  # (user, password, client address)


async def accept_any(user: str, password: str, peer_host: str = "") -> bool:
    """The default login check: any user name with any password (mailnest is a development mail server).
    The runtime passes its account checker instead when accounts are configured."""
    del password, peer_host
    return bool(user)


class Reply(Exception):
    """Ends a command early with a tagged status."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class Session:
    def __init__(self, config: Config, store: Store, hub: Hub, send: Send, read_line: ReadLine,
                 cache: MessageCache, views: Views, authenticate: Authenticator = accept_any, *,
                 peer_host: str = "", tls_available: bool = False, tls_active: bool = False,
                 prepare_tls: Callable[[], None] | None = None) -> None:
        self.config = config
        self.peer_host = peer_host  # the client's address: failed logins are slowed down per address
        self.tls_available = tls_available  # a certificate is configured: STARTTLS can be offered
        self.tls_active = tls_active
        self.prepare_tls = prepare_tls  # stops reading, so the client's TLS hello waits for the TLS layer
        self.start_tls_after_reply = False
        self.authenticate = authenticate  # the one place a login is decided
        self.cache = cache  # shared by the listener's sessions, like the views
        self.views = views
        self.store = store  # a Store with ImapStoreMixin's imap_* methods
        self.hub = hub
        self.send = send
        self.read_line = read_line
        self.state = State.NOT_AUTHENTICATED
        self.login: str | None = None  # None is the catch-all login
        self.user = ""
        self.selected: Selected | None = None
        self.subscription: Subscription | None = None
        self.fetcher = Fetcher(self)
        self.searcher = Searcher(self)

    # -- framing -----------------------------------------------------------------------------------------

    def capabilities(self) -> str:
        return capability_line(self.state is not State.NOT_AUTHENTICATED,
                               starttls=self.tls_available and not self.tls_active,
                               login_disabled=self._login_disabled())

    def _login_disabled(self) -> bool:
        """With TLS configured, passwords wait for it unless allowed (RFC 3501 6.2.3); --require-tls: always."""
        if self.tls_active or not self.tls_available:
            return False
        return self.config.require_tls or not self.config.allow_insecure_auth

    def greeting(self) -> bytes:
        return untagged(f"OK [CAPABILITY {self.capabilities()}] {self.config.hostname} IMAP4rev1 ready")

    async def handle(self, data: bytes) -> bool:
        """Run one whole command; False once the connection should close."""
        try:
            command = parse_command(data)
        except ParseError as exc:
            log.info("imap: bad command: %s", exc.reason)
            if exc.tag is None:
                await self.send(untagged(f"BAD {exc.reason}"))
            else:
                await self.send(tagged(exc.tag, exc.status, exc.reason))
            return True
        if command.name not in ALLOWED[self.state]:
            log.info("imap: %s refused in the %s state", command.name, self.state.value)
            await self.send(tagged(command.tag, "BAD", f"{command.name} is not allowed in the {self.state.value} state"))
            return True
        handler = getattr(self, "cmd_" + command.name.replace(" ", "_").lower())
        try:
            status, text = await handler(command)
        except Reply as reply:
            status, text = reply.status, reply.text
        except FolderError as exc:
            status, text = "NO", str(exc)
        except SequenceError as exc:
            status, text = "BAD", str(exc)
        if self.state is State.SELECTED and command.name not in ("LOGOUT", "IDLE"):
            await self.announce(allow_expunge=command.name not in _NO_EXPUNGE_AFTER)
        await self.send(tagged(command.tag, status, text))
        return self.state is not State.LOGOUT

    async def close(self) -> None:
        self.state = State.LOGOUT
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None

    # -- keeping the client up to date ---------------------------------------------------------------------

    def _drain_events(self) -> None:
        sub = self.subscription
        if sub is None or self.selected is None:
            return
        while sub.get_nowait() is not None:
            self.selected.dirty = True
        if sub.lagged:
            sub.lagged = False
            self.selected.dirty = True

    async def announce(self, *, allow_expunge: bool, force: bool = False) -> None:
        """Send what changed in the selected mailbox since the client last heard."""
        selected = self.selected
        if selected is None:
            return
        self._drain_events()
        if not (selected.dirty or force or (allow_expunge and selected.gone)):
            return
        selected.dirty = False
        try:
            view = await self.views.get(self.login, selected.name)
        except FolderError:  # deleted or renamed by another session: every message is gone
            view = View([], [], [], [], 0, 0)
        recent: list[int] = []
        if view.uids and view.uids[-1] > selected.max_uid and not selected.readonly:
            mark = await self.views.claim_recent(self.login, selected.name, view.uids[-1])
            recent = view.uids[bisect.bisect_right(view.uids, max(mark, selected.max_uid)):]
        lines = selected.update(view, allow_expunge=allow_expunge, recent=recent)
        if lines:
            await self.send(b"".join(lines))

    def require_selected(self) -> Selected:
        if self.selected is None:
            raise Reply("BAD", "No mailbox selected")
        return self.selected

    # -- any state -----------------------------------------------------------------------------------------

    async def cmd_capability(self, cmd: Command) -> tuple[str, str]:
        await self.send(untagged("CAPABILITY " + self.capabilities()))
        return "OK", "Capability completed"

    async def cmd_noop(self, cmd: Command) -> tuple[str, str]:
        return "OK", "NOOP completed"

    async def cmd_logout(self, cmd: Command) -> tuple[str, str]:
        await self.send(untagged("BYE Logging out"))
        await self.close()
        return "OK", "Logout completed"

    async def cmd_id(self, cmd: Command) -> tuple[str, str]:
        await self.send(untagged('ID ("name" "mailnest")'))
        return "OK", "ID completed"

    # -- not authenticated ---------------------------------------------------------------------------------

    async def _logged_in(self, user: str, password: str) -> tuple[str, str]:
        if self._login_disabled():
            raise Reply("NO", "[PRIVACYREQUIRED] Use STARTTLS first: this server takes no passwords in the clear")
        if not await self.authenticate(user, password, self.peer_host):
            raise Reply("NO", "[AUTHENTICATIONFAILED] Authentication failed")
        self.user = user
        self.login = None if user == self.config.catch_all_login else user.lower()
        self.state = State.AUTHENTICATED
        log.info("imap: %s logged in", user)
        return "OK", f"[CAPABILITY {capability_line(True)}] Logged in"

    async def cmd_login(self, cmd: Command) -> tuple[str, str]:
        return await self._logged_in(str(cmd.args["user"]), str(cmd.args["password"]))

    async def cmd_starttls(self, cmd: Command) -> tuple[str, str]:
        if not self.tls_available or self.prepare_tls is None:
            return "BAD", "STARTTLS is not available: this server has no TLS certificate (--tls)"
        if self.tls_active:
            return "BAD", "The connection is already encrypted"
        self.prepare_tls()
        self.start_tls_after_reply = True
        return "OK", "Begin TLS negotiation now"

    async def cmd_authenticate(self, cmd: Command) -> tuple[str, str]:
        if cmd.args["mechanism"] != "PLAIN":
            return "NO", "Unsupported authentication mechanism"
        initial = cmd.args.get("initial")
        assert initial is None or isinstance(initial, str)
        if initial is None:
            await self.send(continuation())
            line = await self.read_line()
            if line is None:
                raise Reply("BAD", "Connection closed during authentication")
            initial = line.strip().decode("ascii", "replace")
        if initial == "*":
            return "BAD", "Authentication canceled"
        try:
            decoded = base64.b64decode(initial if initial != "=" else "", validate=True)
            _authzid, user, password = decoded.decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return "BAD", "Invalid PLAIN response"
        return await self._logged_in(user, password)

    # -- authenticated ---------------------------------------------------------------------------------------

    async def cmd_enable(self, cmd: Command) -> tuple[str, str]:
        await self.send(untagged("ENABLED"))  # no extension here changes behaviour when enabled
        return "OK", "Enabled"

    async def cmd_namespace(self, cmd: Command) -> tuple[str, str]:
        await self.send(untagged(f'NAMESPACE (("" "{DELIMITER}")) NIL NIL'))
        return "OK", "Namespace completed"

    async def _select(self, cmd: Command, readonly: bool) -> tuple[str, str]:
        await self.unselect()
        name = str(cmd.args["mailbox"])
        subscription = self.hub.subscribe()  # before reading, so that no change slips between the two
        try:
            view = await self.views.get(self.login, name)
        except FolderError:
            subscription.close()
            raise
        self.subscription = subscription
        max_uid = view.uids[-1] if view.uids else 0
        mark = view.recent_mark
        if not readonly and max_uid > mark:
            mark = await self.views.claim_recent(self.login, name, max_uid)
        start = bisect.bisect_right(view.uids, mark)
        selected = Selected(name, readonly, view, view.uids[start:])
        uidnext = max(view.uidnext, max_uid + 1)
        lines = [
            untagged(f"FLAGS ({' '.join(SYSTEM_FLAG_ORDER)})"),
            untagged(f"OK [PERMANENTFLAGS ({' '.join(PERMANENT_FLAGS) if not readonly else ''})] Flags permitted"),
            untagged(f"{selected.exists} EXISTS"),
            untagged(f"{len(selected.recent)} RECENT"),
        ]
        unseen = selected.first_unseen()
        if unseen:
            lines.append(untagged(f"OK [UNSEEN {unseen}] First unseen"))
        lines += [
            untagged(f"OK [UIDVALIDITY {self.store.uidvalidity}] UIDs valid"),
            untagged(f"OK [UIDNEXT {uidnext}] Predicted next UID"),
        ]
        await self.send(b"".join(lines))
        self.selected = selected
        self.state = State.SELECTED
        return "OK", "[READ-ONLY] Examine completed" if readonly else "[READ-WRITE] Select completed"

    async def cmd_select(self, cmd: Command) -> tuple[str, str]:
        return await self._select(cmd, readonly=False)

    async def cmd_examine(self, cmd: Command) -> tuple[str, str]:
        return await self._select(cmd, readonly=True)

    async def unselect(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        self.selected = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    # mailbox management lives in mailboxes.py
    cmd_create = mailboxes.create
    cmd_delete = mailboxes.delete
    cmd_rename = mailboxes.rename
    cmd_subscribe = mailboxes.subscribe
    cmd_unsubscribe = mailboxes.unsubscribe
    cmd_list = mailboxes.list_
    cmd_lsub = mailboxes.lsub
    cmd_status = mailboxes.status

    async def cmd_append(self, cmd: Command) -> tuple[str, str]:
        name = str(cmd.args["mailbox"])
        message = cmd.arg("message", bytes)
        if not message:
            return "NO", "Empty message"
        if len(message) > self.config.max_message_size:
            return "NO", "[LIMIT] Message too large"
        date = None
        if cmd.args.get("date"):
            year, month, day, hour, minute, second, offset = cmd.arg("date", tuple)
            try:
                date = datetime(year, month, day, hour, minute, second, tzinfo=timezone(timedelta(minutes=offset)))
            except ValueError:
                return "BAD", "Invalid date-time"
            date = date.astimezone(UTC)
        flags = tuple(f for f in cmd.arg("flags", tuple) if f != "\\Recent")
        uid = await self.store.imap_append(self.login, name, message, flags, date)
        if self.selected is not None and self.selected.name == name:
            self.selected.dirty = True
        return "OK", f"[APPENDUID {self.store.uidvalidity} {uid}] Append completed"

    cmd_idle = idle.idle

    # -- selected ------------------------------------------------------------------------------------------

    async def cmd_check(self, cmd: Command) -> tuple[str, str]:
        if self.selected is not None:
            self.selected.dirty = True
        return "OK", "Check completed"

    async def cmd_close(self, cmd: Command) -> tuple[str, str]:
        selected = self.require_selected()
        if not selected.readonly:
            await self._expunge(selected, None, announce=False)
        await self.unselect()
        return "OK", "Close completed"

    async def cmd_unselect(self, cmd: Command) -> tuple[str, str]:
        await self.unselect()
        return "OK", "Unselect completed"

    async def _expunge(self, selected: Selected, only: set[int] | None, *, announce: bool = True) -> None:
        if selected.readonly:
            raise Reply("NO", "Mailbox is read-only")
        await self.announce(allow_expunge=True, force=True)
        doomed = [uid for uid in selected.uids
                  if "\\Deleted" in selected.flags[uid] and (only is None or uid in only)]
        if not doomed:
            return
        removed = await self.store.imap_expunge(doomed)
        if announce:
            await self.send(b"".join(selected.forget(removed)))
        else:
            selected.forget(removed)

    async def cmd_expunge(self, cmd: Command) -> tuple[str, str]:
        await self._expunge(self.require_selected(), None)
        return "OK", "Expunge completed"

    async def cmd_uid_expunge(self, cmd: Command) -> tuple[str, str]:
        selected = self.require_selected()
        wanted = {uid for _, uid in selected.resolve(cmd.sequence_set, True)}
        await self._expunge(selected, wanted)
        return "OK", "Expunge completed"

    async def cmd_search(self, cmd: Command) -> tuple[str, str]:
        return await self.searcher.run(cmd)

    cmd_uid_search = cmd_search

    async def cmd_fetch(self, cmd: Command) -> tuple[str, str]:
        return await self.fetcher.fetch(cmd)

    cmd_uid_fetch = cmd_fetch

    async def cmd_store(self, cmd: Command) -> tuple[str, str]:
        return await self.fetcher.store_flags(cmd)

    cmd_uid_store = cmd_store

    async def _copy(self, cmd: Command, move: bool) -> tuple[str, str]:
        selected = self.require_selected()
        if move and selected.readonly:
            return "NO", "Mailbox is read-only"
        pairs = selected.resolve(cmd.sequence_set, cmd.uid)
        target = str(cmd.args["mailbox"])
        copied = await self.store.imap_copy([uid for _, uid in pairs], self.login, target, move=move)
        if target == selected.name:
            selected.dirty = True
        if not copied:
            return "OK", ("Move" if move else "Copy") + " completed (no messages)"
        code = (f"COPYUID {self.store.uidvalidity} {_uid_set([s for s, _ in copied])} "
                f"{_uid_set([d for _, d in copied])}")
        if not move:
            return "OK", f"[{code}] Copy completed"
        await self.send(untagged(f"OK [{code}] Moved"))
        await self.send(b"".join(selected.forget([s for s, _ in copied])))
        return "OK", "Move completed"

    async def cmd_copy(self, cmd: Command) -> tuple[str, str]:
        return await self._copy(cmd, move=False)

    cmd_uid_copy = cmd_copy

    async def cmd_move(self, cmd: Command) -> tuple[str, str]:
        return await self._copy(cmd, move=True)

    cmd_uid_move = cmd_move


def _uid_set(uids: list[int]) -> str:
    """Compact `1:3,7` form, keeping the given order (COPYUID pairs source and destination by position)."""
    out: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


__all__ = ["ALLOWED", "DELIMITER", "Authenticator", "Session", "State", "accept_any"]
