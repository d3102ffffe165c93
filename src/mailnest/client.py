"""The Python client for mailnest's HTTP API (Mailpit API v1 shapes), synchronous and asynchronous.

Works against any mailnest, local or remote: it speaks HTTP only. Waiting is done by the server's long-poll
`GET /api/v1/wait`, never by polling here, so `wait_for` returns as soon as the mail is stored (when the server
already has as many waiting clients as it keeps, it answers 503 and `wait_for` tries again after the
Retry-After it gives, within its timeout).

A message's envelope (`Mail.envelope`, a `mailnest.models.Envelope`) has `mail_from == "<>"` for the null sender
of bounces and delivery reports (`MAIL FROM:<>`), as the API shows it. `folders()` lists INBOX (delivered mail)
and the folders IMAP clients made; search a folder with the query `folder:NAME`.

Mailboxes on demand, for test runs sharing one server: `create_mailbox(...)` makes a throwaway random domain with
its own retention (and optional webhook) and returns it as a `Mailbox`; `delete_mailbox(...)` removes it and its
mail. A server without them (mailnest before they came) raises `NotSupportedError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from . import search
from .received import Mail, MailPage, MailSummary

__all__ = [
    "AsyncClient",
    "Client",
    "Folder",
    "Mailbox",
    "MailnestError",
    "NotFoundError",
    "NotSupportedError",
    "QueryError",
    "ServerUnavailableError",
    "WaitTimeoutError",
]

_API = "api/v1"
_SLACK = 5.0  # seconds the HTTP read may outlast the server's own wait timeout
_DESCRIBE_LIMIT = 10  # how many arrivals a timeout message lists


class MailnestError(Exception):
    """The server refused a request or could not be reached; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class QueryError(MailnestError, search.QueryError):
    """The server could not understand a search query; `reason` is its explanation.

    A mailnest.search.QueryError too, so one `except` serves code that both parses and sends queries.
    """

    def __init__(self, query: str, reason: str, *, status: int | None = 400) -> None:
        super().__init__(f"mailnest rejected the query {query!r}: {reason}", status=status, reason=reason)
        self.query = query


class NotFoundError(MailnestError, LookupError):
    """No message (or part) with that ID."""


class NotSupportedError(MailnestError):
    """The server does not have this route (an older mailnest, or a Mailpit)."""


class ServerUnavailableError(MailnestError, ConnectionError):
    """Nothing answered at the base URL."""


class WaitTimeoutError(MailnestError, TimeoutError):
    """`wait_for` gave up: says what was awaited and lists what did arrive in the same view."""

    def __init__(self, *, query: str, count: int, timeout: float, mailbox: str | None,
                 matched: MailPage, arrived: MailPage) -> None:
        self.query, self.count, self.timeout, self.mailbox = query, count, timeout, mailbox
        self.matched, self.arrived = matched, arrived
        super().__init__(self._explain(), status=408, reason="timeout")

    def _explain(self) -> str:
        what = f"{self.count} message{'s' if self.count != 1 else ''}"
        if self.query:
            what += f" matching {self.query!r}"
        where = f"mailbox {self.mailbox!r}" if self.mailbox else "all mail"
        lines = [f"waited {self.timeout:g}s for {what} in {where}; "
                 f"{self.matched.messages_count} matched, {self.arrived.messages_count} arrived there in all"]
        for summary in self.arrived.messages[:_DESCRIBE_LIMIT]:
            mark = "matched" if any(m.id == summary.id for m in self.matched) else "did not match"
            lines.append(f"  - {summary} ({mark})")
        if self.arrived.messages_count > _DESCRIBE_LIMIT:
            lines.append(f"  ... and {self.arrived.messages_count - _DESCRIBE_LIMIT} more")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder: "INBOX" (delivered mail, owner "") or one an IMAP client made (owner: its login, "*" for the
    catch-all login)."""

    name: str
    owner: str
    total: int
    unread: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Folder:
        return cls(str(data["Name"]), str(data.get("Owner") or ""), int(data.get("Total") or 0),
                   int(data.get("Unread") or 0))


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox on demand: every address at `domain` is its own, its mail goes by its retention (`max_messages`
    newest kept, 0: any number; mail older than `max_age` seconds goes, 0: kept until deleted) and each message is
    POSTed to `webhook` when set. List its mail with `client.messages(mailbox=box.mailbox)`, wait with
    `client.wait_for(mailbox=box.mailbox)`, or search with `box.query`."""

    domain: str
    mailbox: str  # "@domain": the `mailbox` argument of messages(), search() and wait_for()
    query: str  # the search term that selects its mail
    max_messages: int
    max_age: float
    webhook: str | None
    created: datetime
    total: int = 0
    unread: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mailbox:
        return cls(domain=str(data["Domain"]), mailbox=str(data.get("Mailbox") or "@" + str(data["Domain"])),
                   query=str(data.get("Query") or f"mailbox:@{data['Domain']}"),
                   max_messages=int(data.get("MaxMessages") or 0), max_age=float(data.get("MaxAge") or 0),
                   webhook=data.get("Webhook") or None,
                   created=datetime.fromisoformat(str(data["Created"]).replace("Z", "+00:00")),
                   total=int(data.get("Total") or 0), unread=int(data.get("Unread") or 0))

    def address(self, name: str = "user") -> str:
        """An address of this mailbox: address("alice") -> alice@<domain>."""
        return f"{name}@{self.domain}"


