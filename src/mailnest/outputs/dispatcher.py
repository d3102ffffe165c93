"""The dispatcher: after each committed message, hand it to every enabled output.

It listens to the hub for ``new`` events, fetches the raw bytes and the envelope from the store, and gives
each file output its own queue and worker, so writes to one output happen one at a time and in commit
order (MH numbers follow arrival order under concurrent deliveries), while a slow output never holds up
another. File writes run on the dispatcher's own threads, never on the event loop. An output that fails
(disk full, read-only folder) is logged and skipped for that message; the stored message is untouched.
File outputs are not retried: a retry could duplicate the copies already written for other recipients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from ..config import Config
from ..events import Event, Hub, MessageAdded
from ..models import Summary
from ..store.base import Store
from .console import ConsoleOutput
from .delivery import Delivery, FileOutput
from .latest import LatestOutput
from .maildir import MaildirOutput
from .mbox import MboxOutput
from .mh import MHOutput
from .relay import RecipientStatus, Relay, RelayNotConfigured

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 30.0  # close() waits this long for queued writes before giving up on them


def build_outputs(config: Config, *, console_stream: TextIO | None = None) -> list[FileOutput]:
    """The file outputs Config enables, in a fixed order."""
    outputs: list[FileOutput] = []
    if config.mh:
        outputs.append(MHOutput(config.mh))
    if config.maildir:
        outputs.append(MaildirOutput(config.maildir))
    if config.mbox:
        outputs.append(MboxOutput(config.mbox))
    if config.latest:
        outputs.append(LatestOutput(config.latest))
    if config.print_messages:
        outputs.append(ConsoleOutput(console_stream))
    return outputs


class _Worker:
    """One output's queue, drained in order on the dispatcher's threads."""

    def __init__(self, output: FileOutput, executor: ThreadPoolExecutor) -> None:
        self.output = output
        self.queue: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._executor = executor
        self.failures = 0
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"mailnest-output-{output.name}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delivery = await self.queue.get()
            try:
                if delivery is None:
                    return
                await loop.run_in_executor(self._executor, self.output.write, delivery)
            except OSError as exc:
                self.failures += 1
                log.error("%s output could not write message %s: %s", self.output.name, delivery and delivery.id, exc)
            except Exception:
                self.failures += 1
                log.exception("%s output failed on message %s", self.output.name, delivery and delivery.id)
            finally:
                self.queue.task_done()


class OutputDispatcher:
    """Runs the outputs Config enables. `start()` on the running loop; `close()` flushes pending writes.

    Close it before the store: it reads each message back from the store.
    """

    def __init__(self, config: Config, store: Store, hub: Hub, *, console_stream: TextIO | None = None,
                 outputs: Sequence[FileOutput] | None = None) -> None:
        self.config = config
        self.store = store
        self.hub = hub
        self.outputs: list[FileOutput] = (
            list(outputs) if outputs is not None else build_outputs(config, console_stream=console_stream)
        )
        self.relay: Relay | None = Relay.from_config(config)
        self._inbox: asyncio.Queue[Summary | None] | None = None
        self._workers: list[_Worker] = []
        self._executor: ThreadPoolExecutor | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def enabled(self) -> bool:
        return bool(self.outputs) or self.relay is not None

    async def start(self) -> None:
        if not self.enabled or self._inbox is not None:
            return
        self._inbox = asyncio.Queue()
        if self.outputs:
            self._executor = ThreadPoolExecutor(len(self.outputs), thread_name_prefix="mailnest-output")
            self._workers = [_Worker(output, self._executor) for output in self.outputs]
        self._fetcher = asyncio.get_running_loop().create_task(self._fetch(), name="mailnest-output-fetch")
        self._listening = True
        self.hub.add_listener(self._on_event, local_only=True)

    def _on_event(self, event: Event) -> None:
        # Runs inside Hub.publish: only queue, never wait. Unbounded on purpose: a Summary is small and a
        # dropped event would be a message missing from the mailbox files.
        if self._listening and isinstance(event, MessageAdded) and self._inbox is not None:
            self._inbox.put_nowait(event.summary)

    async def _fetch(self) -> None:
        assert self._inbox is not None
        while True:
            summary = await self._inbox.get()
            try:
                if summary is None:
                    return
                await self._dispatch(summary)
            except Exception:
                log.exception("outputs could not read message %s back from the store", summary and summary.id)
            finally:
                self._inbox.task_done()

    async def _dispatch(self, summary: Summary) -> None:
        found = (await self.store.raw_with_envelopes([summary.id])).get(summary.id)  # one read, no parse
        if found is None:
            log.debug("message %s was deleted before the outputs ran", summary.id)
            return
        delivery = Delivery(summary.id, *found)
        for worker in self._workers:
            worker.queue.put_nowait(delivery)
        if self.relay is not None:
            self.relay.submit(delivery)

    async def flush(self) -> None:
        """Wait until every message announced so far has been written by every output."""
        if self._inbox is not None:
            await self._inbox.join()
        for worker in self._workers:
            await worker.queue.join()

    def failures(self) -> dict[str, int]:
        """Failed writes per output since start (for /api/v1/info or logs)."""
        return {worker.output.name: worker.failures for worker in self._workers}

    # Relay, for the API ------------------------------------------------------------------------------------

    def relay_status(self, message_id: str) -> dict[str, Any] | None:
        """``{"rcpt": {"Status", "Reason", "Attempts", "Updated"}}`` or None when never relayed."""
        return self.relay.status_json(message_id) if self.relay is not None else None

    async def release(self, raw: bytes, to: Sequence[str], mail_from: str, *,
                      message_id: str | None = None) -> dict[str, RecipientStatus]:
        """POST /api/v1/message/{ID}/release. Raises RelayNotConfigured (400), RelayRefused (403),
        RelayFailed (502); see `Relay.release`."""
        if self.relay is None:
            raise RelayNotConfigured("no relay is configured: set relay (HOST:PORT) and relay_allow")
        return await self.relay.release(raw, to, mail_from, message_id=message_id)

    async def close(self) -> None:
        if self._inbox is None:
            return
        self._listening = False
        remove = getattr(self.hub, "remove_listener", None)
        if callable(remove):
            remove(self._on_event)
        self._inbox.put_nowait(None)
        try:
            await asyncio.wait_for(self._drain(), FLUSH_TIMEOUT)
        except TimeoutError:
            log.error("outputs still busy after %.0fs at shutdown; pending writes abandoned", FLUSH_TIMEOUT)
            for task in [self._fetcher, *(w.task for w in self._workers)]:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if self.relay is not None:
            await self.relay.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._inbox = None

    async def _drain(self) -> None:
        if self._fetcher is not None:
            await self._fetcher
        for worker in self._workers:
            worker.queue.put_nowait(None)
        for worker in self._workers:
            await worker.task
