"""The SMTP listener: aiosmtpd's protocol with a DATA phase that reads large chunks, on our own loop.

aiosmtpd reads DATA one line at a time, which caps large messages at a few per second. `CaptureSMTP.smtp_DATA`
reads up to the next ".\r\n" at a time (a multi-kilobyte chunk, usually the whole message) while keeping
aiosmtpd's semantics: the message ends only at CRLF "." CRLF (a bare LF or bare CR before the dot does not end
it, which is what defeats SMTP smuggling), leading dots are unstuffed, a message over the size limit is read to
its end, discarded and refused with 552, and a client that disconnects mid-DATA leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from ..auth import Credentials, FailureGuard
from ..chaos import Action, Chaos, ChaosSession
from ..config import Config, Listen
from ..outputs.custom import CustomHandlers, HookedHandler
from ..store.base import Store
from .handler import CaptureHandler, handler_kwargs
from .security import SMTPSecurity, cram_md5, peer_host, smtp_options

log = logging.getLogger("mailnest.smtp")

_DATA_READ_LIMIT = 1 << 20  # bytes buffered while looking for the next ".\r\n"
# <local@domain> with nothing that needs RFC 5322 parsing (quotes, escapes, comments, routes, spaces).
_SIMPLE_PATH = re.compile(r'\s*<([^<>"\\()\s,;:\[\]@]+@[^<>"\\()\s,;:\[\]@]+)>(.*)', re.DOTALL)


class CaptureSMTP(SMTP):
    listener: SMTPListener | None = None
    chaos: ChaosSession | None = None

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

    async def _handle_client(self) -> None:
        if self.chaos is not None and await self._chaos(self.chaos.connect()):
            return
        await super()._handle_client()

    async def smtp_MAIL(self, arg: str | None) -> None:
        if (self.chaos is not None and self.session is not None and self.session.host_name
                and await self._chaos(self.chaos.mail())):
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if (self.chaos is not None and self.envelope is not None and self.envelope.mail_from is not None
                and await self._chaos(self.chaos.rcpt())):
            return
        await super().smtp_RCPT(arg)

    async def smtp_EHLO(self, hostname: str) -> None:
        if self.chaos is not None and await self._chaos(self.chaos.command()):
            return
        await super().smtp_EHLO(hostname)
    security: SMTPSecurity | None = None
    busy = False  # inside DATA: reading the message or waiting for the store
    failed_login: str | None = None  # set by the authenticator when credentials are wrong

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first and self.session is not None and transport.get_extra_info("ssl_object") is not None:
            # Implicit TLS: aiosmtpd only records TLS it negotiated itself (STARTTLS).
            self.session.ssl = {"ssl_object": transport.get_extra_info("ssl_object")}
        if first and self.listener is not None:
            self.listener.sessions.add(self)

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
        self.failed_login = None
        if self.chaos is not None and await self._chaos(self.chaos.auth()):
            return
        await super().smtp_AUTH(arg)
        if self.security is None or self.session is None:
            return
        if self.failed_login is not None:
            await self.security.guard.failed(peer_host(self.session), "SMTP", self.failed_login)
        elif self.session.authenticated:
            self.security.guard.succeeded(peer_host(self.session))

    async def auth_CRAM__MD5(self, _: object, args: list[str]) -> AuthResult:
        assert self.security is not None
        return await cram_md5(self, self.security.credentials, self.hostname)

    def connection_lost(self, error: Exception | None) -> None:
        if self.listener is not None:
            self.listener.sessions.discard(self)
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        self.busy = True
        try:
            await self._smtp_data(arg)
        finally:
            self.busy = False
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
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content = await self._read_data()
        if content is None:
            await self.push(f"552 5.3.4 Message too big for this server (at most {self.data_size_limit} bytes)")
            self._set_post_data_state()
            return
        if self.chaos is not None and await self._chaos(self.chaos.data(len(content))):
            self._set_post_data_state()
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

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
        if data.startswith(b"."):
            data = data[1:]
        return data.replace(b"\r\n.", b"\r\n")


# aiosmtpd's HELP reads each command's syntax from attributes its @syntax decorator set on the methods
# overridden above; carry them over so HELP still describes every command.
for _name in ("smtp_EHLO", "smtp_MAIL", "smtp_RCPT", "smtp_AUTH", "smtp_DATA"):
    for _attribute in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
        if hasattr(getattr(SMTP, _name), _attribute):
            setattr(getattr(CaptureSMTP, _name), _attribute, getattr(getattr(SMTP, _name), _attribute))


class SMTPListener:
    """The listening socket and its sessions, so that stopping can finish messages in flight."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.sessions: set[CaptureSMTP] = set()
        self.closing = False

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting; idle sessions get 421 now, sessions inside DATA finish their message first."""
        self.closing = True
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            if not session.busy and session.transport is not None:
                session._writer.write(b"421 4.3.2 mailnest is shutting down\r\n")
                session.transport.close()
        deadline = asyncio.get_running_loop().time() + grace
        while any(s.busy for s in self.sessions) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        if self.server is not None:
            await self.server.wait_closed()


async def start_smtp(config: Config, store: Store, listen: Listen, *, security: SMTPSecurity | None = None,
                     implicit_tls: bool = False, custom: CustomHandlers | None = None,
                     chaos: Chaos | None = None) -> SMTPListener:
    security = security or SMTPSecurity(Credentials(), FailureGuard())
    handler: CaptureHandler | HookedHandler = CaptureHandler(config, store)
    if custom:
        handler = HookedHandler(handler, custom)
    kwargs = {**handler_kwargs(config), **smtp_options(config, security, implicit_tls=implicit_tls)}
    listener = SMTPListener()
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
    tls_options = {"ssl": ssl_context, "ssl_handshake_timeout": 15} if ssl_context else {}
    listener.server = await asyncio.get_running_loop().create_server(
        protocol, host=listen.host, port=listen.port, **tls_options)
    return listener
