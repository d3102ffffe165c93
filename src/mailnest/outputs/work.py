"""Once-only work (webhooks, relay, file outputs) that survives the node doing it: a lease in the store, renewed
while the work runs, and a sweeper on every node that takes over what a dead node held.

How a message's work goes, on either backend (store/base.py, the Store protocol's `*_work` methods):
- ingest writes a row per configured kind (`webhook:URL`, `relay`, `mh`, `maildir`, ...) in the message's own
  transaction, held by the receiving node for one lease;
- the receiving node's consumers act on its hub event as before, and each tells `done(uid, kind)` when its kind
  is finished: done, or given up after its retries. The marks are written in batches, a moment later;
- every `interval` the sweeper renews this node's leases that end within half a lease (so work in backoff stays
  this node's), then claims rows whose lease ran out (their holder died, or let them go at shutdown) and hands
  those messages to the consumers for the kinds claimed. It sweeps once at start, so a restarted node finishes
  what it held when it was killed, a lease later;
- at shutdown the node releases what it still holds (queued, or left by a webhook or relay retry cut short): the
  next node to sweep, or this one restarted, takes it at once.

So each kind happens once per message while nodes live, and at least once when one dies (work the dead node
finished but had not yet marked done runs again). A row claimed `MAX_CLAIMS` times (its work killed every node
that took it) is dropped with an error. Tunables: `--work-lease` (Config.work_lease, 30 s) and
`--work-sweep` (Config.work_sweep, 5 s; at most a third of the lease); `Config.extra` may override both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from ..config import Config, ConfigError
from ..models import Summary
from ..store.base import Store, StoreFullError, StoreUnavailableError, WorkItem

log = logging.getLogger(__name__)

LEASE = 30.0
SWEEP = 5.0
MAX_CLAIMS = 5
CLAIM_BATCH = 200  # rows a claim takes; a sweep claims a few batches at most, the next sweep the rest
CLAIMS_PER_SWEEP = 5
DONE_DELAY = 0.05  # seconds done marks gather before they are written in one transaction
_TEMPORARY = (StoreUnavailableError, StoreFullError)


class Consumer(Protocol):
    """A once-only consumer: the kinds it does, and how it takes over a message's work for some of them."""

    def work_kinds(self) -> tuple[str, ...]: ...

    async def redo(self, summary: Summary, kinds: frozenset[str]) -> None:
        """Queue `summary`'s work for `kinds` (a subset of work_kinds()) as if it had just arrived; each kind is
        reported done() when finished, as for a new message."""


