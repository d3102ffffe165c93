"""The HTTP API's CPU work (MIME walks, checksums, rendering) off the event loop, abandoned with its request.

Knows nothing of HTTP answers: a request whose client left raises `ClientGone`, which the API's `guarded`
routes answer with 499.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.requests import Request

WORKERS = 4  # threads for the API's CPU work (MIME walks, checksums, rendering); the store has its own

T = TypeVar("T")


class Abandoned(Exception):
    """Raised inside off-loop work whose request was given up (the client went away, or the server is stopping)."""


class ClientGone(Exception):
    """The client closed the connection before the answer was ready (the API answers 499)."""

    def __init__(self, reason: str = "the client closed the connection before the answer was ready") -> None:
        super().__init__(reason)
        self.reason = reason


class OffLoop:
    """The API's CPU work (MIME walks, checksums, rendering), off the event loop in a small pool of its own.

    Work is tied to its request: when the client goes away, or the request is cancelled (the server is stopping),
    `cancelled()` turns true, work not yet started is skipped, and work that checks `cancelled` stops at its
    next check. So abandoned requests never fill the pool that other requests need, and stopping never waits
    for them."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mailnest-api")  # threads start lazily

    async def run(self, request: Request | None, fn: Callable[..., T], *args: Any, cancellable: bool = False) -> T:
        """`fn(*args)` in the pool; with `cancellable`, `fn(*args, cancelled=...)`. ClientGone when the client
        left."""
        if request is not None and await request.is_disconnected():
            raise ClientGone
        stop = threading.Event()

        def job() -> T:
            if stop.is_set():
                raise Abandoned
            return fn(*args, cancelled=stop.is_set) if cancellable else fn(*args)

        future = asyncio.get_running_loop().run_in_executor(self._pool, job)
        waits: set[asyncio.Future[Any]] = {future}
        if request is not None:
            waits.add(asyncio.ensure_future(_client_gone(request)))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            done = set()
            raise
        finally:
            for other in waits - {future}:
                other.cancel()
            if future not in done:
                stop.set()
                future.add_done_callback(_ignore_result)
        if future not in done:
            raise ClientGone
        return future.result()


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects. Only for requests whose body is not read (GET)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _ignore_result(future: Any) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log an abandoned job's Abandoned
