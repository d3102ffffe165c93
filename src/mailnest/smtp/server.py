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
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP

from ..config import Config, Listen
from ..store.base import Store
from .handler import CaptureHandler, handler_kwargs

log = logging.getLogger("mailnest.smtp")

_DATA_READ_LIMIT = 1 << 20  # bytes buffered while looking for the next ".\r\n"


class CaptureSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
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
        ends_with_crlf = True  # the CRLF before DATA's first line counts for the terminator
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
                    ending = segment.endswith(b"\r\n.\r\n") or (segment == b".\r\n" and ends_with_crlf)
                    if ending:
                        segment = segment[:-3]
                if segment:
                    size += len(segment)
                    if limit and size > limit:
                        too_big = True
                        chunks.clear()  # keep reading to the end, but hold nothing
                    elif not too_big:
                        chunks.append(segment)
                    ends_with_crlf = segment.endswith(b"\r\n")
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


async def start_smtp(config: Config, store: Store, listen: Listen, **smtp_kwargs: Any) -> asyncio.Server:
    handler = CaptureHandler(config, store)
    kwargs = {**handler_kwargs(config), **smtp_kwargs}
    loop = asyncio.get_running_loop()
    # aiosmtpd logs every command line at INFO on "mail.log"; that is debugging detail for us.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    return await loop.create_server(lambda: CaptureSMTP(handler, **kwargs), host=listen.host, port=listen.port)
