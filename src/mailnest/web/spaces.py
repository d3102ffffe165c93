"""Mailboxes on demand, for test runs that share one server: `POST /api/v1/mailboxes` makes a throwaway address
space (a random domain under `Config.extra["mailbox_suffix"]`, `mailnest.test` by default, with an optional label
in front), with its own retention and optional webhook; `GET /api/v1/mailboxes/{domain}` shows it and
`DELETE /api/v1/mailboxes/{domain}` removes it and its mail (every delivered message with an envelope recipient
at the domain). Spaces live in the store (store/base.py `Space`), so every node of a shared database knows them;
their retention is the store's job, their webhooks outputs/webhook.py's `SpaceWebhooks`.

The body of a POST (every field optional; unknown fields are refused, unlike Mailpit's routes, so that a typo does
not silently give a space without its limit): `{"Label": "signup", "MaxMessages": 100, "MaxAge": 3600,
"Webhook": "http://ci.example:9000/hook"}`. `MaxAge` (seconds) defaults to a day, so a test run that crashed
before its DELETE leaves nothing behind for long; 0 keeps mail until deleted. `MaxMessages` 0 (the default) keeps
any number. A space past its MaxAge with no mail left is removed by the same job.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import ConfigError
from ..outputs.webhook import check_url
from ..store.base import Space, SpaceExistsError, Store
from . import json as render
from .api import ApiError, Context, json_body

log = logging.getLogger("mailnest.http")

DEFAULT_SUFFIX = "mailnest.test"  # .test is reserved for testing (RFC 2606): mail to it can never leave
DEFAULT_MAX_AGE = 86_400.0  # seconds: a day
MAX_MAX_AGE = 10 * 365 * 86_400.0
MAX_MAX_MESSAGES = 1_000_000_000
FIELDS = ("Label", "MaxMessages", "MaxAge", "Webhook")
EXAMPLE = '{"Label": "signup", "MaxMessages": 100, "MaxAge": 3600, "Webhook": "http://127.0.0.1:9000/hook"}'
LABEL_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,38}[A-Za-z0-9])?$"
# What check_url accepts, narrowed to what a schema can say: http(s), a host name, a port, a plain path.
WEBHOOK_PATTERN = r"^https?://[a-z0-9]+(\.[a-z0-9]+)*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]*)*$"
_LABEL = re.compile(LABEL_PATTERN)
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def suffix_of(config_extra: dict[str, object]) -> str:
    suffix = str(config_extra.get("mailbox_suffix", DEFAULT_SUFFIX)).lower().strip(".")
    if not _DOMAIN.fullmatch(suffix):
        raise ConfigError(f"mailbox_suffix {suffix!r} is not a domain name such as {DEFAULT_SUFFIX}")
    return suffix


def _number(values: dict[str, Any], name: str, *, whole: bool, default: float | None, maximum: float) -> Any:
    value = values.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
        kind = "a whole number" if whole else "a number of seconds"
        raise ApiError(400, f"{name} must be {kind}, not {value!r}; for example {EXAMPLE}")
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{name} must be 0 (no limit) or more, not {value!r}")
    if value > maximum:
        raise ApiError(400, f"{name} must be at most {maximum:g}, not {value!r}")
    return value


def parse_body(body: Any, *, suffix: str, now: float) -> Space:
    """The space a POST body asks for, with a new random domain; a 400 naming the bad part otherwise."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, f"expected a JSON object (or no body) such as {EXAMPLE}")
    by_lower = {name.lower(): name for name in FIELDS}
    values: dict[str, Any] = {}
    for key, value in body.items():
        name = by_lower.get(str(key).lower())
        if name is None:
            raise ApiError(400, f"unknown field {key!r}: the fields are {', '.join(FIELDS)}")
        values[name] = value
    label = values.get("Label")
    if label is not None and (not isinstance(label, str) or not _LABEL.fullmatch(label := label.strip())):
        raise ApiError(400, f"Label must be up to 40 letters, digits and '-', not starting or ending with '-' "
                            f"(a DNS label), not {values['Label']!r}")
    max_messages = _number(values, "MaxMessages", whole=True, default=0, maximum=MAX_MAX_MESSAGES)
    max_age = _number(values, "MaxAge", whole=False, default=DEFAULT_MAX_AGE, maximum=MAX_MAX_AGE)
    webhook = values.get("Webhook")
    if webhook is not None:
        if isinstance(webhook, str):
            webhook = webhook.strip()
        if not isinstance(webhook, str):
            raise ApiError(400, f"Webhook must be an http:// or https:// URL, not {webhook!r}")
        try:
            check_url(webhook)
        except (ConfigError, httpx.InvalidURL):
            raise ApiError(400, f"Webhook {webhook!r}: expected an http:// or https:// URL with a host, "
                                "such as http://127.0.0.1:9000/hook") from None
        if "@" in webhook.split("://", 1)[-1].split("/", 1)[0]:
            # A mailbox on demand is shown to every API client (and logged): a password in its URL would be too.
            raise ApiError(400, "Webhook: a user name or password in the URL would be shown to everyone who can "
                                "read the API; give a URL without one (a token in its path, if the receiver needs one)")
    token = secrets.token_hex(5)
    domain = f"{label.lower()}-{token}.{suffix}" if label else f"{token}.{suffix}"
    return Space(domain=domain, created=now, max_messages=int(max_messages or 0),
                 max_age=float(max_age) if max_age else None, webhook=webhook or None)


