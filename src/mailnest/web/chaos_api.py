"""Mailpit's chaos routes, `GET`/`PUT /api/v1/chaos`: the SMTP triggers (Sender, Recipient, Authentication, each
an ErrorCode and a Probability in percent). Like Mailpit, they answer 400 unless chaos was enabled at start
(`--chaos`, even `--chaos on`). The rest of the chaos settings (latency, drops, rate limit) come from `--chaos`
and are kept when the triggers change; MailHog's Jim (`/api/v2/jim`) sets the same state."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import chaos
from .api import ApiError, Context, json_body


class ChaosApi:
    def __init__(self, context: Context) -> None:
        self.chaos = context.chaos

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/chaos", self.get, methods=["GET"]),
            Route("/api/v1/chaos", self.put, methods=["PUT"]),
        ]

    def _check(self) -> None:
        if not self.chaos.enabled:
            raise ApiError(400, "Chaos is not enabled (start mailnest with --chaos, e.g. --chaos on)")

    async def get(self, request: Request) -> Response:
        self._check()
        return JSONResponse(chaos.to_mailpit(self.chaos.settings))

    async def put(self, request: Request) -> Response:
        self._check()
        body = await json_body(request)
        try:
            settings = chaos.from_mailpit({} if body is None else body, self.chaos.settings)
        except chaos.ChaosError as exc:
            raise ApiError(400, str(exc)) from None
        self.chaos.update(settings)
        return JSONResponse(chaos.to_mailpit(settings))
