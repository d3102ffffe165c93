"""The MCP server, driven by the official SDK's own client against a real mailnest.

The stdio server runs as `python -m mailnest.mcp --url ...`, a subprocess spoken to through the SDK's stdio client.
The Streamable HTTP endpoint is served by uvicorn on 127.0.0.1: on its own (pointed at a mailnest's URL), and
mounted at /mcp in mailnest's own web application (create_app's Starlette app, with its Host check and HTTP
authentication), where it reaches the API in-process with the caller's credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import httpx2  # the SDK's HTTP client
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult
from starlette.applications import Starlette
from starlette.routing import Route

from mailnest import Config, ServerThread
from mailnest.mcp.backend import Target
from mailnest.mcp.streamable import McpHttp
from mailnest.runtime import MailServer

TOOLS = {"search_messages", "get_message", "wait_for_message", "delete_messages", "send_message"}
DEADLINE = 60.0  # seconds any single wait in these tests may take on a loaded machine


def _mail(server: Any, *, subject: str, to: str = "alice@example.com", text: str = "Hello.\n",
          html: str | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = "Shop <noreply@shop.test>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test", timeout=30) as smtp:
        smtp.send_message(msg)


def _data(result: CallToolResult) -> Any:
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


def _text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _stdio(url: str, **env: str) -> Client:
    command = StdioServerParameters(command=sys.executable, args=["-m", "mailnest.mcp", "--url", url], env=env)
    return Client(command)


# -- stdio ---------------------------------------------------------------------------------------------------

def test_stdio_lists_searches_reads_waits_and_deletes(server: ServerThread) -> None:
    _mail(server, subject="Verify your account",
          text="Your code is 482913.\nOr open https://shop.test/verify?token=abc\n",
          html='<p>Your code is <b>482913</b>.</p><p><a href="https://shop.test/verify?token=abc">Verify</a> '
               '<a href="https://shop.test/help">Help</a></p><style>p{color:red}</style>')
    _mail(server, subject="Weekly digest", to="bob@example.com")

    async def scenario() -> None:
        async with _stdio(server.http_url) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == TOOLS
            for tool in tools.values():
                assert tool.description and tool.input_schema["type"] == "object"
            wait_schema = tools["wait_for_message"].input_schema["properties"]
            assert wait_schema["timeout"]["maximum"] == 300 and wait_schema["only_new"]["type"] == "boolean"

            found = _data(await client.call_tool("search_messages", {"query": 'subject:"verify your"'}))
            assert found["matched"] == 1
            [summary] = found["messages"]
            assert summary["subject"] == "Verify your account" and summary["to"] == ["alice@example.com"]
            everything = _data(await client.call_tool("search_messages", {}))
            assert everything["matched"] == 2
            assert _data(await client.call_tool("search_messages", {"mailbox": "bob@example.com"}))["matched"] == 1

            message = _data(await client.call_tool("get_message", {"id": summary["id"]}))
            assert "482913" in message["text"]
            assert message["codes"] == ["482913"]
            assert message["links"] == ["https://shop.test/verify?token=abc", "https://shop.test/help"]
            assert "Your code is 482913." in message["html_text"] and "color" not in message["html_text"]
            assert message["html"] is None
            assert message["headers"]["Subject"] == ["Verify your account"]
            assert message["sender"] == "Shop <noreply@shop.test>"
            assert message["envelope_to"] == ["alice@example.com"]
            with_html = _data(await client.call_tool("get_message", {"id": summary["id"], "include_html": True,
                                                                     "code_pattern": r"code is (\d{3})"}))
            assert "<b>482913</b>" in with_html["html"] and with_html["codes"] == ["482"]

            # A matching message is already there: only_new (the default) must not return it, but the one sent
            # after the wait started. Mail is sent until the wait answers, so however slowly the wait gets going,
            # one is sent after it counted what was there.
            wait = asyncio.ensure_future(client.call_tool(
                "wait_for_message", {"query": "to:alice@example.com", "timeout": DEADLINE}))
            sent = 0
            deadline = time.monotonic() + DEADLINE
            while not wait.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                sent += 1
                await asyncio.to_thread(_mail, server, subject=f"Reset code {sent}", text=f"Code: 77{sent:04d}\n")
            arrived = _data(await wait)["messages"]
            assert len(arrived) == 1 and arrived[0]["subject"].startswith("Reset code ")
            assert arrived[0]["codes"] == [f"77{arrived[0]['subject'].split()[-1].zfill(4)}"]
            # With only_new false, what is already there counts: it answers at once.
            old = _data(await client.call_tool("wait_for_message", {"query": 'subject:"verify your"',
                                                                    "only_new": False, "timeout": DEADLINE}))
            assert [m["id"] for m in old["messages"]] == [summary["id"]]

            deleted = _data(await client.call_tool("delete_messages", {"ids": [summary["id"]]}))
            assert deleted["deleted"] == 1
            gone = await client.call_tool("get_message", {"id": summary["id"]})
            assert gone.is_error and "no such message" in _text(gone) and "Traceback" not in _text(gone)
            by_query = _data(await client.call_tool("delete_messages", {"query": "subject:reset"}))
            assert by_query["deleted"] == sent
            left = _data(await client.call_tool("search_messages", {}))
            assert [m["subject"] for m in left["messages"]] == ["Weekly digest"]
            assert _data(await client.call_tool("delete_messages", {"all": True}))["deleted"] == 1
            assert _data(await client.call_tool("search_messages", {}))["matched"] == 0

    asyncio.run(scenario())


def test_stdio_send_and_errors_an_agent_can_act_on(server: ServerThread) -> None:
    async def scenario() -> None:
        async with _stdio(server.http_url) as client:
            sent = _data(await client.call_tool("send_message", {
                "sender": "Jane <jane@app.test>", "to": ["joe@example.com"], "subject": "Invoice 2024-0042",
                "text": "Pay at https://pay.test/i/42", "headers": {"X-Campaign": "spring"}, "tags": ["billing"]}))
            mail = _data(await client.call_tool("get_message", {"id": sent["id"]}))
            assert mail["subject"] == "Invoice 2024-0042" and mail["sender"] == "Jane <jane@app.test>"
            assert mail["links"] == ["https://pay.test/i/42"] and mail["headers"]["X-Campaign"] == ["spring"]
            assert mail["tags"] == ["billing"]

            problems: dict[str, tuple[str, dict[str, Any], str]] = {
                "bad query": ("search_messages", {"query": 'subject:"unclosed'}, "unbalanced quote"),
                "bad address": ("send_message", {"sender": "nobody", "to": ["joe@example.com"]},
                                "not an e-mail address"),
                "bad pattern": ("get_message", {"code_pattern": "(["}, "not a regular expression"),
                "two scopes": ("delete_messages", {"ids": ["x"], "all": True}, "exactly one of"),
                "no scope": ("delete_messages", {}, "exactly one of"),
                "out of range": ("search_messages", {"limit": 0}, "limit"),
                "timeout": ("wait_for_message", {"query": "subject:never", "timeout": 0.5},
                            "Invoice 2024-0042"),  # names what is there, so the agent can tell a wrong query
            }
            for name, (tool, arguments, expected) in problems.items():
                result = await client.call_tool(tool, arguments)
                assert result.is_error, name
                assert expected in _text(result), (name, _text(result))
                assert "Traceback" not in _text(result), name

    asyncio.run(scenario())


def test_stdio_without_a_server_says_so() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario() -> None:
        async with _stdio(f"http://127.0.0.1:{port}") as client:
            result = await client.call_tool("search_messages", {})
            assert result.is_error and "did not answer" in _text(result) and "running" in _text(result)

    asyncio.run(scenario())


def test_stdio_pointed_at_something_else_says_so(server: ServerThread) -> None:
    async def scenario() -> None:
        async with _stdio(f"{server.http_url}/static/") as client:  # a path of the server, not its base URL
            result = await client.call_tool("search_messages", {})
            assert result.is_error and "has no mailnest API" in _text(result), _text(result)
        async with _stdio(server.http_url) as client:
            result = await client.call_tool("get_message", {"id": "../messages"})
            assert result.is_error and "id" in _text(result)

    asyncio.run(scenario())


def test_stdio_bad_url_exits_2() -> None:
    done = subprocess.run([sys.executable, "-m", "mailnest.mcp", "--url", "ftp://nowhere"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "--url" in done.stderr and "http://127.0.0.1:8025" in done.stderr and "Traceback" not in done.stderr


def test_the_endpoint_loads_the_sdk_when_started_and_leaves_the_root_logger_alone() -> None:
    """Mounting the endpoint costs nothing until it is used (the SDK takes seconds to import); starting it builds
    the SDK's server, whose constructor calls logging.basicConfig: an application that embeds mailnest keeps its
    own logging. In a fresh interpreter: pytest's own handlers on the root logger would hide the change."""
    code = ("import asyncio, logging, sys\n"
            "from mailnest.mcp.backend import Target\n"
            "from mailnest.mcp.streamable import McpHttp\n"
            "endpoint = McpHttp(Target('http://127.0.0.1:9/'))\n"
            "print('mcp' in sys.modules)\n"
            "async def cycle():\n"
            "    await endpoint.start()\n"
            "    await endpoint.stop()\n"
            "asyncio.run(cycle())\n"
            "root = logging.getLogger()\n"
            "print('mcp' in sys.modules, len(root.handlers), logging.getLevelName(root.level))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "0", "WARNING"]


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    path = tmp_path / "http-auth"
    path.write_text("agent:pa:ss@word\n")
    return path


def test_stdio_logs_in_with_the_url_or_the_environment(auth_file: Path) -> None:
    with ServerThread(Config(http_auth_file=auth_file)) as server:
        _mail(server, subject="Behind a login")
        host = server.http_url.removeprefix("http://")

        async def scenario() -> None:
            async with _stdio(server.http_url) as client:
                refused = await client.call_tool("search_messages", {})
                assert refused.is_error and "MAILNEST_MCP_USER" in _text(refused)
            login = {"MAILNEST_MCP_USER": "agent", "MAILNEST_MCP_PASSWORD": "pa:ss@word"}
            async with _stdio(server.http_url, **login) as client:
                assert _data(await client.call_tool("search_messages", {}))["matched"] == 1
            async with _stdio(f"http://agent:pa%3Ass%40word@{host}") as client:
                assert _data(await client.call_tool("search_messages", {}))["matched"] == 1

        asyncio.run(scenario())


# -- Streamable HTTP -----------------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def _uvicorn(app: Any) -> AsyncIterator[str]:
    """`app` served by uvicorn on 127.0.0.1 (port 0) on this loop; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + DEADLINE
        while not server.started:
            assert not task.done() and time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def _http_client(url: str, auth: tuple[str, str] | None = None) -> Client:
    http = httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30, read=DEADLINE + 30))
    return Client(streamable_http_client(url, http_client=http))


def _post(url: str, **headers: str) -> httpx.Response:
    """A JSON-RPC tools/list as a browser or a stranger would send it."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    return httpx.post(url, json=body, timeout=30, headers={"Accept": "application/json, text/event-stream",
                                                           "MCP-Protocol-Version": "2025-06-18", **headers})