def _mailbox_body(label: str | None, max_messages: int | None, max_age: float | None,
                  webhook: str | None) -> dict[str, object]:
    given = {"Label": label, "MaxMessages": max_messages, "MaxAge": max_age, "Webhook": webhook}
    return {name: value for name, value in given.items() if value is not None}


def _mailbox_created(response: httpx.Response) -> Mailbox:
    return Mailbox.from_json(response.json())


def _domain(mailbox: str | Mailbox) -> str:
    domain = mailbox.domain if isinstance(mailbox, Mailbox) else mailbox.removeprefix("@")
    if not domain or "/" in domain:
        raise ValueError(f"{mailbox!r} is not the domain of a mailbox on demand")
    return domain


def _folders(data: Mapping[str, Any]) -> list[Folder]:
    return [Folder.from_json(item) for item in data.get("Folders") or ()]


def _retry_after(response: httpx.Response, deadline: float) -> float | None:
    """Seconds to wait before asking again, for a 503 with Retry-After that leaves time before `deadline`."""
    if response.status_code != 503:
        return None
    try:
        delay = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    remaining = deadline - time.monotonic()
    return min(max(delay, 0.1), remaining) if remaining > 0.1 else None


def _ids(ids: str | Iterable[str]) -> list[str]:
    return [ids] if isinstance(ids, str) else list(ids)


def _view(mailbox: str | None, **params: object) -> dict[str, str]:
    """Query parameters, leaving out the ones not given so any Mailpit-compatible server accepts them."""
    result = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    if mailbox:
        result["mailbox"] = mailbox.lower()
    return result


def _error_reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, Mapping):
        return str(body.get("Error") or body.get("error") or body)
    return str(body)


_NO_MAILBOX = "no mailbox on demand"  # how the server's 404 for a mailbox on demand begins


def _raise_for(response: httpx.Response, *, query: str | None = None, on_demand: bool = False) -> None:
    """`on_demand`: a mailbox on demand route, which an older server answers 404 or 405 (no such route)."""
    if response.is_success:
        return
    reason = _error_reason(response)
    status = response.status_code
    request = f"{response.request.method} {response.request.url.path}"
    if status == 400 and query is not None:
        raise QueryError(query, reason, status=status)
    if on_demand and (status == 405 or (status == 404 and not reason.startswith(_NO_MAILBOX))):
        raise NotSupportedError(f"{request}: this server does not have it (HTTP {status}: {reason}); "
                                "is it an older mailnest?", status=status, reason=reason)
    if status == 404:
        raise NotFoundError(f"{request}: {reason}", status=status, reason=reason)
    raise MailnestError(f"{request} failed with HTTP {status}: {reason}", status=status, reason=reason)


def _unavailable(base_url: httpx.URL, error: httpx.TransportError) -> ServerUnavailableError:
    return ServerUnavailableError(f"mailnest at {base_url} did not answer ({error.__class__.__name__}: {error}); "
                                  "is the server running and the URL right?")


def _change_body(ids: str | Iterable[str], what: str, **fields: object) -> dict[str, object]:
    chosen = _ids(ids)
    if not chosen:
        # The API reads an empty ID list as "every message"; asking for nothing must not mean everything.
        raise ValueError(f"{what}: no message IDs given (use {what}_all() to mean every message)")
    return {"IDs": chosen, **fields}


class _Common:
    def __init__(self, base_url: str) -> None:
        url = httpx.URL(base_url)
        if not url.scheme or not url.host:
            raise ValueError(f"base_url {base_url!r} needs a scheme and a host, as in http://127.0.0.1:8025")
        self.base_url = url

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({str(self.base_url)!r})"

    @staticmethod
    def _wait_params(query: str, count: int, timeout: float, mailbox: str | None) -> dict[str, str]:
        if count < 1:
            raise ValueError("count must be at least 1")
        if timeout < 0:
            raise ValueError("timeout must not be negative")
        return _view(mailbox, query=query, count=count, timeout=f"{timeout:g}")


