"""Mailpit's link check: every http(s) link in a message, requested, with the status each answered.

Links come from the HTML (`href` and `src` attributes) and from URLs written in the text. Each is requested with
HEAD (GET when the server refuses HEAD), without following redirects unless asked (`?follow=true`, then at most
MAX_REDIRECTS hops, each checked again).

A captured message is untrusted input and this runs on the developer's machine, so by default no request goes to
a private, loopback, link-local, multicast, reserved or unspecified address: the host name is resolved first,
every address it resolves to is checked, and the request is sent to that checked address (the name is kept for
the Host header and TLS), so a name cannot resolve differently between the check and the request. Such links
are reported with StatusCode 0 and a Status saying why. `Config.allow_private_link_check`
(`--allow-private-link-check`) lifts the restriction, for sites under test on localhost.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin

import httpx

from .. import __version__
from ..mime.content import unclosed_tail_as_text

MAX_LINKS = 100
MAX_REDIRECTS = 5
TIMEOUT = 5.0  # per request; with the concurrency, a check of MAX_LINKS dead links ends within a minute
CONCURRENCY = 10

_TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.found.append(value.strip())


def extract(text: str, html: str) -> list[str]:
    """The distinct http(s) links of a message, HTML first, in order of appearance."""
    found: list[str] = []
    if html:
        parser = _Links()
        try:
            parser.feed(unclosed_tail_as_text(html))  # HTMLParser is quadratic on an unclosed tail
            parser.close()
        except Exception:  # HTMLParser is lenient; a pathological document only loses its links
            pass
        found.extend(parser.found)
    found.extend(match.rstrip(_TRAILING) for match in _TEXT_URL.findall(text or ""))
    links = [link for link in found if link.lower().startswith(("http://", "https://"))]
    return list(dict.fromkeys(links))[:MAX_LINKS]


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local use: never global, wherever the IPv4 sits
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291's deprecated ::a.b.c.d
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765's SIIT ::ffff:0:a.b.c.d


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which a gateway may forward to: IPv4-mapped, 6to4
    (2002::/16), Teredo (2001::/32: its server, and its client, stored XORed), NAT64 (64:ff9b::/96),
    IPv4-compatible (::/96) and IPv4-translated (::ffff:0:0:0/96)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client); ipaddress has already undone the client's XOR
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _blocked_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # not is_global also covers what the others miss, such as carrier-grade NAT (100.64.0.0/10).
    return (not ip.is_global or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified)


def blocked_address(address: str) -> bool:
    """True for an address the link check must not connect to: not global, or an IPv6 address that embeds an
    IPv4 address that is not global (2002:a9fe:a9fe:: reaches 169.254.169.254 through a 6to4 relay)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL or any(_blocked_ip(v4) for v4 in embedded_ipv4(ip)):
            return True
        if ip.ipv4_mapped is not None or ip in _NAT64:  # judged as the IPv4 address it reaches (DNS64 networks)
            return False
    return _blocked_ip(ip)


class Refused(Exception):
    """A link that is not requested; the message says why."""


async def _pinned_address(url: httpx.URL, allow_private: bool) -> str:
    """The address to connect to for `url`, after checking every address its host resolves to."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Refused(f"cannot resolve {host}: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise Refused(f"cannot resolve {host}")
    if not allow_private:
        bad = [a for a in addresses if blocked_address(a)]
        if bad:
            raise Refused(f"blocked: {host} is a private, loopback or link-local address ({bad[0]}); "
                          "start mailnest with --allow-private-link-check to check such links")
    return addresses[0]


async def _request(client: httpx.AsyncClient, url: httpx.URL, allow_private: bool) -> httpx.Response:
    address = await _pinned_address(url, allow_private)
    host_header = url.netloc.decode("ascii")
    target = url.copy_with(host=address)
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    headers = {"Host": host_header}
    response = await client.request("HEAD", target, headers=headers, extensions=extensions)
    if response.status_code in (405, 501):
        async with client.stream("GET", target, headers=headers, extensions=extensions) as streamed:
            return streamed
    return response


async def check_one(client: httpx.AsyncClient, link: str, *, follow: bool, allow_private: bool) -> dict[str, Any]:
    try:
        url = httpx.URL(link)
        for _ in range(MAX_REDIRECTS + 1):
            response = await _request(client, url, allow_private)
            location = response.headers.get("location")
            if not (follow and response.is_redirect and location):
                break
            url = httpx.URL(urljoin(str(url), location))
            if url.scheme not in ("http", "https"):
                break
        code = response.status_code
        try:
            status = HTTPStatus(code).phrase
        except ValueError:
            status = "Unknown"
        return {"URL": link, "StatusCode": code, "Status": status}
    except Refused as exc:
        return {"URL": link, "StatusCode": 0, "Status": str(exc)}
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return {"URL": link, "StatusCode": 0, "Status": f"{type(exc).__name__}: {exc}" if str(exc)
                else type(exc).__name__}


async def check(links: Iterable[str], *, follow: bool = False, allow_private: bool = False,
                timeout: float = TIMEOUT) -> dict[str, Any]:
    """Mailpit's LinkCheckResponse: {"Errors": n, "Links": [{"URL", "StatusCode", "Status"}]}."""
    wanted = list(links)[:MAX_LINKS]
    slots = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, verify=True,
                                 headers={"User-Agent": f"mailnest/{__version__} link check"}) as client:
        async def one(link: str) -> dict[str, Any]:
            async with slots:
                return await check_one(client, link, follow=follow, allow_private=allow_private)

        results = await asyncio.gather(*(one(link) for link in wanted))
    errors = sum(1 for r in results if r["StatusCode"] == 0 or r["StatusCode"] >= 400)
    return {"Errors": errors, "Links": list(results)}
