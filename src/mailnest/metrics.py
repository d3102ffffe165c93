"""Prometheus metrics at `/metrics` (prometheus-client's text format), one registry per server (an embedded test
server and the CLI's never mix their counts).

What is counted, and where it comes from:
- messages stored, their bytes, and messages deleted on request or by retention: the hub's events of this node
  (on a team instance each node counts what it received and deleted; a sum over nodes is the team's figure);
- connections admitted and open, per protocol (SMTP, IMAP, POP3, and their implicit-TLS listeners), and refused
  over the caps: each listener's ConnectionLimits reports to `connection_opened`/`connection_refused`;
- SMTP replies that refuse (4xx, 5xx), by code, and messages refused after DATA: the SMTP session reports each;
- HTTP requests, by method, route template (`/api/v1/message/{id}`, never the ID itself, so the series stay
  few) and status, with a latency histogram: `HttpMetrics`, the outermost middleware;
- webhook deliveries and relayed, forwarded and released recipients by outcome: the dispatchers' own counts;
- the store's message count, unread count and size, read when Prometheus scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .events import AllDeleted, Event, Hub, MessageAdded, MessagesDeleted, MessagesPruned
from .models import Stats

# Seconds; an API call is a few ms, a long poll up to minutes.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0)


class Metrics:
    """The counters of one server, and the text Prometheus scrapes."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.messages_stored = Counter("mailnest_messages_stored", "Messages stored (SMTP, the send API, imports, "
                                       "IMAP APPEND) by this node", registry=registry)
        self.bytes_stored = Counter("mailnest_message_bytes_stored", "Bytes of the messages stored by this node",
                                    registry=registry)
        self.messages_deleted = Counter("mailnest_messages_deleted", "Messages deleted by this node: on request "
                                        "(API, IMAP, POP3) or by retention (--max-messages, --max-age)", ["reason"],
                                        registry=registry)
        self.deleted_all = Counter("mailnest_delete_all", "Times every delivered message was deleted at once (not "
                                   "counted in mailnest_messages_deleted)", registry=registry)
        self.connections = Counter("mailnest_connections", "Connections admitted, by listener", ["protocol"],
                                   registry=registry)
        self.connections_refused = Counter("mailnest_connections_refused", "Connections refused over "
                                           "--max-connections or --max-connections-per-client", ["protocol"],
                                           registry=registry)
        self.connections_open = Gauge("mailnest_connections_open", "Connections open now, by listener",
                                      ["protocol"], registry=registry)
        self.smtp_refused = Counter("mailnest_smtp_refused", "SMTP replies that refused (4xx, 5xx), by code",
                                    ["code"], registry=registry)
        self.smtp_rejected_messages = Counter("mailnest_smtp_rejected_messages", "Messages refused after DATA "
                                              "(Mailpit's SMTPRejected)", registry=registry)
        self.http_requests = Counter("mailnest_http_requests", "HTTP requests answered", ["method", "route",
                                                                                          "status"],
                                     registry=registry)
        self.http_latency = Histogram("mailnest_http_request_duration_seconds", "Time to answer an HTTP request "
                                      "(long polls included)", ["method", "route"], buckets=_LATENCY_BUCKETS,
                                      registry=registry)
        self._outcomes = _Outcomes()
        registry.register(self._outcomes)
        self.store_messages = Gauge("mailnest_store_messages", "Messages in the store", registry=registry)
        self.store_unread = Gauge("mailnest_store_unread_messages", "Unread messages in the store",
                                  registry=registry)
        self.store_bytes = Gauge("mailnest_store_message_bytes", "Bytes of the messages in the store",
                                 registry=registry)
        for reason in ("request", "retention"):
            self.messages_deleted.labels(reason)
        if hub is not None:
            hub.add_listener(self._on_event, local_only=True)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageAdded):
            self.messages_stored.inc()
            self.bytes_stored.inc(event.summary.size)
        elif isinstance(event, MessagesDeleted):
            self.messages_deleted.labels("request").inc(len(event.ids))
        elif isinstance(event, MessagesPruned):
            self.messages_deleted.labels("retention").inc(len(event.ids))
        elif isinstance(event, AllDeleted):
            self.deleted_all.inc()

    # Reported by the front doors and the dispatchers --------------------------------------------------------

    def listener(self, name: str) -> ListenerMetrics:
        """The connection counts of one listener (smtp, smtps, imap, imaps, pop3, pop3s): a ConnectionObserver."""
        return ListenerMetrics(self, name)

    def smtp_reply(self, reply: str, *, in_data: bool = False) -> None:
        """Count an SMTP reply if it refuses (4xx, 5xx), by its code; one given while a message was being taken
        (after DATA: too big, timed out, not storable, refused by chaos or a handler) is a rejected message."""
        code = reply[:3]
        if code[:1] in ("4", "5") and code.isdigit():
            self.smtp_refused.labels(code).inc()
            if in_data:
                self.smtp_rejected_messages.inc()

    @property
    def rejected(self) -> int:
        """Messages refused after DATA so far (/api/v1/info's SMTPRejected), read from their counter."""
        return int(self.registry.get_sample_value("mailnest_smtp_rejected_messages_total") or 0)

    def watch(self, *, webhooks: WebhookCounts | None = None, relay: RelayCounts | None = None) -> None:
        """Report what the webhook dispatcher and the relay count themselves, read at each scrape."""
        self._outcomes.webhooks = webhooks
        self._outcomes.relay = relay

    # Scraping --------------------------------------------------------------------------------------------

    def render(self, stats: Stats) -> bytes:
        self.store_messages.set(stats.total)
        self.store_unread.set(stats.unread)
        self.store_bytes.set(stats.size)
        return generate_latest(self.registry)