def render_space(space: Space, *, total: int = 0, unread: int = 0) -> dict[str, Any]:
    return {
        "Domain": space.domain,
        "Address": f"user@{space.domain}",  # an example: any local part at the domain is the space's
        "Mailbox": "@" + space.domain,  # the `mailbox` parameter of the message lists and of /api/v1/wait
        "Query": f"mailbox:@{space.domain}",  # the search term (a recipient address containing it)
        "MaxMessages": space.max_messages,
        "MaxAge": space.max_age if space.max_age is not None else 0,
        "Webhook": space.webhook,
        "Created": render.rfc3339(datetime.fromtimestamp(space.created, UTC)),
        "Total": total,
        "Unread": unread,
    }


class Spaces:
    """The routes. The spaces' webhooks are the server's (runtime.py starts `SpaceWebhooks` with the store)."""

    def __init__(self, context: Context) -> None:
        self.store: Store = context.store
        self.suffix = suffix_of(context.config.extra)

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/mailboxes", self.create, methods=["POST"]),
            Route("/api/v1/mailboxes/{domain}", self.show, methods=["GET"]),
            Route("/api/v1/mailboxes/{domain}", self.delete, methods=["DELETE"]),
        ]

    async def create(self, request: Request) -> Response:
        space = parse_body(await json_body(request), suffix=self.suffix, now=time.time())
        try:
            await self.store.create_space(space)
        except SpaceExistsError:  # 40 random bits: only if someone guessed one
            raise ApiError(409, f"{space.domain} was taken meanwhile; send the request again") from None
        log.info("mailbox on demand %s created (max %s messages, max age %s s%s)", space.domain,
                 space.max_messages or "any", space.max_age or "any", ", with a webhook" if space.webhook else "")
        return JSONResponse(render_space(space), status_code=201,
                            headers={"Location": f"/api/v1/mailboxes/{space.domain}"})

    async def _space(self, request: Request) -> Space:
        domain = str(request.path_params["domain"]).lower()
        space = await self.store.get_space(domain) if _DOMAIN.fullmatch(domain) else None
        if space is None:
            raise ApiError(404, f"no mailbox on demand for {domain} (deleted, expired, or never made); make one "
                                "with POST /api/v1/mailboxes")
        return space

    async def show(self, request: Request) -> Response:
        space = await self._space(request)
        stats = await self.store.stats(mailbox="@" + space.domain)
        return JSONResponse(render_space(space, total=stats.total, unread=stats.unread))

    async def delete(self, request: Request) -> Response:
        space = await self._space(request)
        deleted = await self.store.delete_space(space.domain)
        if deleted is None:  # deleted by another request meanwhile
            raise ApiError(404, f"no mailbox on demand for {space.domain} (deleted meanwhile)")
        log.info("mailbox on demand %s deleted with %d message(s)", space.domain, len(deleted))
        return JSONResponse({"Domain": space.domain, "Deleted": len(deleted)})
