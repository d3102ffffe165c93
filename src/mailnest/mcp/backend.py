"""The mailnest the MCP tools talk to: its HTTP API, through `mailnest.client`, with what the tools add to it.

Every tool goes through the API, never round it, so an agent has exactly the access of the login it presents
(the same Host check, authentication and, where the server limits a login to some mailboxes, the same view).
`Target` says where the API is: a base URL with optional credentials, and an optional httpx transport (an
`httpx.ASGITransport` reaches the API of the application the MCP endpoint is mounted in without a socket).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from mailnest.client import AsyncClient, MailnestError
from mailnest.received import MailPage

_SLACK = 5.0  # seconds the HTTP read may outlast the server's own wait timeout
_BUSY_RETRY = 1.0  # seconds before asking again when the server has too many waiting clients
MAX_WAIT_COUNT = 1000  # the API's largest `count` for /api/v1/wait


class WaitTimeout(MailnestError, TimeoutError):
    """A wait ended without the messages; the message says what was awaited and what is there."""


@dataclass(frozen=True)
class Target:
    """Where the API is and how to log in to it."""

    base_url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False, compare=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_url(cls, url: str, *, user: str | None = None, password: str | None = None) -> Target:
        """`http://user:password@host:port/` -> the URL without its userinfo, and those credentials (percent
        -decoded); `user` and `password` are used when the URL has none."""
        parts = urlsplit(url)
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            netloc = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=netloc))
        auth = (user, password or "") if user else None
        return cls(url, auth=auth)

    def client(self, *, timeout: float = 10.0) -> MailApi:
        return MailApi(self.base_url, timeout=timeout, auth=self.auth, headers=dict(self.headers),
                       transport=self.transport)


class MailApi(AsyncClient):
    """The async client, plus the send API, a bare count and a wait that returns only the page of matches."""

    async def send_message(self, body: dict[str, Any]) -> str:
        """POST /api/v1/send (Mailpit's shape); the stored message's ID."""
        response = await self._send("POST", "send", json=body)
        return str(response.json()["ID"])

    async def matching(self, query: str, *, mailbox: str | None) -> int:
        """How many messages match `query` (every message for "") in `mailbox` (all mail for None)."""
        page = await (self.search(query, mailbox=mailbox, limit=1) if query
                      else self.messages(mailbox=mailbox, limit=1))
        return page.messages_count

    async def wait_page(self, query: str, *, count: int, timeout: float, mailbox: str | None) -> MailPage:
        """Block (server side, GET /api/v1/wait) until `count` messages match; the page of matches, newest
        first. Raises WaitTimeout when time is up, QueryError for a query the server rejects."""
        deadline = time.monotonic() + timeout
        while True:
            params = self._wait_params(query, count, max(0.0, deadline - time.monotonic()), mailbox)
            try:
                response = await self._send("GET", "wait", params=params, query=query or None,
                                            timeout=timeout + _SLACK)
            except MailnestError as exc:
                if exc.status == 408:
                    raise WaitTimeout(f"timed out after {timeout:g}s", status=408, reason="timeout") from None
                # 503: the server has as many waiting clients as it keeps; ask again while there is time.
                if exc.status == 503 and time.monotonic() + _BUSY_RETRY < deadline:
                    await asyncio.sleep(_BUSY_RETRY)
                    continue
                raise
            return MailPage.from_json(response.json())
