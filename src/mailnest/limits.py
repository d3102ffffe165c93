"""Connection caps for the listeners, and quiet logging of what a flood of clients causes: socket glue shared by
the SMTP, IMAP and POP3 listeners (their server.py modules), kept out of the pure protocol modules.

One client must not take a listener from the others: each listener admits at most `max_connections` open
connections, and at most `max_connections_per_client` from one client address. Refusals (and the accept errors
that running out of file descriptors causes) come in floods, so they are logged at most once per interval with a
count of what was left out, never as one traceback per connection.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

LOG_INTERVAL = 10.0  # seconds between two log lines about the same kind of trouble

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RateLimitedLog:
    """Logs the first event of a kind at once, then at most one line per interval for that kind, saying how many
    more there were. Kinds are independent: a flood of refusals does not hide a timeout."""

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] += 1
            return
        left_out = self._suppressed.pop(kind, 0)
        if left_out and last is not None:
            message += " (and %d more like it in the last %.0fs)"
            args = (*args, left_out, now - last)
        self._last[kind] = now
        self.logger.warning(message, *args)

    def left_out(self, kind: str) -> int:
        """How many events of `kind` were not logged since its last line."""
        return self._suppressed[kind]


class ConnectionObserver(Protocol):
    """Told of each connection a listener admits, frees and refuses (the metrics, for one listener)."""

    def opened(self) -> None: ...

    def closed(self) -> None: ...

    def refused(self) -> None: ...


class TooManyConnections(Exception):
    """A connection over a cap; the text says which cap, for the protocol's refusal."""


class ConnectionLimits:
    """The open connections of one listener, in total and by client address."""

    def __init__(self, protocol: str, total: int, per_client: int, logger: logging.Logger,
                 observer: ConnectionObserver | None = None) -> None:
        self.protocol = protocol
        self.observer = observer
        self.total = total
        self.per_client = per_client
        self.open = 0
        self.by_client: Counter[str] = Counter()
        self._refusals = RateLimitedLog(logger)

    def admit(self, client: str) -> Slot:
        """Count a new connection in, or refuse it with TooManyConnections (and log that, rate-limited)."""
        over = self.open >= self.total or self.by_client[client] >= self.per_client
        if over and self.observer is not None:
            self.observer.refused()
        if self.open >= self.total:
            self._refusals.warning("refused", "%s: refused a connection from %s: %d connections are open, the limit "
                                   "is %d (--max-connections)", self.protocol, client, self.open, self.total)
            raise TooManyConnections(f"too many connections (at most {self.total})")
        if self.by_client[client] >= self.per_client:
            self._refusals.warning("refused", "%s: refused a connection from %s: it has %d connections open, the "
                                   "limit per client is %d (--max-connections-per-client)", self.protocol, client,
                                   self.by_client[client], self.per_client)
            raise TooManyConnections(f"too many connections from {client} (at most {self.per_client})")
        self.open += 1
        self.by_client[client] += 1
        if self.observer is not None:
            self.observer.opened()
        return Slot(self, client)

    def _free(self, client: str) -> None:
        if self.observer is not None:
            self.observer.closed()
        self.open -= 1
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]

    def serve(self, goodbye: bytes, handler: StreamHandler) -> StreamHandler:
        """An `asyncio.start_server` callback: a connection over a cap is told `goodbye` and closed; an admitted
        one runs `handler` and gives its place back however the handler ends (returns, raises, is cancelled)."""

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                slot = self.admit(client_address(writer.get_extra_info("peername")))
            except TooManyConnections:
                await refuse(writer, goodbye)
                return
            try:
                await handler(reader, writer)
            finally:
                slot.release()

        return client


class Slot:
    """One admitted connection's place in its listener's counts; `release` gives it back, once however many
    times it is called (a connection can end by more than one path)."""

    def __init__(self, limits: ConnectionLimits, client: str) -> None:
        self.client = client
        self._limits: ConnectionLimits | None = limits

    def release(self) -> None:
        if self._limits is not None:
            self._limits._free(self.client)
            self._limits = None


