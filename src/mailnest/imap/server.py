"""The IMAP listener: asyncio streams in, whole commands (line plus literals) to the session, bytes out.

All socket handling lives here: line and literal framing with limits, continuation requests for synchronizing
literals, connection caps, and the deadlines: `idle_timeout` for a client to start its next command,
`command_timeout` for a command, once started, to arrive whole (each line, and each literal, within it), and
`idle_timeout` again for a client that stops reading. Protocol decisions are the session's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable

from ..auth import LoginChecker
from ..config import Config, Listen
from ..events import Hub
from ..limits import (
    ConnectionLimits,
    ConnectionObserver,
    client_address,
    closing_sessions,
    quiet_accept_errors,
)
from ..store.base import Store, StoreUnavailableError
from .cache import MessageCache
from .parser import literal_announcement, split_tag
from .responses import continuation, tagged, untagged
from .session import Authenticator, Session, accept_any
from .views import Views

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024  # one line of a command, literals excluded
_HOLD_BYTES = 64 * 1024  # replies of one command held back for a single write, up to this much
_DISCARD_LIMIT = 16 * 1024 * 1024  # past this much junk in one over-long line, the client is hung up on


class _Closed(Exception):
    """The client went away, timed out, or broke the framing beyond recovery."""

    def __init__(self, goodbye: bytes | None = None) -> None:
        super().__init__()
        self.goodbye = goodbye


class Connection:
    def __init__(self, config: Config, store: Store, hub: Hub, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, cache: MessageCache, views: Views,
                 authenticate: Authenticator = accept_any, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.reader = reader
        self.writer = writer
        self.timeout = config.idle_timeout
        self.peer = writer.get_extra_info("peername")
        self.tls_context = tls_context
        self.session = Session(config, store, hub, self.send, self.read_line, cache, views, authenticate,
                               peer_host=client_address(self.peer), tls_available=tls_context is not None,
                               tls_active=writer.get_extra_info("ssl_object") is not None,
                               prepare_tls=self._prepare_tls)
        self._held: list[bytes] | None = None  # replies held back while a command is answered (see send)
        self._held_size = 0
        # Literals may carry a whole message (APPEND); anything else stays small.
        self.max_literal = config.max_message_size + 64 * 1024

    def _hold(self) -> None:
        """From now on, replies are gathered instead of written, until `_release` (one write per command)."""
        self._held = []
        self._held_size = 0

    def _spill(self) -> bytes:
        held, self._held = self._held, None
        return b"".join(held) if held else b""

    async def _release(self) -> None:
        """Write what was held back, and stop holding."""
        data = self._spill()
        if data:
            await self.send(data)

    async def send(self, data: bytes) -> None:
        """Write and wait until the client takes it. While a command is being answered, small replies are held
        and written together with its tagged response (a socket write costs more than the rest of a small
        command); what is held is written before the session waits for the client."""
        if self._held is not None:
            if self._held_size + len(data) < _HOLD_BYTES:
                self._held.append(data)
                self._held_size += len(data)
                return
            held = self._spill()  # a big reply (a whole message) goes as it is, after what was held: not copied
            self._held = []
            self._held_size = 0
            if held:
                self.writer.write(held)
        self.writer.write(data)
        try:
            # a client that stops reading (half-open, or stuck) must not pin the session forever
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except TimeoutError:
            log.info("imap %s: the client stopped reading; disconnecting", self.peer)
            self.writer.transport.abort()
            raise _Closed() from None

    async def _line(self, start_within: float | None) -> bytes:
        """One line including its line break; an over-long line is discarded and reported.

        The line's first byte may take `start_within` seconds (None: as long as the client likes); from then on
        the whole line must arrive within `command_timeout`, so a client trickling bytes cannot hold a
        connection (slowloris)."""
        try:
            first = await asyncio.wait_for(self.reader.readexactly(1), start_within)
        except TimeoutError:
            raise _Closed(untagged("BYE Disconnected for inactivity")) from None
        except asyncio.IncompleteReadError:
            raise _Closed() from None
        if first == b"\n":
            return first
        try:
            async with asyncio.timeout(self.config.command_timeout):
                try:
                    return first + await self.reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as exc:
                    await self._discard_line(max(1, exc.consumed))
                    raise _LineTooLong() from None
        except TimeoutError:
            log.info("imap %s: command line not complete after %gs; disconnecting", self.peer,
                     self.config.command_timeout)
            raise _Closed(untagged(f"BYE Command not completed in time (limit {self.config.command_timeout:g}s)")
                          ) from None
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip() or first.strip():
                log.info("imap %s: connection closed in the middle of a command", self.peer)
            raise _Closed() from None

    async def _discard_line(self, consumed: int) -> None:
        """Skip the rest of an over-long line; the reader keeps what follows its line break."""
        discarded = 0
        while True:
            try:
                await self.reader.readexactly(consumed)
                discarded += consumed
                if discarded > _DISCARD_LIMIT:
                    raise _Closed(untagged("BYE Line too long"))
                await self.reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                consumed = max(1, exc.consumed)

    async def read_line(self, *, waiting: bool = False) -> bytes | None:
        """A further line for the session (AUTHENTICATE responses, IDLE's DONE); None when the client is gone.

        It belongs to a command under way, so it must start within `command_timeout`; `waiting` (IDLE) lets the
        client take as long as it likes, the session keeping its own deadline."""
        await self._release()  # the client may be waiting for what was said so far (a continuation request)
        try:
            return await self._line(None if waiting else self.config.command_timeout)
        except (_Closed, _LineTooLong):
            return None

    async def read_command(self) -> bytes | None:
        """A whole command: its lines and literals as received. None when a BAD was already answered."""
        data = bytearray()
        line_bytes = 0  # the command's own text; literals have their own limit
        while True:
            # the command's first line may wait for the idle timeout; what follows a literal is the same command
            line = await self._line(self.timeout if not data else self.config.command_timeout)
            data += line
            line_bytes += len(line)
            if line_bytes > MAX_LINE:
                raise _LineTooLong()
            announced = literal_announcement(line)
            if announced is None:
                return bytes(data)
            size, synchronizing = announced
            if size > self.max_literal:
                tag, _ = split_tag(bytes(data))
                if not synchronizing:
                    raise _Closed(untagged("BYE Literal too large"))
                await self.send(tagged(tag, "BAD", "Literal too large") if tag else untagged("BAD Literal too large"))
                return None
            if synchronizing:
                await self.send(continuation("Ready for literal data"))
            try:
                data += await asyncio.wait_for(self.reader.readexactly(size), self.config.command_timeout)
            except TimeoutError:
                log.info("imap %s: literal of %d bytes not complete after %gs; disconnecting", self.peer, size,
                         self.config.command_timeout)
                raise _Closed(untagged("BYE Timed out waiting for literal data")) from None
            except asyncio.IncompleteReadError:
                raise _Closed() from None

    def _prepare_tls(self) -> None:
        # Called before the tagged OK to STARTTLS goes out: stop reading so the client's TLS hello stays in the
        # socket for the TLS layer, and drop what was pipelined behind STARTTLS in the clear (RFC 3501 6.2.1).
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]
        self.reader._buffer.clear()  # type: ignore[attr-defined]

    async def _start_tls(self) -> None:
        assert self.tls_context is not None
        self.session.start_tls_after_reply = False
        try:
            await asyncio.wait_for(self.writer.start_tls(self.tls_context), 15)
        except (ssl.SSLError, TimeoutError, ConnectionError, OSError) as exc:
            log.info("imap %s: TLS negotiation failed: %s", self.peer, exc)
            raise _Closed() from None
        self.session.tls_active = True

    async def run(self) -> None:
        try:
            await self.send(self.session.greeting())
            while True:
                try:
                    command = await self.read_command()
                except _LineTooLong:
                    log.info("imap %s: line too long", self.peer)
                    await self.send(untagged(f"BAD Line too long (the limit is {MAX_LINE} bytes)"))
                    continue
                if command is None:
                    continue
                try:
                    self._hold()
                    try:
                        keep = await self.session.handle(command)
                    except BaseException:
                        held = self._spill()  # said before the failure: it goes first, without waiting on drain
                        if held and not self.writer.is_closing():
                            self.writer.write(held)
                        raise
                    await self._release()
                    if not keep:
                        break
                    if self.session.start_tls_after_reply:
                        await self._start_tls()
                except (ConnectionError, _Closed):
                    raise
                except StoreUnavailableError as exc:  # RFC 5530's UNAVAILABLE: try again later, no traceback
                    log.warning("imap %s: database unavailable: %s", self.peer, exc)
                    tag, _ = split_tag(command)
                    text = "[UNAVAILABLE] The mail store is unavailable, try again later"
                    await self.send(tagged(tag, "NO", text) if tag else untagged("NO " + text))
                except Exception:
                    log.exception("imap %s: command failed", self.peer)
                    tag, _ = split_tag(command)
                    await self.send(tagged(tag, "NO", "Internal server error") if tag
                                    else untagged("NO Internal server error"))
        except _Closed as closed:
            if closed.goodbye:
                try:
                    await self.send(closed.goodbye)
                except ConnectionError:
                    pass
        except ConnectionError:
            pass
        finally:
            await self.session.close()
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


class _LineTooLong(Exception):
    pass


async def start_imap(config: Config, store: Store, hub: Hub, listen: Listen, *,
                     authenticate: Authenticator = accept_any, tls_context: ssl.SSLContext | None = None,
                     implicit_tls: bool = False, cache: MessageCache | None = None,
                     observer: ConnectionObserver | None = None) -> asyncio.Server:
    """Listen for IMAP on `listen` (port 0 picks a free port); returns the asyncio server.

    `authenticate(user, password, peer_host)` (or `(user, password)`) decides LOGIN and AUTHENTICATE PLAIN; by
    default anyone gets in. With a TLS context STARTTLS is offered; with `implicit_tls` the whole connection is
    TLS (IMAPS, port 993 style). A connection over `max_connections` (or `max_connections_per_client` from its
    address) is answered `* BYE Too many connections` and closed. `cache` (one per listener by default) keeps
    derived FETCH answers. `observer` (the metrics) is told of each connection admitted, closed and refused."""
    cache = cache if cache is not None else MessageCache()
    views = Views(store, hub)
    open_writers: set[asyncio.StreamWriter] = set()
    limits = ConnectionLimits("IMAP", config.max_connections, config.max_connections_per_client, log, observer)
    authenticate = _with_peer_host(authenticate)
    quiet_accept_errors(asyncio.get_running_loop(), log)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        try:
            await Connection(config, store, hub, reader, writer, cache, views, authenticate, tls_context).run()
        finally:
            open_writers.discard(writer)

    implicit_context = tls_context if implicit_tls else None
    server = await asyncio.start_server(limits.serve(untagged("BYE Too many connections"), client), listen.host,
                                        listen.port, limit=MAX_LINE, ssl=implicit_context,
                                        ssl_handshake_timeout=15 if implicit_context else None)

    def end_sessions() -> None:
        for writer in tuple(open_writers):
            if not writer.is_closing():
                writer.write(untagged("BYE Server shutting down"))
                writer.close()

    server = closing_sessions(server, end_sessions)
    log.info("IMAP listening on %s", ", ".join(str(s.getsockname()[:2]) for s in server.sockets))
    return server


def checking_authenticator(checker: LoginChecker) -> Authenticator:
    """LOGIN and AUTHENTICATE PLAIN decided by mailnest's accounts, slowed down by client address and user."""

    async def authenticate(user: str, password: str, peer_host: str) -> bool:
        return await checker.password("IMAP", user, password, peer_host=peer_host)

    return authenticate


def _with_peer_host(authenticate: Callable[..., Awaitable[bool]]) -> Authenticator:
    """Embedding callers may pass `authenticate(user, password)`; the session always gives the client address."""
    try:
        parameters = inspect.signature(authenticate).parameters.values()
    except (TypeError, ValueError):
        return authenticate
    if sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters) >= 3 or any(
            p.kind is p.VAR_POSITIONAL for p in parameters):
        return authenticate

    async def without_peer_host(user: str, password: str, peer_host: str) -> bool:
        del peer_host
        return bool(await authenticate(user, password))

    return without_peer_host
