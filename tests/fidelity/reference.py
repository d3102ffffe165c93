"""The reference: a plain aiosmtpd server on 127.0.0.1 port 0, on its own loop in a thread, that keeps exactly what
aiosmtpd hands its handler (`envelope.original_content`, `mail_from`, `rcpt_tos`). It is created the way DESIGN.md
says a server is (`loop.create_server(lambda: SMTP(handler, hostname=...))`), not with aiosmtpd's Controller."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP


@dataclass(frozen=True)
class Delivered:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class _Keep:
    def __init__(self) -> None:
        self.delivered: list[Delivered] = []

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.delivered.append(Delivered(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


class _ReferenceSMTP(SMTP):
    # aiosmtpd refuses DATA lines over 1,000 bytes (RFC 5321 4.5.3.1.6 allows that); mailnest takes them, so the
    # reference is told to read lines up to 4 MiB and the comparison covers long lines too.
    line_length_limit = 4 << 20


class ReferenceServer:
    def __init__(self) -> None:
        self.keep = _Keep()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="reference-smtp", daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def __enter__(self) -> ReferenceServer:
        self._thread.start()

        async def start() -> asyncio.Server:
            return await self.loop.create_server(
                lambda: _ReferenceSMTP(self.keep, hostname="reference", enable_SMTPUTF8=True, decode_data=False,
                                       data_size_limit=64 << 20, loop=self.loop),
                "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def take(self) -> list[Delivered]:
        """What was delivered since the last call."""
        taken, self.keep.delivered[:] = list(self.keep.delivered), []
        return taken