def test_streamable_http_on_its_own(server: ServerThread) -> None:
    _mail(server, subject="Welcome aboard", text="Start at https://app.test/start\n")
    endpoint = McpHttp(Target(server.http_url), allowed_hosts=["127.0.0.1:*"])
    app = Starlette(routes=[Route("/mcp", endpoint=endpoint)], lifespan=endpoint.lifespan)

    async def scenario() -> None:
        async with _uvicorn(app) as base:
            async with _http_client(f"{base}/mcp") as client:
                assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
                [summary] = _data(await client.call_tool("search_messages", {"query": "welcome"}))["messages"]
                mail = _data(await client.call_tool("get_message", {"id": summary["id"]}))
                assert mail["links"] == ["https://app.test/start"]
                wait = asyncio.ensure_future(client.call_tool("wait_for_message",
                                                              {"query": "subject:later", "timeout": DEADLINE}))
                deadline = time.monotonic() + DEADLINE
                while not wait.done() and time.monotonic() < deadline:
                    await asyncio.sleep(0.3)
                    await asyncio.to_thread(_mail, server, subject="Later")
                assert _data(await wait)["messages"][0]["subject"] == "Later"
            ok = await asyncio.to_thread(_post, f"{base}/mcp")
            assert ok.status_code == 200, ok.text
            cross_site = await asyncio.to_thread(_post, f"{base}/mcp", Origin="http://evil.example")
            assert cross_site.status_code == 403 and "another origin" in cross_site.text
            rebound = await asyncio.to_thread(_post, f"{base}/mcp", Host="evil.example")
            assert rebound.status_code == 421

    asyncio.run(scenario())