class WebhookCounts(Protocol):
    def stats(self) -> dict[str, dict[str, int]]: ...


class RelayCounts(Protocol):
    @property
    def outcomes(self) -> Mapping[str, int]: ...


class _Outcomes(Collector):
    """Webhook deliveries and relay recipients by outcome, from the dispatchers' own counts."""

    def __init__(self) -> None:
        self.webhooks: WebhookCounts | None = None
        self.relay: RelayCounts | None = None

    def collect(self) -> Iterator[Metric]:
        posts = CounterMetricFamily("mailnest_webhook_deliveries", "Webhook POSTs by outcome: delivered, failed "
                                    "(given up after the retries), refused (the queue was full)", labels=["outcome"])
        totals = {"delivered": 0, "failed": 0, "refused": 0}
        for figures in (self.webhooks.stats().values() if self.webhooks is not None else ()):
            for outcome in totals:
                totals[outcome] += figures.get(outcome, 0)
        for outcome, count in totals.items():
            posts.add_metric([outcome], count)
        yield posts
        recipients = CounterMetricFamily("mailnest_relay_recipients", "Recipients of relayed, forwarded and "
                                         "released mail by outcome: sent, failed (given up)", labels=["outcome"])
        for outcome in ("sent", "failed"):
            recipients.add_metric([outcome], self.relay.outcomes.get(outcome, 0) if self.relay is not None else 0)
        yield recipients


class ListenerMetrics:
    """What one listener's ConnectionLimits report (limits.ConnectionObserver)."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self._admitted = metrics.connections.labels(name)
        self._open = metrics.connections_open.labels(name)
        self._refused = metrics.connections_refused.labels(name)

    def opened(self) -> None:
        self._admitted.inc()
        self._open.inc()

    def closed(self) -> None:
        self._open.dec()

    def refused(self) -> None:
        self._refused.inc()


def metrics_endpoint(metrics: Metrics, stats: Callable[[], Awaitable[Stats]]) -> Callable[[Request],
                                                                                         Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(metrics.render(await stats()), media_type=CONTENT_TYPE_LATEST)

    return endpoint


class HttpMetrics:
    """ASGI middleware: each HTTP request's count and latency, by method, route template and status. A path no
    route matches is counted as route "unmatched" (a scanner's random paths must not each make a series)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = _route(scope)
            method = str(scope.get("method", ""))
            method = method if method in _METHODS else "other"  # any token is a method to uvicorn: keep series few
            self.metrics.http_requests.labels(method, route, str(status[0])).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - started)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
