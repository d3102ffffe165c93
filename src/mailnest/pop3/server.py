"""The POP3 listener: asyncio streams in, Session replies out. The only POP3 module that touches sockets.

Deadlines: `idle_timeout` for a client to start its next command (or to read a reply), `command_timeout` for a
command line, once started, to arrive whole. Connections over `max_connections` (or `max_connections_per_client`
from one address) are answered `-ERR [SYS/TEMP] too many connections` and closed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time

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
from . import responses
from .parser import MAX_LINE
from .responses import apop_digest
from .session import Authenticator, Credentials, Reply, Session, SizeCache, accept_any

log = logging.getLogger(__name__)


class _LineTooLong(Exception):
    pass


class _CommandTooSlow(Exception):
    pass


async def read_command_line(reader: asyncio.StreamReader, idle_timeout: float, command_timeout: float) -> bytes:
    """The next command line: its first byte may take `idle_timeout` (TimeoutError after that), the rest of it
    must follow within `command_timeout` (_CommandTooSlow), so a client trickling bytes cannot hold a session."""
    try:
        first = await asyncio.wait_for(reader.readexactly(1), idle_timeout)
    except asyncio.IncompleteReadError:
        return b""
    if first == b"\n":
        return first
    try:
        async with asyncio.timeout(command_timeout):
            rest = await read_line(reader)
    except TimeoutError:
        raise _CommandTooSlow from None
    return first + rest if rest else first


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """One line with its LF, b"" at end of stream; raises _LineTooLong after discarding an overlong line.

    The reader's limit is MAX_LINE, so a client cannot make us buffer more than that: the rest of an overlong
    line is read and thrown away up to its LF, and the next line is a fresh command.
    """
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # a last line without LF is still a command; b"" means the client left
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:
        try:
            await reader.readexactly(consumed)
            await reader.readuntil(b"\n")
            raise _LineTooLong
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed
        except asyncio.IncompleteReadError:
            return b""


def new_timestamp(hostname: str) -> str:
    """An APOP banner timestamp: unique per connection (RFC 1939 section 7), no clock or pid leaks needed."""
    return f"<{secrets.token_hex(8)}.{int(time.time())}@{hostname}>"


class _Connections:
    """The open client streams of one listener, so that closing the listener also ends its sessions.

    Without this, `Server.wait_closed()` (which on Python 3.12+ waits for every connection) would hang for
    up to the idle timeout behind a client that simply stays logged in.
    """

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()

    def close_all(self) -> None:
        for writer in tuple(self.writers):
            writer.transport.abort()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, config: Config, store: Store,
                 sizes: SizeCache, authenticate: Authenticator, connections: _Connections,
                 tls_context: ssl.SSLContext | None) -> None:
    peername = writer.get_extra_info("peername")
    peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername or "")
    session = Session(store, config, timestamp=new_timestamp(config.hostname), authenticate=authenticate,
                      sizes=sizes, peer=peer, peer_host=client_address(peername), tls_available=tls_context is not None,
                      tls_active=writer.get_extra_info("ssl_object") is not None)
    connections.writers.add(writer)
    try:
        writer.write(session.greeting())
        await writer.drain()
        while True:
            try:
                line = await read_command_line(reader, config.idle_timeout, config.command_timeout)
            except TimeoutError:
                log.info("pop3 %s: idle for %ss, disconnecting", peer, config.idle_timeout)
                writer.write(responses.err("disconnected for inactivity"))
                await writer.drain()
                break
            except _CommandTooSlow:
                log.info("pop3 %s: command line not complete after %gs, disconnecting", peer, config.command_timeout)
                writer.write(responses.err(f"command not completed in time (limit {config.command_timeout:g}s)"))
                await writer.drain()
                break
            except _LineTooLong:
                log.info("pop3 %s: line longer than %d octets refused", peer, MAX_LINE)
                writer.write(responses.err(f"line too long (limit {MAX_LINE} octets)"))
                await writer.drain()
                continue
            if not line:
                break
            try:
                reply = await session.handle_line(line)
            except StoreUnavailableError as exc:
                log.warning("pop3 %s: database unavailable: %s", peer, exc)
                reply = Reply(responses.err("[SYS/TEMP] the mail store is unavailable, try again later"))
            except Exception:
                # A store failure ends this command, never the listener; the session state is unchanged.
                log.exception("pop3 %s: command failed", peer)
                reply = Reply(responses.err("[SYS/TEMP] internal error, try again"))
            upgrade = reply.start_tls and tls_context is not None
            if upgrade:
                # Stop reading before the +OK goes out, so the client's TLS hello stays in the socket for the TLS
                # layer; anything already buffered was pipelined behind STLS in the clear: drop it (RFC 2595).
                writer.transport.pause_reading()  # type: ignore[attr-defined]
                reader._buffer.clear()  # type: ignore[attr-defined]
            writer.write(reply.data)
            # A client that stops reading mid-RETR must not hold the session (and its buffer) forever.
            await asyncio.wait_for(writer.drain(), config.idle_timeout)
            if reply.close:
                break
            if upgrade:
                assert tls_context is not None
                try:
                    await asyncio.wait_for(writer.start_tls(tls_context), 15)
                except (ssl.SSLError, TimeoutError, ConnectionError, OSError) as exc:
                    log.info("pop3 %s: TLS negotiation failed: %s", peer, exc)
                    break
                session.tls_active = True
    except TimeoutError:
        log.info("pop3 %s: client stopped reading for %ss, disconnecting", peer, config.idle_timeout)
    except (ConnectionError, OSError) as exc:
        log.debug("pop3 %s: connection lost: %s", peer, exc)
    finally:
        connections.writers.discard(writer)
        try:
            await session.finish()  # what RETR retrieved is marked read, however the session ended
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


async def start_pop3(config: Config, store: Store, hub: Hub, listen: Listen, *,
                     authenticate: Authenticator = accept_any, tls_context: ssl.SSLContext | None = None,
                     implicit_tls: bool = False, observer: ConnectionObserver | None = None) -> asyncio.Server:
    """Bind a POP3 listener on `listen` (port 0 allowed; read the bound port from `server.sockets`).

    With a TLS context, STLS is offered; with `implicit_tls` the whole connection is TLS (POP3S, port 995 style).
    `observer` (the metrics) is told of each connection admitted, closed and refused.
    """
    sizes = SizeCache()
    hub.add_listener(sizes.on_event)
    connections = _Connections()
    limits = ConnectionLimits("POP3", config.max_connections, config.max_connections_per_client, log, observer)
    quiet_accept_errors(asyncio.get_running_loop(), log)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve(reader, writer, config=config, store=store, sizes=sizes, authenticate=authenticate,
                     connections=connections, tls_context=tls_context)

    implicit_context = tls_context if implicit_tls else None
    server = await asyncio.start_server(limits.serve(responses.err("[SYS/TEMP] too many connections"), on_connect),
                                        listen.host, listen.port, limit=MAX_LINE, ssl=implicit_context,
                                        ssl_handshake_timeout=15 if implicit_context else None)
    server = closing_sessions(server, connections.close_all)
    log.info("POP3 listening on %s", ", ".join(str(s.getsockname()[:2]) for s in server.sockets))
    return server


def checking_authenticator(checker: LoginChecker) -> Authenticator:
    """USER/PASS and APOP decided by mailnest's accounts (any credentials unless an auth file is given), slowed
    down by client address and user."""

    async def authenticate(offered: Credentials) -> bool:
        if offered.mechanism == "APOP":
            timestamp = offered.timestamp or ""
            return await checker.digest("POP3", offered.username, offered.digest or "",
                                        lambda secret: apop_digest(timestamp, secret), peer_host=offered.peer_host)
        return await checker.password("POP3", offered.username, offered.password or "", peer_host=offered.peer_host)

    return authenticate