def test_streamable_http_mounted_in_mailnest_keeps_its_access_rules(auth_file: Path) -> None:
    """Mounted as the wiring proposes: the web app's Host check and login guard /mcp, and the tools see the API
    with the caller's own credentials."""
    from mailnest.web.app import create_app

    async def scenario() -> None:
        async with MailServer(Config(http=None, http_auth_file=auth_file)) as mail_server:
            endpoint = McpHttp()  # started by its first request
            app = create_app(mail_server)
            app.router.routes.insert(0, Route("/mcp", endpoint=endpoint))
            try:
                await asyncio.to_thread(_mail, mail_server, subject="Mounted")
                async with _uvicorn(app) as base:
                    url = f"{base}/mcp"
                    async with _http_client(url, auth=("agent", "pa:ss@word")) as client:
                        [summary] = _data(await client.call_tool("search_messages", {}))["messages"]
                        assert summary["subject"] == "Mounted"
                        sent = _data(await client.call_tool("send_message", {"sender": "a@app.test",
                                                                             "to": ["b@app.test"],
                                                                             "subject": "Via MCP"}))
                        got = _data(await client.call_tool("get_message", {"id": sent["id"]}))
                        assert got["subject"] == "Via MCP"
                        # The long-poll of /api/v1/wait, reached in-process.
                        wait = asyncio.ensure_future(client.call_tool(
                            "wait_for_message", {"query": "subject:awaited", "timeout": DEADLINE}))
                        deadline = time.monotonic() + DEADLINE
                        while not wait.done() and time.monotonic() < deadline:
                            await asyncio.sleep(0.3)
                            await asyncio.to_thread(_mail, mail_server, subject="Awaited")
                        assert _data(await wait)["messages"][0]["subject"] == "Awaited"
                    anonymous = await asyncio.to_thread(_post, url)
                    assert anonymous.status_code == 401
                    authorization = "Basic " + base64.b64encode(b"agent:pa:ss@word").decode()
                    same_site = await asyncio.to_thread(_post, url, Authorization=authorization, Origin=base)
                    assert same_site.status_code == 200, same_site.text
                    cross_site = await asyncio.to_thread(_post, url, Authorization=authorization,
                                                         Origin="http://evil.example")
                    assert cross_site.status_code == 403
                    rebound = await asyncio.to_thread(_post, url, Authorization=authorization, Host="evil.example")
                    assert rebound.status_code == 400 and "--allowed-host" in rebound.text
            finally:
                await endpoint.stop()

    asyncio.run(scenario())


def test_streamable_http_stopped_answers_503(server: ServerThread) -> None:
    endpoint = McpHttp(Target(server.http_url))

    async def scenario() -> None:
        async with _uvicorn(Starlette(routes=[Route("/mcp", endpoint=endpoint)])) as base:
            started_by_a_request = await asyncio.to_thread(_post, f"{base}/mcp")
            assert started_by_a_request.status_code == 200, started_by_a_request.text
            await endpoint.stop()
            response = await asyncio.to_thread(_post, f"{base}/mcp")
            assert response.status_code == 503 and "stopped" in json.loads(response.text)["error"]["message"]

    asyncio.run(scenario())
