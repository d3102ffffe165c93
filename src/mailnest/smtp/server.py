"""The SMTP listener: aiosmtpd's protocol with a DATA phase that reads large chunks, on our own loop.

aiosmtpd reads DATA one line at a time, which caps large messages at a few per second. `CaptureSMTP.smtp_DATA`
reads up to the next ".\r\n" at a time (a multi-kilobyte chunk, usually the whole message) while keeping
aiosmtpd's semantics: the message ends only at CRLF "." CRLF (a bare LF or bare CR before the dot does not end
it, which is what defeats SMTP smuggling), leading dots are unstuffed, a message over the size limit is read to
its end, discarded and refused with 552, and a client that disconnects mid-DATA leaves nothing behind.

Line endings inside DATA are kept exactly as sent, but a leading dot is removed after every line end as Postfix
reads lines: CRLF or a bare LF (Postfix's smtpd reads to LF; a bare CR is data inside a line there, and clients such
as smtplib do not dot-stuff after one). A client that sends bare LF (Python's `smtplib.sendmail` with the `bytes`
of `EmailMessage.as_bytes()`) dot-stuffs after each, so the message it meant has one dot where the wire has two.
aiosmtpd keeps the extra dot there; mailnest stores what the sender meant and logs a warning (the API shows
`mime.wire.protocol_warnings`). The end of data is CRLF "." CRLF only, whatever came before.

Command arguments (EHLO/HELO name, MAIL FROM and RCPT TO paths) must be valid UTF-8: aiosmtpd decodes them with
`surrogateescape`, and such a lone surrogate cannot be stored, so it is refused at the command with a 5xx that says
so (`501 5.5.4` for a HELO/EHLO name, `553 5.1.7`/`553 5.1.3` for an address). UTF-8 addresses (SMTPUTF8) work.

Limits, each answered with a 421 and a closed connection, never a traceback: `max_connections` per listener and
`max_connections_per_client` per client address (`421 4.7.0`); `smtp_timeout` between commands,
`command_timeout` for one command line once its first byte has arrived, and `data_timeout` for a whole DATA phase
(`421 4.4.2`; nothing partly received is stored).
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from typing import TYPE_CHECKING, AnyStr

from aiosmtpd.smtp import MISSING, SMTP

from ..auth import Credentials, FailureGuard
from ..chaos import Action, Chaos, ChaosSession
from ..config import Config, Listen
from ..limits import (
    ConnectionLimits,
    ConnectionObserver,
    RateLimitedLog,
    Slot,
    TooManyConnections,
    quiet_accept_errors,
)
from ..outputs.custom import CustomHandlers, HookedHandler
from ..store.base import Store
from .handler import CaptureEnvelope, CaptureHandler, handler_kwargs
from .security import SMTPSecurity, ThrottledAuth, peer_host, smtp_options

if TYPE_CHECKING:
    from ..metrics import Metrics

log = logging.getLogger("mailnest.smtp")

_DATA_READ_LIMIT = 1 << 20  # bytes buffered while looking for the next ".\r\n"
# <local@domain> with nothing that needs RFC 5322 parsing (quotes, escapes, comments, routes, spaces).
_SIMPLE_PATH = re.compile(r'\s*<([^<>"\\()\s,;:\[\]@]+@[^<>"\\()\s,;:\[\]@]+)>(.*)', re.DOTALL)


def unstuff(data: bytes) -> bytes:
    """Undo dot-stuffing (RFC 5321 4.5.2): a leading dot is removed from every line, lines ending in LF as
    Postfix reads them (CRLF, or the bare LF of a broken client); nothing else changes."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\n.", b"\n")


