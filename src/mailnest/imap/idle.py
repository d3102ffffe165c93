"""IDLE (RFC 2177): tell the client about changes as they happen until it says DONE.

One deadline, `idle_timeout` from the start of IDLE, whatever the client was told meanwhile: the events the server
sends are not the client's activity. A client that stays idle longer is answered NO and may IDLE again (RFC 2177
asks clients to re-issue IDLE at least every 29 minutes).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .parser import Command
from .responses import continuation

if TYPE_CHECKING:
    from ..events import Event
    from .session import Session


async def idle(session: Session, cmd: Command) -> tuple[str, str]:
    await session.send(continuation("idling"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + session.config.idle_timeout
    # The server's reader keeps no timer of its own here: two timers for one timeout would race.
    reader = asyncio.ensure_future(session.read_line(waiting=True))
    try:
        while True:
            if session.selected is not None:
                await session.announce(allow_expunge=True)
            waiters: set[asyncio.Future[bytes | None] | asyncio.Future[Event | None]] = {reader}
            if session.subscription is not None:
                waiters.add(asyncio.ensure_future(session.subscription.get()))
            done, pending = await asyncio.wait(waiters, timeout=max(0.0, deadline - loop.time()),
                                               return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending - {reader}:
                waiter.cancel()
            if not done:
                return "NO", "Idle timed out"
            if reader in done:
                line = reader.result()
                if line is None:
                    await session.close()
                    return "BAD", "Connection closed while idling"
                if line.strip().upper() != b"DONE":
                    return "BAD", "Expected DONE"
                return "OK", "Idle completed"
            if session.selected is not None:
                session.selected.dirty = True
    finally:
        if not reader.done():
            reader.cancel()