class WorkSweeper:
    """This node's part in once-only work. `serve()` each consumer, then `configure()` (before the store starts);
    `start()` once the consumers run; `stop_sweeping()` before they close and `close()` after, before the store."""

    def __init__(self, store: Store, *, lease: float = LEASE, interval: float = SWEEP,
                 holder: str | None = None) -> None:
        if lease <= 0 or interval <= 0:
            raise ConfigError(f"work_lease ({lease}) and work_sweep ({interval}) must be positive")
        if interval > lease / 3:
            raise ConfigError(f"work_sweep ({interval} s) must be at most a third of work_lease ({lease} s): "
                              "a holder renews its leases once a sweep, well before they end")
        self.store = store
        self.lease = lease
        self.interval = interval
        self.holder = holder or os.urandom(8).hex()
        self._consumers: list[Consumer] = []
        self._marks: list[tuple[int, str]] = []
        self._marked: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._trouble = False  # the last store call failed (said once until one succeeds)
        self.claimed = 0  # rows taken over from other nodes (or an earlier run of this one)
        self.dropped = 0  # rows given up after MAX_CLAIMS

    @classmethod
    def from_config(cls, config: Config, store: Store) -> WorkSweeper:
        extra: dict[str, Any] = config.extra
        return cls(store, lease=float(extra.get("work_lease", config.work_lease)),
                   interval=float(extra.get("work_sweep", config.work_sweep)))

    # -- wiring ----------------------------------------------------------------------------------------

    def serve(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(kind for consumer in self._consumers for kind in consumer.work_kinds()))

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def configure(self) -> None:
        """Tell the store the kinds to write with each message (nothing at all when there are none)."""
        if self.enabled:
            self.store.configure_work(self.kinds, holder=self.holder, lease=self.lease)

    # -- done marks ------------------------------------------------------------------------------------

    def done(self, uid: int, kind: str) -> None:
        """`kind` is finished for message `uid` (done or given up for good). Returns at once; written soon."""
        if not self.enabled or uid <= 0:
            return
        self._marks.append((uid, kind))
        if self._marked is not None:
            self._marked.set()

    async def _write_marks(self) -> None:
        assert self._marked is not None
        while True:
            await self._marked.wait()
            await asyncio.sleep(DONE_DELAY)
            self._marked.clear()
            if not await self._flush_marks():
                await asyncio.sleep(self.interval)
                self._marked.set()

    async def _flush_marks(self) -> bool:
        marks, self._marks = self._marks, []
        if not marks:
            return True
        try:
            await self.store.finish_work(marks)
        except _TEMPORARY as exc:
            self._marks[:0] = marks  # kept for the next try; until then the lease is renewed as usual
            self._say_trouble(exc)
            return False
        self._trouble = False
        return True

    # -- sweeping --------------------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.enabled or self._sweeper is not None:
            return
        self._marked = asyncio.Event()
        if self._marks:
            self._marked.set()
        self._writer = asyncio.create_task(self._write_marks(), name="mailnest-work-done")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="mailnest-work-sweeper")

    async def _sweep_loop(self) -> None:
        while True:  # at once first: a restarted node finishes what it held when it stopped
            try:
                await self.sweep()
            except _TEMPORARY as exc:
                self._say_trouble(exc)
            except Exception:
                log.exception("sweeping once-only work failed; trying again in %.1fs", self.interval)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Renew this node's leases, then take over work whose lease ran out; returns the rows claimed."""
        await self.store.renew_work()
        total = 0
        for _ in range(CLAIMS_PER_SWEEP):
            items = await self.store.claim_work(CLAIM_BATCH)
            self._trouble = False
            if not items:
                break
            total += len(items)
            await self._take_over(items)
            if len(items) < CLAIM_BATCH:
                break
        return total

    async def _take_over(self, items: Sequence[WorkItem]) -> None:
        kinds: dict[int, set[str]] = defaultdict(set)
        for item in items:
            if item.attempts > MAX_CLAIMS:
                self.dropped += 1
                log.error("once-only work %s for message uid %d dropped: claimed %d times, every holder stopped "
                          "before finishing it", item.kind, item.uid, item.attempts)
                self.done(item.uid, item.kind)
            else:
                kinds[item.uid].add(item.kind)
        if not kinds:
            return
        found = {s.uid: s for s in await self.store.summaries_by_uid(sorted(kinds))}
        for uid, wanted in kinds.items():
            summary = found.get(uid)
            if summary is None:  # deleted meanwhile: its work goes with it
                for kind in wanted:
                    self.done(uid, kind)
                continue
            self.claimed += len(wanted)
            log.info("taking over once-only work for message %s: %s", summary.id, ", ".join(sorted(wanted)))
            for consumer in self._consumers:
                mine = frozenset(wanted.intersection(consumer.work_kinds()))
                if mine:
                    await consumer.redo(summary, mine)

    def _say_trouble(self, exc: BaseException) -> None:
        if not self._trouble:
            self._trouble = True
            log.warning("once-only work: %s; trying again every %.1fs", exc, self.interval)

    # -- stopping --------------------------------------------------------------------------------------

    async def stop_sweeping(self) -> None:
        """Before the consumers close: take over nothing more."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def close(self) -> None:
        """After the consumers closed, before the store: write the last done marks, let go of the rest."""
        await self.stop_sweeping()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if not self.enabled:
            return
        try:
            await self._flush_marks()
            released = await self.store.release_work()
        except Exception as exc:
            log.warning("once-only work: could not release this node's work at shutdown (%s); other nodes take "
                        "it over once its lease ends", exc)
            return
        if released:
            log.warning("%d once-only job(s) not finished at shutdown: left for the next node to sweep", released)
