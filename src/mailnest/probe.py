"""`mailnest readyz`: a health probe for containers and scripts, and the base URL every HTTP subcommand uses.

It asks `/readyz` of a running mailnest (under its webroot): exit 0 when the answer is 200, 1 when it is not
ready or cannot be reached, 2 for a URL that cannot be used. `--wait SECONDS` asks again until it is ready or the
time is up. Without `--url` the address comes from MAILNEST_HTTP, MAILNEST_WEBROOT and MAILNEST_HTTP_TLS, as the
server reads them, so a container's own environment is enough.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .config import SERVE_DEFAULTS, ConfigError, normalise_webroot
from .options import listen_or_off, switch

if TYPE_CHECKING:
    import httpx

DEFAULT_WAIT_STEP = 0.2


def base_url(value: str | None, environ: Mapping[str, str] | None = None, *, what: str = "--url") -> str:
    """The server's base URL, ending in "/": `value`, or the one the MAILNEST_* variables give the server."""
    environ = os.environ if environ is None else environ
    if value is None:
        listen = SERVE_DEFAULTS.http
        if "MAILNEST_HTTP" in environ:
            listen = listen_or_off(environ["MAILNEST_HTTP"], "MAILNEST_HTTP")
        if listen is None:
            raise ConfigError("MAILNEST_HTTP is off: there is no HTTP listener to ask; give --url")
        host = "127.0.0.1" if listen.host in ("0.0.0.0", "::", "") else listen.host
        host = f"[{host}]" if ":" in host else host
        tls = switch(environ.get("MAILNEST_HTTP_TLS", ""), "MAILNEST_HTTP_TLS")
        root = normalise_webroot(environ.get("MAILNEST_WEBROOT", "/"), what="MAILNEST_WEBROOT")
        return f"{'https' if tls else 'http'}://{host}:{listen.port}{root}"
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query or parts.fragment:
        raise ConfigError(f"{what}: {value!r} is not the base URL of a mailnest, such as http://127.0.0.1:8025/ "
                          "(http or https, a host, an optional port and webroot)")
    return value.strip().rstrip("/") + "/"


def check(client: httpx.Client, url: str) -> str | None:
    """None when `url` (a /readyz) answers 200; else why not."""
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return f"cannot reach {url}: {exc or type(exc).__name__}"
    if response.status_code != 200:
        return f"{url} answered {response.status_code}: {response.text.strip()[:200]}"
    return None


def add_readyz_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL",
                        help="the mailnest to ask, e.g. http://127.0.0.1:8025/ or https://mail.internal/mail/ "
                             "(default: from MAILNEST_HTTP, MAILNEST_WEBROOT and MAILNEST_HTTP_TLS, else "
                             "http://127.0.0.1:8025/); an https certificate is not checked")
    parser.add_argument("--wait", metavar="SECONDS", type=float, default=0.0,
                        help="ask again until it is ready, for at most this long (default: ask once)")


def readyz_main(args: argparse.Namespace) -> int:
    """0 ready, 1 not ready, 2 bad arguments."""
    prog = "mailnest readyz"
    try:
        url = base_url(args.url) + "readyz"
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    if args.wait < 0:
        print(f"{prog}: error: --wait: must be 0 or more seconds", file=sys.stderr)
        return 2
    import httpx  # here: the other subcommands start without it

    deadline = time.monotonic() + args.wait
    # The certificate is not checked: a probe reads "ok" and sends nothing secret, and the server's is often
    # self-signed (--tls without --tls-cert).
    with httpx.Client(timeout=5, verify=False) as client:
        while True:
            problem = check(client, url)
            if problem is None:
                return 0
            if time.monotonic() + DEFAULT_WAIT_STEP > deadline:
                break
            time.sleep(DEFAULT_WAIT_STEP)
    waited = f" after waiting {args.wait:g}s" if args.wait else ""
    print(f"{prog}: not ready{waited}: {problem}", file=sys.stderr)
    return 1
