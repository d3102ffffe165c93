"""Mailpit's "application" routes: `GET /api/v1/info` (runtime figures) and `GET /api/v1/webui` (UI settings)."""

from __future__ import annotations

import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__, events
from ..config import is_database_url
from ..events import Event, Hub
from ..metrics import Metrics
from ..outputs.relay import plausible_address
from ..store.select import shown
from .api import Context


class RuntimeCounters:
    """Mailpit's RuntimeStats, counted from the hub since start (mailnest counts every new message, whatever
    front door it came through, as accepted)."""

    def __init__(self, hub: Hub, metrics: Metrics | None = None) -> None:
        self.metrics = metrics  # messages refused after DATA (SMTPRejected) are counted there
        self.accepted = 0
        self.accepted_size = 0
        self.deleted = 0
        hub.add_listener(self._on_event, local_only=True)

    @property
    def rejected(self) -> int:
        return self.metrics.rejected if self.metrics is not None else 0

    def _on_event(self, event: Event) -> None:
        if isinstance(event, events.MessageAdded):
            self.accepted += 1
            self.accepted_size += event.summary.size
        elif isinstance(event, (events.MessagesDeleted, events.MessagesPruned)):
            self.deleted += len(event.ids)


class Application:
    def __init__(self, context: Context, counters: RuntimeCounters) -> None:
        self.context = context
        self.counters = counters

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/info", self.info, methods=["GET"]),
            Route("/api/v1/webui", self.webui, methods=["GET"]),
        ]

    async def info(self, request: Request) -> Response:
        store = self.context.store
        stats = await store.stats()
        tag_counts = await store.tag_counts()
        db = self.context.config.db
        # A SQLite file (the temporary one's path when there is no --db), or a PostgreSQL URL without its password.
        path = getattr(store, "path", "") if db is None or not is_database_url(db) else ""
        counters = self.counters
        return JSONResponse({
            "Version": f"v{__version__}",  # as Mailpit writes its own ("v1.30.5"; pytest-mailpit checks the "v")
            "LatestVersion": "",
            "Database": str(path) if path else shown(db),
            "DatabaseSize": _file_size(path) if path else 0,
            "Messages": stats.total,
            "Unread": stats.unread,
            "Tags": tag_counts,
            "RuntimeStats": {"Uptime": int(time.time() - self.context.started), "Memory": _rss(),
                             "MessagesDeleted": counters.deleted, "SMTPAccepted": counters.accepted,
                             "SMTPAcceptedSize": counters.accepted_size, "SMTPRejected": counters.rejected,
                             "SMTPIgnored": store.duplicates_ignored},
        })

    async def webui(self, request: Request) -> Response:
        return JSONResponse(webui_config(self.context))


def webui_config(context: Context) -> dict[str, Any]:
    """Mailpit's WebUIConfiguration. `MessageRelay.Enabled` tells the UI whether to offer "release": only with a
    relay and an allow-list to release to (without one every release is refused). AllowedRecipients are the
    patterns release accepts (`--relay-allow` and `--release-allow`; Mailpit's UI shows them as the allowlist),
    BlockedRecipients `--relay-deny`, OverrideFrom the bare address of `--relay-override-from` (the UI shows it
    as the sender, and as where bounces go: ReturnPath stays empty, mailnest has no separate one).
    PreserveMessageIDs is true: the copy sent keeps its Message-ID."""
    config = context.config
    relay = bool(config.relay)
    allowed = ", ".join(dict.fromkeys((*config.relay_allow, *config.release_allow))) if relay else ""
    override = config.relay_override_from if relay else None
    return {
        "Label": config.label or "",
        "MessageRelay": {
            "Enabled": relay and bool(allowed),
            "SMTPServer": config.relay or "",
            "ReturnPath": "",
            "AllowedRecipients": allowed,
            "BlockedRecipients": ", ".join(config.relay_deny) if relay else "",
            "OverrideFrom": (plausible_address(override) or "") if override else "",
            "PreserveMessageIDs": True,
            "RecipientAllowlist": allowed,
        },
        "SpamAssassin": bool(config.spamassassin),
        "ChaosEnabled": context.chaos.enabled,
        "DuplicatesIgnored": False,
        "HideDeleteAllButton": False,
    }


def _file_size(path: object) -> int:
    try:
        return os.path.getsize(str(path)) if path else 0
    except OSError:
        return 0


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