# asyncio's context for EMFILE, ENFILE, ENOBUFS and ENOMEM on accept(); it then retries every second.
_ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_FILTER_MARK = "_mailnest_accept_errors_quiet"


def _is_accept_error(context: dict[str, Any]) -> bool:
    error = context.get("exception")
    return context.get("message") == _ACCEPT_OUT_OF_RESOURCES or (
        "socket" in context and isinstance(error, OSError) and error.errno in _OUT_OF_RESOURCES
        and str(context.get("message", "")).startswith("socket.accept()"))


def _is_retry_after_close(context: dict[str, Any]) -> bool:
    """asyncio's accept retry firing for a listener that was closed meanwhile.

    On an accept error asyncio schedules a retry one second later, once per connection still waiting (up to the
    backlog), and closing the server does not cancel them: each one would log a traceback ("Invalid file
    descriptor: -1") when a listener stops during an out-of-file-descriptors episode."""
    handle = context.get("handle")
    callback = getattr(handle, "_callback", None)
    args: tuple[Any, ...] = getattr(handle, "_args", None) or ()
    if getattr(callback, "__name__", "") != "_start_serving" or len(args) < 2:
        return False
    try:
        return bool(args[1].fileno() == -1)
    except (AttributeError, OSError, ValueError):
        return False


def _where(context: dict[str, Any]) -> str:
    try:
        host, port = context["socket"].getsockname()[:2]
    except (KeyError, AttributeError, OSError, TypeError, ValueError):
        return ""
    return f" on {host}:{port}"


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, logger: logging.Logger) -> None:
    """Log asyncio's accept errors (out of file descriptors, buffers or memory) as one rate-limited line per
    listening socket, for every listener on the loop (SMTP, IMAP, POP3 and the HTTP server alike).

    asyncio already pauses accepting for a second after such an error and retries; what it does not do is keep
    quiet: each retry logs a full traceback through the loop's exception handler. Other exceptions still go to
    the handler that was installed before. Installing twice on one loop changes nothing.
    """
    previous = loop.get_exception_handler()
    if getattr(previous, _FILTER_MARK, False):
        return
    accept_errors = RateLimitedLog(logger)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _is_accept_error(context):
            where = _where(context)
            accept_errors.warning(f"accept{where}", "cannot accept connections%s: %s; new clients wait until "
                                  "connections close (raise `ulimit -n` or lower --max-connections)", where,
                                  context.get("exception"))
            return
        if _is_retry_after_close(context):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    setattr(handler, _FILTER_MARK, True)
    loop.set_exception_handler(handler)


async def refuse(writer: asyncio.StreamWriter, goodbye: bytes) -> None:
    """Say why and hang up, without waiting on a client that does not read."""
    try:
        writer.write(goodbye)
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1)
    except (TimeoutError, ConnectionError, OSError):
        writer.transport.abort()


def client_address(peername: object) -> str:
    """The host part of a peer name (an IPv4 or IPv6 address); the whole name for other kinds of socket."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername or "")


class _ClosingSessions:
    """A listening server whose close() also ends the sessions it accepted (asyncio.Server has no hook for that,
    and uvloop's server does not let its close be replaced); every other attribute is the server's own."""

    def __init__(self, server: asyncio.AbstractServer, end_sessions: Callable[[], None]) -> None:
        self._server = server
        self._end_sessions = end_sessions

    def close(self) -> None:
        self._server.close()
        self._end_sessions()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def closing_sessions(server: asyncio.Server, end_sessions: Callable[[], None]) -> asyncio.Server:
    """`server`, whose close() then calls `end_sessions` too; handed on as the asyncio.Server it stands for."""
    return cast(asyncio.Server, _ClosingSessions(server, end_sessions))
