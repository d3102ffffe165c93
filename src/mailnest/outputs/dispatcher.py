"""The dispatcher: after each committed message, hand it to every enabled output.

It listens to the hub for ``new`` events, fetches the raw bytes and the envelope from the store, and gives
each file output its own queue and worker, so writes to one output happen one at a time and in commit
order (MH numbers follow arrival order under concurrent deliveries), while a slow output never holds up
another. File writes run on the dispatcher's own threads, never on the event loop. An output that fails
(disk full, read-only folder) is logged and skipped for that message; the stored message is untouched.
File outputs are not retried: a retry could duplicate the copies already written for other recipients.

Once-only work (outputs/work.py): each file output is a kind named after it (`mh`, `maildir`, `mbox`, `latest`,
`console`), relaying to a message's allowed recipients is `relay` (with `relay_allow` set) and forwarding to the
fixed `forward_to` addresses is `forward`. A kind is reported done once its write ran (or failed, which is final)
and once the relay or forward finished (sent, refused or given up); the message's work left undone by a node that
stopped or died is handed back here by the sweeper of some node (`redo`), for those kinds only, so with several
nodes each message is relayed and forwarded once (at least once when a node dies mid-way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from ..config import Config
from ..events import Event, Hub, MessageAdded
from ..models import Summary
from ..store.base import Store, StoreFullError, StoreUnavailableError
from .console import ConsoleOutput
from .delivery import Delivery, FileOutput
from .latest import LatestOutput
from .maildir import MaildirOutput
from .mbox import MboxOutput
from .mh import MHOutput
from .relay import RecipientStatus, Relay, RelayNotConfigured
from .work import WorkSweeper

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 30.0  # close() waits this long for queued writes before giving up on them
RETRY_READ = 2.0  # seconds before reading a message back again when the store was unavailable


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

    def __init__(self, output: FileOutput, executor: ThreadPoolExecutor, done: Callable[[int, str], None]) -> None:
        self.output = output
        self.queue: asyncio.Queue[tuple[int, Delivery] | None] = asyncio.Queue()
        self._done = done
        self._executor = executor
        self.failures = 0
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"mailnest-output-{output.name}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.queue.get()
            delivery = item[1] if item is not None else None
            try:
                if item is None:
                    return
                await loop.run_in_executor(self._executor, self.output.write, item[1])
            except OSError as exc:
                self.failures += 1
                log.error("%s output could not write message %s: %s", self.output.name, delivery and delivery.id, exc)
            except Exception:
                self.failures += 1
                log.exception("%s output failed on message %s", self.output.name, delivery and delivery.id)
            finally:
                if item is not None:  # written or failed: either is final (a file output is not retried)
                    self._done(item[0], self.output.name)
                self.queue.task_done()


class OutputDispatcher:
    """Runs the outputs Config enables. `start()` on the running loop; `close()` flushes pending writes.

    Close it before the store: it reads each message back from the store.
    """

    def __init__(self, config: Config, store: Store, hub: Hub, *, console_stream: TextIO | None = None,
                 outputs: Sequence[FileOutput] | None = None, work: WorkSweeper | None = None) -> None:
        self.config = config
        self.work = work
        self.store = store
        self.hub = hub
        self.outputs: list[FileOutput] = (
            list(outputs) if outputs is not None else build_outputs(config, console_stream=console_stream)
        )
        self.relay: Relay | None = Relay.from_config(config)
        # (summary, None) for a new message: every output; (summary, kinds) for work taken over: those only
        self._inbox: asyncio.Queue[tuple[Summary, frozenset[str] | None] | None] | None = None
        self._workers: list[_Worker] = []
        self._executor: ThreadPoolExecutor | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def enabled(self) -> bool:
        return bool(self.outputs) or self.relay is not None

    def work_kinds(self) -> tuple[str, ...]:
        relay = self.relay
        return (*(output.name for output in self.outputs), *(("relay",) if relay is not None and relay.allow else ()),
                *(("forward",) if relay is not None and relay.forward_to else ()))

    def _done(self, uid: int, kind: str) -> None:
        if self.work is not None:
            self.work.done(uid, kind)

    async def redo(self, summary: Summary, kinds: frozenset[str]) -> None:
        """Once-only work taken over from another node (or an earlier run): those outputs, for `summary`."""
        if self._listening and self._inbox is not None:
            self._inbox.put_nowait((summary, kinds))

    async def start(self) -> None:
        if not self.enabled or self._inbox is not None:
            return
        self._inbox = asyncio.Queue()
        if self.outputs:
            self._executor = ThreadPoolExecutor(len(self.outputs), thread_name_prefix="mailnest-output")
            self._workers = [_Worker(output, self._executor, self._done) for output in self.outputs]
        self._fetcher = asyncio.get_running_loop().create_task(self._fetch(), name="mailnest-output-fetch")
        self._listening = True
        self.hub.add_listener(self._on_event, local_only=True)

    def _on_event(self, event: Event) -> None:
        # Runs inside Hub.publish: only queue, never wait. Unbounded on purpose: a Summary is small and a
        # dropped event would be a message missing from the mailbox files.
        if self._listening and isinstance(event, MessageAdded) and self._inbox is not None:
            self._inbox.put_nowait((event.summary, None))

    async def _fetch(self) -> None:
        assert self._inbox is not None
        while True:
            item = await self._inbox.get()
            try:
                if item is None:
                    return
                await self._dispatch(*item)
            except (StoreUnavailableError, StoreFullError) as exc:  # temporary: the same message again, later
                assert item is not None
                log.warning("outputs could not read message %s back from the store (%s); trying again in %.0fs",
                            item[0].id, exc, RETRY_READ)
                asyncio.get_running_loop().call_later(RETRY_READ, self._requeue, item)
            except Exception:
                log.exception("outputs could not read message %s back from the store", item and item[0].id)
                if item is not None:  # final: its work is not left held (and renewed) by this node forever
                    for kind in item[1] or self.work_kinds():
                        self._done(item[0].uid, kind)
            finally:
                self._inbox.task_done()

    def _requeue(self, item: tuple[Summary, frozenset[str] | None]) -> None:
        if self._listening and self._inbox is not None:
            self._inbox.put_nowait(item)

    async def _dispatch(self, summary: Summary, kinds: frozenset[str] | None) -> None:
        wanted = frozenset(self.work_kinds()) if kinds is None else kinds
        found = (await self.store.raw_with_envelopes([summary.id])).get(summary.id)  # one read, no parse
        if found is None:
            log.debug("message %s was deleted before the outputs ran", summary.id)
            for kind in wanted:
                self._done(summary.uid, kind)
            return
        delivery = Delivery(summary.id, *found)
        for worker in self._workers:
            if worker.output.name in wanted:
                worker.queue.put_nowait((summary.uid, delivery))
        uid = summary.uid
        if self.relay is not None and "relay" in wanted:
            self.relay.submit(delivery, done=lambda: self._done(uid, "relay"))
        if self.relay is not None and "forward" in wanted:
            self.relay.forward(delivery, done=lambda: self._done(uid, "forward"))

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
        """POST /api/v1/message/{ID}/release. Raises RelayNotConfigured (400), RelayRefused (400),
        RelayFailed (502); see `Relay.release`."""
        if self.relay is None:
            raise RelayNotConfigured("no relay is configured: set relay (HOST:PORT) and relay_allow or "
                                     "release_allow")
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