class Client(_Common):
    """Synchronous client. `Client("http://127.0.0.1:8025")`; use it as a context manager or call close()."""

    def __init__(self, base_url: str = "http://127.0.0.1:8025", *, timeout: float = 10.0,
                 auth: httpx.Auth | tuple[str, str] | None = None, headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, auth=auth, headers=headers,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, *, query: str | None = None, on_demand: bool = False,
              **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, f"{_API}/{path}", **kwargs)
        except httpx.TransportError as error:
            raise _unavailable(self.base_url, error) from error
        _raise_for(response, query=query, on_demand=on_demand)
        return response

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", "info").json()
        return result

    def messages(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> MailPage:
        """One page of messages, newest first; `mailbox` limits it to mail for that recipient."""
        params = _view(mailbox, start=start or None, limit=limit)
        return MailPage.from_json(self._send("GET", "messages", params=params).json())

    def search(self, query: str, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> MailPage:
        params = _view(mailbox, query=query, start=start or None, limit=limit)
        return MailPage.from_json(self._send("GET", "search", params=params, query=query).json())

    def get(self, id: str = "latest") -> Mail:
        """The whole message: parsed fields, raw bytes (for `.email` and attachment content), envelope."""
        data = self._send("GET", f"message/{id}").json()
        return Mail.from_json(data, self.raw(str(data["ID"])))

    def raw(self, id: str) -> bytes:
        return self._send("GET", f"message/{id}/raw").content

    def part(self, id: str, part_id: str) -> bytes:
        return self._send("GET", f"message/{id}/part/{part_id}").content

    def folders(self) -> list[Folder]:
        """INBOX, then every folder IMAP clients made, with counts."""
        return _folders(self._send("GET", "folders").json())

    def delete(self, ids: str | Iterable[str] = (), *, query: str | None = None) -> None:
        """Delete the given messages, or every message matching `query`."""
        if query is not None:
            self._send("DELETE", "search", params={"query": query}, query=query)
        else:
            self._send("DELETE", "messages", json=_change_body(ids, "delete"))

    def delete_all(self) -> None:
        self._send("DELETE", "messages")

    def mark_read(self, ids: str | Iterable[str], read: bool = True) -> None:
        self._send("PUT", "messages", json=_change_body(ids, "mark_read", Read=read))

    def mark_read_all(self, read: bool = True) -> None:
        self._send("PUT", "messages", json={"IDs": [], "Read": read})

    def create_mailbox(self, *, label: str | None = None, max_messages: int | None = None,
                       max_age: float | None = None, webhook: str | None = None) -> Mailbox:
        """A new mailbox on demand (a random domain, `label` in front); the server's defaults for what is not
        given (max_age: a day). NotSupportedError from a server without them."""
        return _mailbox_created(self._send("POST", "mailboxes", on_demand=True,
                                           json=_mailbox_body(label, max_messages, max_age, webhook)))

    def mailbox(self, domain: str | Mailbox) -> Mailbox:
        """A mailbox on demand as it is now (with its counts); NotFoundError once it is gone."""
        return Mailbox.from_json(self._send("GET", f"mailboxes/{_domain(domain)}", on_demand=True).json())

    def delete_mailbox(self, domain: str | Mailbox) -> int:
        """Remove a mailbox on demand and its mail; returns how many messages went. NotFoundError if it is gone."""
        return int(self._send("DELETE", f"mailboxes/{_domain(domain)}", on_demand=True).json().get("Deleted") or 0)

    def wait_for(self, query: str = "", *, count: int = 1, timeout: float = 10.0,
                 mailbox: str | None = None) -> list[Mail]:
        """Block until `count` messages match `query` (in `mailbox`, if given), then return the newest `count` of
        them in full, newest first: exactly `count`, so `[mail] = client.wait_for(...)` holds however many matches a
        long-running server has. Messages already there when it is called count too: aim at a unique address or
        subject (the pytest plugin's addresses are), or delete first.

        Raises WaitTimeoutError after `timeout` seconds, QueryError for a query the server rejects.
        """
        __tracebackhide__ = True  # a failing test's report starts at the test's call, not in here
        deadline = time.monotonic() + timeout
        params = self._wait_params(query, count, timeout, mailbox)
        while True:
            try:
                response = self._http.get(f"{_API}/wait", params=params, timeout=timeout + _SLACK)
            except httpx.TransportError as error:
                raise _unavailable(self.base_url, error) from error
            delay = _retry_after(response, deadline)
            if delay is None:
                break
            time.sleep(delay)
            params = self._wait_params(query, count, max(0.0, deadline - time.monotonic()), mailbox)
        if response.status_code == 408:
            arrived = self.messages(mailbox=mailbox, limit=_DESCRIBE_LIMIT)
            matched = self.search(query, mailbox=mailbox, limit=_DESCRIBE_LIMIT) if query else arrived
            raise WaitTimeoutError(query=query, count=count, timeout=timeout, mailbox=mailbox,
                                   matched=matched, arrived=arrived)
        _raise_for(response, query=query)
        return [self.get(s.id) for s in list(MailPage.from_json(response.json()))[:count]]


class AsyncClient(_Common):
    """The same API for asyncio code: every method is a coroutine. `async with AsyncClient(url) as client:`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8025", *, timeout: float = 10.0,
                 auth: httpx.Auth | tuple[str, str] | None = None, headers: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, auth=auth, headers=headers,
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, method: str, path: str, *, query: str | None = None, on_demand: bool = False,
                    **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, f"{_API}/{path}", **kwargs)
        except httpx.TransportError as error:
            raise _unavailable(self.base_url, error) from error
        _raise_for(response, query=query, on_demand=on_demand)
        return response

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self._send("GET", "info")).json()
        return result

    async def messages(self, *, mailbox: str | None = None, start: int = 0, limit: int = 50) -> MailPage:
        params = _view(mailbox, start=start or None, limit=limit)
        return MailPage.from_json((await self._send("GET", "messages", params=params)).json())

    async def search(self, query: str, *, mailbox: str | None = None, start: int = 0,
                     limit: int = 50) -> MailPage:
        params = _view(mailbox, query=query, start=start or None, limit=limit)
        return MailPage.from_json((await self._send("GET", "search", params=params, query=query)).json())

    async def get(self, id: str = "latest") -> Mail:
        if id == "latest":  # the raw must come from the same message, so resolve the ID first
            id = str((await self._send("GET", "message/latest")).json()["ID"])
        data, raw = await asyncio.gather(self._send("GET", f"message/{id}"), self.raw(id))
        return Mail.from_json(data.json(), raw)

    async def raw(self, id: str) -> bytes:
        return (await self._send("GET", f"message/{id}/raw")).content

    async def part(self, id: str, part_id: str) -> bytes:
        return (await self._send("GET", f"message/{id}/part/{part_id}")).content

    async def folders(self) -> list[Folder]:
        return _folders((await self._send("GET", "folders")).json())

    async def delete(self, ids: str | Iterable[str] = (), *, query: str | None = None) -> None:
        if query is not None:
            await self._send("DELETE", "search", params={"query": query}, query=query)
        else:
            await self._send("DELETE", "messages", json=_change_body(ids, "delete"))

    async def delete_all(self) -> None:
        await self._send("DELETE", "messages")

    async def mark_read(self, ids: str | Iterable[str], read: bool = True) -> None:
        await self._send("PUT", "messages", json=_change_body(ids, "mark_read", Read=read))

    async def mark_read_all(self, read: bool = True) -> None:
        await self._send("PUT", "messages", json={"IDs": [], "Read": read})

    async def create_mailbox(self, *, label: str | None = None, max_messages: int | None = None,
                             max_age: float | None = None, webhook: str | None = None) -> Mailbox:
        return _mailbox_created(await self._send("POST", "mailboxes", on_demand=True,
                                                 json=_mailbox_body(label, max_messages, max_age, webhook)))

    async def mailbox(self, domain: str | Mailbox) -> Mailbox:
        return Mailbox.from_json((await self._send("GET", f"mailboxes/{_domain(domain)}", on_demand=True)).json())

    async def delete_mailbox(self, domain: str | Mailbox) -> int:
        response = await self._send("DELETE", f"mailboxes/{_domain(domain)}", on_demand=True)
        return int(response.json().get("Deleted") or 0)

    async def wait_for(self, query: str = "", *, count: int = 1, timeout: float = 10.0,
                       mailbox: str | None = None) -> list[Mail]:
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        params = self._wait_params(query, count, timeout, mailbox)
        while True:
            try:
                response = await self._http.get(f"{_API}/wait", params=params, timeout=timeout + _SLACK)
            except httpx.TransportError as error:
                raise _unavailable(self.base_url, error) from error
            delay = _retry_after(response, deadline)
            if delay is None:
                break
            await asyncio.sleep(delay)
            params = self._wait_params(query, count, max(0.0, deadline - time.monotonic()), mailbox)
        if response.status_code == 408:
            arrived = await self.messages(mailbox=mailbox, limit=_DESCRIBE_LIMIT)
            matched = await self.search(query, mailbox=mailbox, limit=_DESCRIBE_LIMIT) if query else arrived
            raise WaitTimeoutError(query=query, count=count, timeout=timeout, mailbox=mailbox,
                                   matched=matched, arrived=arrived)
        _raise_for(response, query=query)
        summaries: list[MailSummary] = list(MailPage.from_json(response.json()))[:count]
        return list(await asyncio.gather(*(self.get(s.id) for s in summaries)))
