"""mailnest's MCP server: coding agents read, wait for, delete and send test mail through the official `mcp` SDK.

Two ways in: `mailnest mcp --url URL` (also `python -m mailnest.mcp`), a server on stdio that talks to a running
mailnest over its HTTP API (stdio.py), and `McpHttp`, a Streamable HTTP endpoint to mount at `/mcp` in
mailnest's own web application (streamable.py). Both serve the tools of tools.py. The SDK is imported only
when one of them is used, so the rest of mailnest runs without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["McpHttp", "build_server", "main"]


def __getattr__(name: str) -> Any:
    if name == "McpHttp":
        from mailnest.mcp.streamable import McpHttp

        return McpHttp
    if name == "build_server":
        from mailnest.mcp.tools import build_server

        return build_server
    if name == "main":
        from mailnest.mcp.stdio import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