def _not_utf8(arg: str | None) -> bool:
    """aiosmtpd decodes arguments with surrogateescape: a lone surrogate is a byte that was not UTF-8."""
    if not arg:
        return False
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class CaptureSMTP(ThrottledAuth):
    listener: SMTPListener | None = None
    chaos: ChaosSession | None = None
    busy = False  # inside DATA: reading the message or waiting for the store
    refusal: str | None = None  # why this connection was refused at connect (a connection cap), if it was
    _slot: Slot | None = None  # this connection's place in the listener's caps, once admitted
    _reading_data = False  # between the 354 and the end of the message
    data_received_bytes = 0  # of the message being read, so far (for the log of a stop that abandons it)
    _abandoned = False  # a stop gave up on the message being read and said so: it is not stored
    _storing = False  # the message is read; the store is committing it
    _line_timer: asyncio.TimerHandle | None = None  # the deadline of a command line that has started to arrive

    async def _chaos(self, action: Action) -> bool:
        """Carry out a chaos action; True when it answered (or dropped) instead of the normal reply."""
        if not action:
            return False
        if action.delay:
            await asyncio.sleep(action.delay)
        if action.drop:
            if self.transport is not None:
                self.transport.close()
            return True
        if action.reply:
            await self.push(action.reply)
            if action.close and self.transport is not None:
                self.transport.close()
            return True
        return False

    # -- connections: caps and deadlines ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first and self.session is not None and transport.get_extra_info("ssl_object") is not None:
            # Implicit TLS: aiosmtpd only records TLS it negotiated itself (STARTTLS).
            self.session.ssl = {"ssl_object": transport.get_extra_info("ssl_object")}
        if first and self.listener is not None and self.session is not None:
            try:
                self._slot = self.listener.limits.admit(peer_host(self.session))
            except TooManyConnections as refused:
                self.refusal = str(refused)
            else:
                self.listener.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._cancel_line_timer()
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        if self.listener is not None:
            self.listener.sessions.discard(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        """Every reply; a refusal (4xx, 5xx) is counted for the metrics, and one while a message is being taken
        (after DATA) as a rejected transaction (Mailpit's SMTPRejected)."""
        metrics = self.listener.metrics if self.listener is not None else None
        if metrics is not None:
            text = status if isinstance(status, str) else status.decode("ascii", "replace")
            metrics.smtp_reply(text, in_data=self.busy)
        await super().push(status)

    async def _handle_client(self) -> None:
        if self.refusal is not None:
            self._hang_up(f"421 4.7.0 {self.hostname} {self.refusal}; try again later")
            return
        if self.chaos is not None and await self._chaos(self.chaos.connect()):
            return
        await super()._handle_client()

    @property
    def peer_name(self) -> str:
        return peer_host(self.session) if self.session is not None else "?"

    def _hang_up(self, reply: str) -> None:
        """Say a last line and close, without waiting for a client that may not be reading.

        aiosmtpd's command loop runs while `transport` is set, and a closed transport stays set until the loop
        sees the connection lost; meanwhile it would read whatever the client had already sent (after a DATA
        deadline, the rest of the message) as commands. Letting go of the transport here ends the loop at once;
        the closing transport still sends the last line and reports the connection lost."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._writer.write(reply.encode() + b"\r\n")
            transport.close()
            self.transport = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_data:
            self._reset_timeout()  # bytes of the message are activity; data_timeout bounds the whole phase
        elif data.endswith(b"\n"):
            self._cancel_line_timer()
        elif self._line_timer is None and self.listener is not None:
            # A command line has begun and not ended: it must end within command_timeout (slowloris).
            self._line_timer = self.loop.call_later(self.listener.config.command_timeout, self._line_expired)

    def _cancel_line_timer(self) -> None:
        if self._line_timer is not None:
            self._line_timer.cancel()
            self._line_timer = None

    def _line_expired(self) -> None:
        self._line_timer = None
        assert self.listener is not None
        if self._storing:  # a 250 is on its way: the client may be waiting for it before finishing its line
            self._line_timer = self.loop.call_later(self.listener.config.command_timeout, self._line_expired)
            return
        self.listener.limited_log.warning(
            "command-timeout", "SMTP client %s took over %gs to send one command line; closed it",
            self.session.peer if self.session else "?", self.listener.config.command_timeout)
        self._hang_up(f"421 4.4.2 {self.hostname} timeout: a command line took more than "
                      f"{self.listener.config.command_timeout:g}s; closing")

    def _timeout_cb(self) -> None:
        if self._storing:  # the client is waiting for us, not we for it
            self._reset_timeout()
            return
        if self.listener is not None:
            self.listener.limited_log.warning("idle-timeout", "SMTP client %s sent nothing for %gs; closed it",
                                              self.session.peer if self.session else "?", self._timeout_duration)
        self._hang_up(f"421 4.4.2 {self.hostname} timeout: nothing received for {self._timeout_duration:g}s; "
                      "closing")

    def _create_envelope(self) -> CaptureEnvelope:
        return CaptureEnvelope()

    # -- commands ---------------------------------------------------------------------------------------

    async def smtp_HELO(self, hostname: str) -> None:
        if _not_utf8(hostname):
            await self._refuse_8bit("HELO", hostname, "501 5.5.4 the HELO name is not valid UTF-8")
            return
        await super().smtp_HELO(hostname)

    async def smtp_EHLO(self, hostname: str) -> None:
        if _not_utf8(hostname):
            await self._refuse_8bit("EHLO", hostname, "501 5.5.4 the EHLO name is not valid UTF-8")
            return
        if self.chaos is not None and await self._chaos(self.chaos.command()):
            return
        await super().smtp_EHLO(hostname)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if self.envelope is not None and self.envelope.mail_from is not None:
            # mail_from is "" after MAIL FROM:<>, which aiosmtpd's own check takes for no MAIL at all.
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        if _not_utf8(arg):
            await self._refuse_8bit("MAIL", arg, "553 5.1.7 the sender address is not valid UTF-8 (send UTF-8 "
                                                 "with SMTPUTF8, or ASCII)")
            return
        if (self.chaos is not None and self.session is not None and self.session.host_name
                and await self._chaos(self.chaos.mail())):
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        # aiosmtpd's RCPT refuses every recipient after MAIL FROM:<> (it takes the empty sender for none);
        # this is its command with that one check made right.
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        assert self.envelope is not None and self.session is not None
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        if _not_utf8(arg):
            await self._refuse_8bit("RCPT", arg, "553 5.1.3 the recipient address is not valid UTF-8 (send UTF-8 "
                                                 "with SMTPUTF8, or ASCII)")
            return
        if self.chaos is not None and await self._chaos(self.chaos.rcpt()):
            return
        syntax_error = "501 Syntax: RCPT TO: <address>" + (" [SP <mail-parameters>]" if self.session.extended_smtp
                                                          else "")
        arg = self._strip_command_keyword("TO:", arg) if arg is not None else None
        if arg is None:
            await self.push(syntax_error)
            return
        address, params = self._getaddr(arg)
        if address is None:
            await self.push("553 5.1.3 Error: malformed address")
            return
        if not address or (not self.session.extended_smtp and params):
            await self.push(syntax_error)
            return
        rcpt_options = (params or "").upper().split()
        parsed = self._getparams(rcpt_options)
        if parsed is None:
            await self.push(syntax_error)
            return
        if parsed:
            await self.push("555 RCPT TO parameters not recognized or not implemented")
            return
        status = await self._call_handler_hook("RCPT", address, rcpt_options)
        if status is MISSING:
            self.envelope.rcpt_tos.append(address)
            self.envelope.rcpt_options.extend(rcpt_options)
            status = "250 OK"
        await self.push(status)

    async def _refuse_8bit(self, command: str, arg: str | None, reply: str) -> None:
        raw = (arg or "").encode("utf-8", "surrogateescape")
        log.info("%s: refused %s %r: not valid UTF-8", self.session.peer if self.session else "?", command, raw)
        await self.push(reply)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every MAIL/RCPT path with the email package's RFC 5322 parser, a good share of a
        # small message's CPU; plain paths (nearly all of them) are taken apart directly, the rest as before.
        match = _SIMPLE_PATH.fullmatch(arg) if arg else None
        if match is None:
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, match.group(2).lstrip()

    async def smtp_AUTH(self, arg: str) -> None:
        if self.chaos is not None and await self._chaos(self.chaos.auth()):
            return
        await super().smtp_AUTH(arg)

    # -- DATA -------------------------------------------------------------------------------------------

    async def smtp_DATA(self, arg: str) -> None:
        self.busy = True
        try:
            await self._smtp_data(arg)
        finally:
            self.busy = self._reading_data = self._storing = False
        if self.listener is not None and self.listener.closing:
            await self.push("421 4.3.2 mailnest is shutting down")
            if self.transport is not None:
                self.transport.close()

    async def _smtp_data(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        dropped = self.envelope.dropped_rcpts if isinstance(self.envelope, CaptureEnvelope) else []
        if not self.envelope.rcpt_tos and not dropped:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._cancel_line_timer()
        self._reading_data = True
        self.data_received_bytes = 0
        deadline = self.listener.config.data_timeout if self.listener is not None else None
        try:
            async with asyncio.timeout(deadline):
                content = await self._read_data()
        except TimeoutError:
            assert self.listener is not None
            self.listener.limited_log.warning("data-timeout", "SMTP client %s took over %gs for DATA; closed it, "
                                              "nothing stored", self.session.peer if self.session else "?", deadline)
            self._hang_up(f"421 4.4.2 {self.hostname} timeout: DATA took more than {deadline:g}s; closing, "
                          "nothing stored")
            return
        finally:
            self._reading_data = False
        if self._abandoned or self.transport is None:  # a stop told the client 421 "not stored": keep to it
            return
        self._reset_timeout()
        if content is None:
            await self.push(f"552 5.3.4 Message too big for this server (at most {self.data_size_limit} bytes)")
            self._set_post_data_state()
            return
        if self.chaos is not None and await self._chaos(self.chaos.data(len(content))):
            self._set_post_data_state()
            return
        self._warn_line_endings(content)
        self.envelope.content = content
        self.envelope.original_content = content
        self._storing = True
        status = await self._call_handler_hook("DATA")
        self._storing = False
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _warn_line_endings(self, content: bytes) -> None:
        crlf = content.count(b"\r\n")
        bare_lf, bare_cr = content.count(b"\n") - crlf, content.count(b"\r") - crlf
        if bare_lf or bare_cr:
            log.warning("SMTP client %s sent %d bare LF and %d bare CR line ending(s) (RFC 5321 wants CRLF; strict "
                        "servers refuse this); stored as sent, a leading dot removed after each LF as Postfix does",
                        self.session.peer if self.session else "?", bare_lf, bare_cr)

    async def _read_data(self) -> bytes | None:
        """The unstuffed message, or None when it exceeded the size limit (after reading it all)."""
        reader = self._reader
        limit = self.data_size_limit
        chunks: list[bytes] = []
        size = 0
        too_big = False
        tail = b"\r\n"  # the last two bytes read (the CRLF before DATA's first line counts for the terminator)
        saved_limit = reader._limit  # type: ignore[attr-defined]
        reader._limit = max(saved_limit, _DATA_READ_LIMIT)  # type: ignore[attr-defined]
        try:
            while True:
                try:
                    segment = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as exc:
                    segment = await reader.readexactly(exc.consumed)
                    ending = False
                else:
                    # An overrun hands on all but the last two buffered bytes, so CRLF "." CRLF may arrive split:
                    # a short segment is checked together with the bytes before it.
                    ending = segment.endswith(b"\r\n.\r\n") or (len(segment) < 5
                                                                   and (tail + segment).endswith(b"\r\n.\r\n"))
                    if ending:
                        segment = segment[:-3]
                if segment:
                    size += len(segment)
                    self.data_received_bytes = size
                    if limit and size > limit:
                        too_big = True
                        chunks.clear()  # keep reading to the end, but hold nothing
                    elif not too_big:
                        chunks.append(segment)
                    tail = segment[-2:] if len(segment) >= 2 else (tail + segment)[-2:]
                if ending:
                    break
        finally:
            reader._limit = saved_limit  # type: ignore[attr-defined]
        if too_big:
            return None
        data = b"".join(chunks)
        return unstuff(data)


# aiosmtpd's HELP reads each command's syntax from attributes its @syntax decorator set on the methods
# overridden above; carry them over so HELP still describes every command.
for _name in ("smtp_HELO", "smtp_EHLO", "smtp_MAIL", "smtp_RCPT", "smtp_AUTH", "smtp_DATA"):
    for _attribute in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
        if hasattr(getattr(SMTP, _name), _attribute):
            setattr(getattr(CaptureSMTP, _name), _attribute, getattr(getattr(SMTP, _name), _attribute))


class SMTPListener:
    """The listening socket and its sessions, so that stopping can finish messages in flight."""

    def __init__(self, config: Config, metrics: Metrics | None = None,
                 observer: ConnectionObserver | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.server: asyncio.Server | None = None
        self.sessions: set[CaptureSMTP] = set()  # the admitted ones
        self.closing = False
        self._hurry = asyncio.Event()
        self.limits = ConnectionLimits("SMTP", config.max_connections, config.max_connections_per_client, log,
                                       observer)
        self.limited_log = RateLimitedLog(log)  # deadlines that expire, one line per kind and interval

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting; idle sessions get 421 now, sessions inside DATA may finish their message for `grace`
        seconds (default 10, `stop_grace` in Config.extra), or until `hurry()`. What is in flight is logged with
        how long it may take; a message still arriving after that gets a 421 saying it was not stored, and a log
        line. One the store is committing is always waited for: its 250 may not be lost."""
        if grace is None:
            grace = float(self.config.extra.get("stop_grace", 10.0))  # type: ignore[arg-type]
        self.closing = True
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            if not session.busy and session.transport is not None:
                session._writer.write(b"421 4.3.2 mailnest is shutting down\r\n")
                session.transport.close()
        loop = asyncio.get_running_loop()
        busy = [s for s in self.sessions if s.busy]
        if busy:
            log.warning("stopping: %d message(s) still being received (from %s); waiting up to %gs for them "
                        "(Ctrl-C again to stop now)", len(busy), ", ".join(sorted({s.peer_name for s in busy})),
                        grace)
        deadline = loop.time() + grace
        while (any(s.busy for s in self.sessions) and loop.time() < deadline and not self._hurry.is_set()):
            await asyncio.sleep(0.01)
        for session in list(self.sessions):
            if session._reading_data and not session._storing:
                session._abandoned = True  # its end may be buffered already: it must not be stored after the 421
                received = session.data_received_bytes
                log.warning("abandoned the message being received from %s (%d bytes so far): not stored; the "
                            "client was told 421", session.peer_name, received)
                session._hang_up("421 4.3.2 mailnest is shutting down; this message was not stored, send it again")
        while any(s._storing for s in self.sessions):  # a commit under way: its 250 follows in a moment
            await asyncio.sleep(0.01)
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        if self.server is not None:
            await self.server.wait_closed()

    def hurry(self) -> None:
        """Stop waiting for messages being received (a second Ctrl-C)."""
        self._hurry.set()


async def start_smtp(config: Config, store: Store, listen: Listen, *, security: SMTPSecurity | None = None,
                     implicit_tls: bool = False, custom: CustomHandlers | None = None,
                     chaos: Chaos | None = None, metrics: Metrics | None = None,
                     observer: ConnectionObserver | None = None) -> SMTPListener:
    security = security or SMTPSecurity(Credentials(), FailureGuard())
    handler: CaptureHandler | HookedHandler = CaptureHandler(config, store)
    if custom:
        handler = HookedHandler(handler, custom)
    kwargs = {**handler_kwargs(config), **smtp_options(config, security, implicit_tls=implicit_tls)}
    listener = SMTPListener(config, metrics, observer)
    ssl_context = security.tls_context if implicit_tls else None
    if implicit_tls and ssl_context is None:
        raise ValueError("an implicit-TLS SMTP listener needs a TLS certificate")

    def protocol() -> CaptureSMTP:
        with warnings.catch_warnings():
            # aiosmtpd warns when AUTH is required without TLS; on a test server that is the user's choice.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            session = CaptureSMTP(handler, **kwargs)
        session.listener = listener
        session.security = security
        session.chaos = chaos.session() if chaos is not None else None
        return session

    # aiosmtpd logs every command line at INFO on "mail.log"; that is debugging detail for us.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    loop = asyncio.get_running_loop()
    listener.server = await loop.create_server(protocol, host=listen.host, port=listen.port, ssl=ssl_context,
                                               ssl_handshake_timeout=15 if ssl_context else None)
    quiet_accept_errors(loop, log)
    return listener

