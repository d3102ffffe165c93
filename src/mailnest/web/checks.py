"""Mailpit's message checks and release: `GET /api/v1/message/{ID}/html-check`, `/link-check`, `/sa-check` and
`POST /api/v1/message/{ID}/release`.

- Link check is real (see `linkcheck`): links are requested, private addresses refused unless allowed.
- HTML check scores the message's HTML against the caniemail.com data set shipped in `mailnest.htmlcheck`
  (Mailpit's shape; only the first htmlcheck.MAX_HTML_CHARS are read, said in `X-Mailnest-Truncated`).
- SpamAssassin: `/sa-check` asks the spamd of `--spamassassin HOST:PORT` (`mailnest.spamd`); without one it
  answers Mailpit's shape with "Error" set and an `X-Mailnest-Unavailable` header, and `/api/v1/webui` says
  `SpamAssassin: false`.
- Release sends the stored message through the configured relay (`mailnest.outputs.relay`), only to addresses
  on `--relay-allow` or `--release-allow` and not on `--relay-deny`: 400 when no relay is configured or an address
  is refused (as Mailpit answers both; the error names the list that refused each), 502 when the upstream server
  takes it for no recipient. With `--relay-override-from` the copy sent has that sender; the stored message is
  never changed.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import htmlcheck
from ..outputs import relay as relay_module
from ..spamd import SpamdClient
from . import linkcheck
from .api import Api, ApiError, Context, fields, json_body, ok, refuse_cross_site, string_list

log = logging.getLogger("mailnest.http")

SPAMASSASSIN_UNAVAILABLE = "SpamAssassin is not available: start mailnest with --spamassassin HOST:PORT (a spamd)"


def _plausible_address(text: str) -> bool:
    _, address = email.utils.parseaddr(text)
    return bool(address) and "@" in address and not any(c.isspace() or ord(c) < 32 for c in address)


class Checks:
    def __init__(self, context: Context, api: Api) -> None:
        self.context = context
        self.api = api
        self._relay: relay_module.Relay | None = None
        spamd = context.config.spamassassin
        self._spamd = SpamdClient(spamd) if spamd else None

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/message/{id}/html-check", self.html_check, methods=["GET"]),
            Route("/api/v1/message/{id}/link-check", self.link_check, methods=["GET"]),
            Route("/api/v1/message/{id}/sa-check", self.sa_check, methods=["GET"]),
            Route("/api/v1/message/{id}/release", self.release, methods=["POST"]),
        ]

    async def html_check(self, request: Request) -> Response:
        message = await self.api.message(request)
        if not message.html:
            raise ApiError(400, "message does not contain HTML")
        body = await asyncio.to_thread(htmlcheck.check, message.html)
        headers = ({"X-Mailnest-Truncated": str(htmlcheck.MAX_HTML_CHARS)}
                   if htmlcheck.truncated(message.html) else None)
        return JSONResponse(body, headers=headers)

    async def link_check(self, request: Request) -> Response:
        refuse_cross_site(request, self.context.config, "a link check")  # it makes this server fetch URLs
        message = await self.api.message(request)
        follow = request.query_params.get("follow", "").lower() in ("1", "true", "yes")
        links = await asyncio.to_thread(linkcheck.extract, message.text, message.html)
        result = await linkcheck.check(links, follow=follow,
                                       allow_private=self.context.config.allow_private_link_check)
        return JSONResponse(result)

    async def sa_check(self, request: Request) -> Response:
        message = await self.api.message(request)
        if self._spamd is None:
            return JSONResponse({"Error": SPAMASSASSIN_UNAVAILABLE, "IsSpam": False, "Rules": [], "Score": 0},
                                headers={"X-Mailnest-Unavailable": "sa-check"})
        raw = await self.context.store.raw(message.id)
        if raw is None:
            raise ApiError(404, f"message {message.id!r} not found")
        return JSONResponse(await self._spamd.check(raw))

    def relay(self) -> Any:
        """What to release through: the runtime's output dispatcher, or a relay of our own from the config."""
        if self.context.outputs is not None:
            return self.context.outputs
        if self._relay is None:
            self._relay = relay_module.Relay.from_config(self.context.config)
        return self._relay

    async def release(self, request: Request) -> Response:
        message = await self.api.message(request)
        values = fields(await json_body(request), ["To"], example='{"To": ["someone@example.com"]}')
        to = string_list(values.get("To", []), "To")
        if not to:
            raise ApiError(400, "No valid addresses found: To must list at least one address")
        for address in to:
            if not _plausible_address(address):
                raise ApiError(400, f"Invalid email address: {address}")
        await self.release_to(message.id, [email.utils.parseaddr(a)[1] for a in to])
        return ok(request)

    async def release_to(self, message_id: str, to: list[str]) -> None:
        """Send a stored message to `to` through the relay; raises ApiError with Mailpit's codes."""
        raw = await self.context.store.raw(message_id)
        message = await self.context.store.get(message_id)
        if raw is None or message is None:
            raise ApiError(404, f"message {message_id!r} not found")
        sender = message.envelope.mail_from or (message.summary.from_.address if message.summary.from_ else "")
        target = self.relay()
        if target is None:
            raise ApiError(400, "no relay is configured: start mailnest with --relay HOST:PORT and --relay-allow "
                                "or --release-allow")
        try:
            await target.release(raw, to, sender, message_id=message_id)
        except relay_module.RelayNotConfigured as exc:
            raise ApiError(400, str(exc)) from None
        except relay_module.RelayRefused as exc:
            raise ApiError(400, f"Failed: {exc}") from None  # Mailpit's answer to an address off the allow-list
        except relay_module.RelayFailed as exc:
            raise ApiError(502, f"SMTP error: {exc}") from None
        log.info("released message %s to %s", message_id, ", ".join(to))
