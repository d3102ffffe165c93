"""Webhooks (`--webhook URL`): a POST of each new message's summary, in Mailpit's shape, to every configured URL.

The body is the message summary exactly as the `new` event and `GET /api/v1/messages` give it (Mailpit's
webhook sends the same), with `Content-Type: application/json` and `User-Agent: mailnest/VERSION`.

Ingest never waits for a webhook: the hub listener only appends to a bounded in-memory queue per URL; a worker
per URL posts in arrival order. A failed POST (connection refused, timeout, any status outside 2xx) is retried
with exponential backoff (1 s, 2 s, 4 s ... at most 60 s apart) up to 5 attempts, then given up and logged as an
error with the message ID. Nothing is dropped silently: when a queue is full (the endpoint has been failing for
a long time), new summaries for it are refused and an error is logged with the running count; at shutdown,
undelivered summaries are logged with their count. `stats()` has the figures.

With `label` set (`Config.label`, the instance's name) every POST also carries `X-Mailnest-Label: LABEL`, so one
receiver can tell several instances apart.

Once-only work (outputs/work.py): each URL is a kind of its own, `webhook:URL`. A summary posted or given up
(after its attempts, or refused by a full queue) is reported done; one still queued or retrying when the node
stops or dies is not, and the next node to sweep posts it (`redo`). Several nodes on one database post each
message once per URL.

Mailboxes on demand (`POST /api/v1/mailboxes` with a `Webhook`) have webhooks of their own: `SpaceWebhooks`
posts each message for such a mailbox's domain to its URL, the same way (body, headers, retries), but not as
once-only work (see its docstring).

Tunables in `Config.extra`: `webhook_attempts` (5), `webhook_backoff` (1.0 s), `webhook_max_backoff` (60.0 s),
`webhook_timeout` (10.0 s), `webhook_queue` (10000 summaries per URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .. import __version__
from ..config import Config, ConfigError
from ..events import Event, Hub, MessageAdded
from ..models import Summary
from ..store.base import Space, Store
from ..web import json as render
from .work import WorkSweeper

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # close() lets queued POSTs finish for this long


@dataclass
class _Target:
    url: str
    queue: deque[tuple[int, str, bytes]] = field(default_factory=deque)  # (uid, message id, body)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    task: asyncio.Task[None] | None = None
    busy: bool = False

    @property
    def kind(self) -> str:
        return kind_of(self.url)


def kind_of(url: str) -> str:
    """The once-only work kind of posting to `url` (stored in the database and logged: a password in the URL is
    replaced by a digest of the whole URL, so two URLs that differ only there stay two kinds)."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return f"webhook:{url}"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return f"webhook:{parsed.copy_with(username=None, password=None)}#{digest}"


def check_url(url: str) -> str:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"--webhook {url!r}: expected an http:// or https:// URL")
    return url


