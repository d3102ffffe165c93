"""`mailnest mcp` / `python -m mailnest.mcp`: an MCP server on standard input and output, for coding agents.

It talks to a running mailnest over its HTTP API: `--url` (else MAILNEST_MCP_URL, else the address the
MAILNEST_HTTP, MAILNEST_WEBROOT and MAILNEST_HTTP_TLS variables give the server, else http://127.0.0.1:8025/).
A mailnest started with --http-auth-file takes the login from the URL (http://USER:PASSWORD@HOST:PORT/) or from
MAILNEST_MCP_USER and MAILNEST_MCP_PASSWORD (kept out of the command line, which other users can see). Standard
output carries the protocol only; logs go to standard error. Exit 2 for an unusable URL or a missing SDK.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from mailnest.config import ConfigError
from mailnest.probe import base_url

PROG = "mailnest mcp"
URL_VARIABLE = "MAILNEST_MCP_URL"
USER_VARIABLE = "MAILNEST_MCP_USER"
PASSWORD_VARIABLE = "MAILNEST_MCP_PASSWORD"


def add_mcp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL",
                        help="the mailnest to read, e.g. http://127.0.0.1:8025/ (http://USER:PASSWORD@... for a "
                             f"server with --http-auth-file; default: {URL_VARIABLE}, else from MAILNEST_HTTP)")


def mcp_main(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Serve MCP on stdio until the client closes it: 0; 2 for a bad URL or when the SDK is missing."""
    environ = os.environ if environ is None else environ
    try:
        url = base_url(args.url or environ.get(URL_VARIABLE) or None,
                       environ, what="--url" if args.url else URL_VARIABLE)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:  # after the checks: the SDK takes a second or two to import
        from .backend import Target
        from .tools import build_server
    except ImportError as exc:
        print(f"{PROG}: error: the MCP SDK is not installed ({exc}); install it with "
              "`pip install 'mailnest[mcp]'`", file=sys.stderr)
        return 2
    target = Target.from_url(url, user=environ.get(USER_VARIABLE), password=environ.get(PASSWORD_VARIABLE))
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="mailnest mcp: %(message)s")
    server = build_server(lambda ctx: target.client(), target=target.base_url)
    try:
        server.run("stdio")
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Serve mailnest's captured mail to coding agents "
                                                            "over MCP (Model Context Protocol) on stdio.")
    add_mcp_arguments(parser)
    return mcp_main(parser.parse_args(argv))