class WebhookDispatcher:
    """Posts each new message's summary to every URL. `start()` on the running loop; `close()` before the store."""

    def __init__(self, urls: Sequence[str], hub: Hub, *, attempts: int = 5, backoff: float = 1.0,
                 max_backoff: float = 60.0, timeout: float = 10.0, queue_size: int = 10000,
                 label: str | None = None, work: WorkSweeper | None = None) -> None:
        self.hub = hub
        self.label = label
        self.work = work
        self.urls = [check_url(u) for u in urls]
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.queue_size = max(1, queue_size)
        self._targets: list[_Target] = []
        self._client: httpx.AsyncClient | None = None
        self._listening = False

    @classmethod
    def from_config(cls, config: Config, hub: Hub, *, work: WorkSweeper | None = None) -> WebhookDispatcher | None:
        if not config.webhooks:
            return None
        extra: dict[str, Any] = config.extra
        return cls(config.webhooks, hub, attempts=int(extra.get("webhook_attempts", 5)),
                   backoff=float(extra.get("webhook_backoff", 1.0)),
                   max_backoff=float(extra.get("webhook_max_backoff", 60.0)),
                   timeout=float(extra.get("webhook_timeout", 10.0)),
                   queue_size=int(extra.get("webhook_queue", 10000)), label=config.label, work=work)

    def work_kinds(self) -> tuple[str, ...]:
        return tuple(kind_of(url) for url in self.urls)

    async def start(self) -> None:
        if self._client is not None:
            return
        headers = {"User-Agent": f"mailnest/{__version__}", "Content-Type": "application/json"}
        if self.label:
            headers["X-Mailnest-Label"] = self.label
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False,
                                         headers=headers)
        loop = asyncio.get_running_loop()
        for url in self.urls:
            target = _Target(url)
            target.task = loop.create_task(self._run(target), name=f"mailnest-webhook-{url}")
            self._targets.append(target)
        self._listening = True
        self.hub.add_listener(self._on_event, local_only=True)
        if self.urls:
            log.info("webhooks: posting every new message to %s", ", ".join(self.urls))

    def _on_event(self, event: Event) -> None:
        # Runs inside Hub.publish, on the ingest path: render once and queue, never wait.
        if self._listening and isinstance(event, MessageAdded):
            self._queue(event.summary, None)

    async def redo(self, summary: Summary, kinds: frozenset[str]) -> None:
        """Once-only work taken over from another node (or an earlier run): post `summary` to those URLs."""
        if self._listening:
            self._queue(summary, kinds)

    def _queue(self, summary: Summary, kinds: frozenset[str] | None) -> None:
        body = json.dumps(render.summary(summary), ensure_ascii=False).encode()
        for target in self._targets:
            if kinds is not None and target.kind not in kinds:
                continue
            if len(target.queue) >= self.queue_size:
                target.dropped += 1
                log.error("webhook %s: queue full (%d waiting), message %s NOT posted; %d refused so far",
                          target.url, len(target.queue), summary.id, target.dropped)
                self._done(summary.uid, target)
                continue
            target.queue.append((summary.uid, summary.id, body))
            target.wakeup.set()

    def _done(self, uid: int, target: _Target) -> None:
        if self.work is not None:
            self.work.done(uid, target.kind)

    def _delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    async def _post(self, url: str, body: bytes) -> str | None:
        """None on success, else why it failed."""
        assert self._client is not None
        try:
            response = await self._client.post(url, content=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _run(self, target: _Target) -> None:
        while True:
            if not target.queue:
                target.wakeup.clear()
                await target.wakeup.wait()
                continue
            await self._post_first(target)

    async def _post_first(self, target: _Target) -> None:
        """Post the first summary of the target's queue, retrying with backoff; then take it off the queue."""
        uid, message_id, body = target.queue[0]
        target.busy = True
        try:
            for attempt in range(1, self.attempts + 1):
                reason = await self._post(target.url, body)
                if reason is None:
                    target.delivered += 1
                    self._done(uid, target)
                    break
                if attempt == self.attempts:
                    target.failed += 1
                    log.error("webhook %s: gave up on message %s after %d attempts: %s", target.url, message_id,
                              attempt, reason)
                    self._done(uid, target)
                    break
                log.warning("webhook %s: message %s: %s; retrying in %.1fs", target.url, message_id, reason,
                            self._delay(attempt))
                await asyncio.sleep(self._delay(attempt))
        finally:
            target.busy = False
        target.queue.popleft()

    @property
    def _kept(self) -> bool:
        return self.work is not None and self.work.enabled

    def stats(self) -> dict[str, dict[str, int]]:
        return {t.url: {"delivered": t.delivered, "failed": t.failed, "refused": t.dropped,
                        "pending": len(t.queue)} for t in self._targets}

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued summary has been posted or given up (for tests)."""
        async def drained() -> None:
            while any(t.queue or t.busy for t in self._targets):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(drained(), timeout)

    async def close(self) -> None:
        self._listening = False
        if self._client is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.flush(CLOSE_TIMEOUT)
        await self._stop_posting()

    async def _stop_posting(self) -> None:
        """Cancel what is still being posted, say what was not, and let the HTTP client go."""
        if self._client is None:
            return
        for target in list(self._targets):
            if target.task is not None:
                target.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await target.task
            if target.queue:
                kept = " (kept as once-only work: the next node to sweep posts them)" if self._kept else ""
                log.error("webhook %s: %d message(s) not posted at shutdown (first: %s)%s", target.url,
                          len(target.queue), target.queue[0][1], kept)
        await self._client.aclose()
        self._client = None


SPACE_LOOKUP_TTL = 2.0  # seconds a space (or its absence) looked up for a domain is trusted


class SpaceWebhooks(WebhookDispatcher):
    """The webhooks of mailboxes on demand (`POST /api/v1/mailboxes` with a `Webhook`): each new message with an
    envelope recipient at a space's domain is posted to that space's URL, with the body, headers, retries and
    backoff of `--webhook`, in arrival order per URL.

    Once per message however many nodes share the store: only the node that received it posts it (local events).
    Unlike `--webhook` this is not once-only work kept in the store: a post still queued or retrying when its node
    stops or dies is logged and not made. Only mail to a domain under `suffix` (where spaces are made) costs a
    lookup: the space of the domain (trusted for SPACE_LOOKUP_TTL), then, for a space with a webhook, the
    message's envelope, since To and Cc may name addresses the message was not sent to."""

    def __init__(self, store: Store, hub: Hub, *, suffix: str, attempts: int = 5, backoff: float = 1.0,
                 max_backoff: float = 60.0, timeout: float = 10.0, queue_size: int = 10000,
                 label: str | None = None) -> None:
        super().__init__((), hub, attempts=attempts, backoff=backoff, max_backoff=max_backoff, timeout=timeout,
                         queue_size=queue_size, label=label)
        self.store = store
        self.suffix = suffix.lower().strip(".")
        self._arrived: deque[Summary] = deque()  # new mail for some space's domain, not yet looked at
        self._refused = 0  # arrivals dropped because that queue was full
        self._wake = asyncio.Event()
        self._resolving = False
        self._resolver: asyncio.Task[None] | None = None
        self._by_url: dict[str, _Target] = {}
        self._known: dict[str, tuple[float, Space | None]] = {}

    @classmethod
    def for_spaces(cls, config: Config, store: Store, hub: Hub, *, suffix: str) -> SpaceWebhooks:
        extra: dict[str, Any] = config.extra
        return cls(store, hub, suffix=suffix, attempts=int(extra.get("webhook_attempts", 5)),
                   backoff=float(extra.get("webhook_backoff", 1.0)),
                   max_backoff=float(extra.get("webhook_max_backoff", 60.0)),
                   timeout=float(extra.get("webhook_timeout", 10.0)),
                   queue_size=int(extra.get("webhook_queue", 10000)), label=config.label)

    async def start(self) -> None:
        await super().start()
        self._resolver = asyncio.get_running_loop().create_task(self._resolve(), name="mailnest-space-webhooks")

    def _on_event(self, event: Event) -> None:
        if not self._listening or not isinstance(event, MessageAdded):
            return
        if self._candidates(event.summary):
            if len(self._arrived) >= self.queue_size:
                self._refused += 1
                log.error("webhooks of mailboxes on demand: %d message(s) waiting to be looked at, message %s NOT "
                          "posted; %d refused so far", len(self._arrived), event.summary.id, self._refused)
                return
            self._arrived.append(event.summary)
            self._wake.set()

    def _candidates(self, summary: Summary) -> set[str]:
        tail = "." + self.suffix
        return {domain for a in (*summary.to, *summary.cc, *summary.bcc)
                if (domain := a.address.rpartition("@")[2].lower()).endswith(tail)}

    async def _space(self, domain: str) -> Space | None:
        now = time.monotonic()
        known = self._known.get(domain)
        if known is not None and now - known[0] < SPACE_LOOKUP_TTL:
            return known[1]
        space = await self.store.get_space(domain)
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[domain] = (now, space)
        return space

    async def _resolve(self) -> None:
        while True:
            if not self._arrived:
                self._wake.clear()
                await self._wake.wait()
                continue
            summary = self._arrived[0]
            self._resolving = True
            try:
                await self._route(summary)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhooks of mailboxes on demand: message %s not posted", summary.id)
            finally:
                self._resolving = False
                self._arrived.popleft()

    async def _route(self, summary: Summary) -> None:
        hooked = [space for domain in sorted(self._candidates(summary))
                  if (space := await self._space(domain)) is not None and space.webhook]
        if not hooked:
            return
        found = (await self.store.raw_with_envelopes([summary.id])).get(summary.id)
        if found is None:  # deleted meanwhile
            return
        domains = {rcpt.rpartition("@")[2].lower() for rcpt in found[1].rcpt_tos}
        body = json.dumps(render.summary(summary), ensure_ascii=False).encode()
        for url in dict.fromkeys(space.webhook for space in hooked if space.domain in domains and space.webhook):
            self._enqueue(url, summary, body)

    def _enqueue(self, url: str, summary: Summary, body: bytes) -> None:
        target = self._by_url.get(url)
        if target is None:
            target = self._by_url[url] = _Target(url)
            self._targets.append(target)
            target.task = asyncio.get_running_loop().create_task(self._drain(target),
                                                                 name=f"mailnest-space-webhook-{url}")
        if len(target.queue) >= self.queue_size:
            target.dropped += 1
            log.error("webhook %s: queue full (%d waiting), message %s NOT posted; %d refused so far",
                      target.url, len(target.queue), summary.id, target.dropped)
            return
        target.queue.append((summary.uid, summary.id, body))
        target.wakeup.set()

    async def _drain(self, target: _Target) -> None:
        """Post the URL's queue in order; the target goes once its queue is empty (spaces come and go)."""
        while target.queue:
            await self._post_first(target)
        self._targets.remove(target)
        del self._by_url[target.url]

    async def flush(self, timeout: float = 30.0) -> None:
        async def drained() -> None:
            while self._arrived or self._resolving or any(t.queue or t.busy for t in self._targets):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(drained(), timeout)

    async def close(self) -> None:
        # One wait of CLOSE_TIMEOUT in all, with nothing new queued meanwhile: a URL that is down must not hold a
        # stop (a container's) past its grace period.
        self._listening = False
        with contextlib.suppress(TimeoutError):
            await self.flush(CLOSE_TIMEOUT)
        if self._resolver is not None:
            self._resolver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resolver
            self._resolver = None
            if self._arrived:
                log.error("webhooks of mailboxes on demand: %d message(s) not posted at shutdown",
                          len(self._arrived))
        await self._stop_posting()
