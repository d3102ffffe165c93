"""Access to the UI and API: basic authentication, the send API's own accounts, CORS, HTTPS."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import bcrypt
import httpx
import pytest
import websockets

from mailnest import Config, ServerThread
from mailnest.tls import generate_self_signed
from tests.conftest import send, trusting


@pytest.fixture
def accounts(tmp_path: Path) -> tuple[Path, Path]:
    ui = tmp_path / "ui-users"
    ui.write_text("admin:s3cret\nviewer:" + bcrypt.hashpw(b"peek", bcrypt.gensalt(rounds=4)).decode() + "\n")
    sender = tmp_path / "send-users"
    sender.write_text("ci:inject\n")
    return ui, sender


def test_basic_auth_guards_the_ui_and_api_but_not_health_checks(accounts: tuple[Path, Path]) -> None:
    ui, _ = accounts
    with ServerThread(Config(http_auth_file=ui)) as server:
        send(server, subject="private")
        base = server.http_url
        refused = httpx.get(f"{base}/api/v1/messages")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert "auth" in refused.json()["Error"]
        assert httpx.get(f"{base}/", auth=("admin", "wrong")).status_code == 401
        assert httpx.get(f"{base}/", auth=("nobody", "s3cret")).status_code == 401
        listing = httpx.get(f"{base}/api/v1/messages", auth=("admin", "s3cret")).json()
        assert [m["Subject"] for m in listing["messages"]] == ["private"]
        assert httpx.get(f"{base}/api/v1/messages", auth=("viewer", "peek")).status_code == 200  # bcrypt
        assert httpx.get(f"{base}/", auth=("admin", "s3cret")).status_code == 200
        assert httpx.get(f"{base}/livez").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        malformed = httpx.get(f"{base}/api/v1/messages", headers={"Authorization": "Basic !!!"})
        assert malformed.status_code == 401


def test_the_event_stream_and_websocket_need_credentials_too(accounts: tuple[Path, Path]) -> None:
    ui, _ = accounts
    with ServerThread(Config(http_auth_file=ui)) as server:
        assert httpx.get(f"{server.http_url}/api/v1/events", timeout=5).status_code == 401
        url = server.http_url.replace("http", "ws") + "/api/events"

        async def connect(headers: dict[str, str]) -> bool:
            try:
                async with websockets.connect(url, additional_headers=headers, open_timeout=5):
                    return True
            except (websockets.InvalidStatus, websockets.ConnectionClosed, websockets.InvalidHandshake):
                return False

        assert asyncio.run(connect({})) is False
        token = base64.b64encode(b"admin:s3cret").decode()
        assert asyncio.run(connect({"Authorization": f"Basic {token}"})) is True


def test_the_send_api_can_have_its_own_accounts(accounts: tuple[Path, Path]) -> None:
    ui, sender = accounts
    message = {"From": {"Email": "ci@example.com"}, "To": [{"Email": "qa@example.com"}], "Subject": "seeded",
               "Text": "hello"}
    with ServerThread(Config(http_auth_file=ui, send_auth_file=sender)) as server:
        url = f"{server.http_url}/api/v1/send"
        assert httpx.post(url, json=message).status_code == 401
        assert httpx.post(url, json=message, auth=("admin", "s3cret")).status_code == 401  # UI accounts: no
        assert httpx.post(url, json=message, auth=("ci", "inject")).status_code == 200
        assert httpx.get(f"{server.http_url}/api/v1/messages", auth=("ci", "inject")).status_code == 401
        listing = httpx.get(f"{server.http_url}/api/v1/messages", auth=("admin", "s3cret")).json()
        assert [m["Subject"] for m in listing["messages"]] == ["seeded"]


def test_cors_allow_list() -> None:
    with ServerThread(Config(cors_origins=("http://app.localhost:3000",))) as server:
        url = f"{server.http_url}/api/v1/messages"
        allowed = httpx.get(url, headers={"Origin": "http://app.localhost:3000"})
        assert allowed.headers["access-control-allow-origin"] == "http://app.localhost:3000"
        other = httpx.get(url, headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = httpx.options(url, headers={"Origin": "http://evil.example",
                                                "Access-Control-Request-Method": "DELETE"})
        assert preflight.status_code == 403
        preflight = httpx.options(url, headers={"Origin": "http://app.localhost:3000",
                                                "Access-Control-Request-Method": "DELETE"})
        assert preflight.status_code == 200 and "DELETE" in preflight.headers["access-control-allow-methods"]
    with ServerThread(Config()) as server:  # no list: no cross-origin use at all
        response = httpx.get(f"{server.http_url}/api/v1/messages", headers={"Origin": "http://app.localhost:3000"})
        assert "access-control-allow-origin" not in response.headers


def test_changes_from_a_page_of_another_origin_are_refused() -> None:
    """A text/plain POST needs no CORS preflight: without an Origin check any web page could send mail through
    the developer's browser. Same-origin pages (the UI), allowed origins and clients without Origin pass."""
    send = {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": "hi"}
    with ServerThread(Config(cors_origins=("http://app.localhost:3000",))) as server:
        url = f"{server.http_url}/api/v1/send"
        refused = httpx.post(url, content=json.dumps(send), headers={"Origin": "http://evil.example",
                                                                     "Content-Type": "text/plain"})
        assert refused.status_code == 403 and "evil.example" in refused.json()["Error"]
        assert httpx.delete(f"{server.http_url}/api/v1/messages",
                            headers={"Origin": "http://evil.example"}).status_code == 403
        assert httpx.get(f"{server.http_url}/api/v1/messages").json()["total"] == 0
        for origin in ("http://app.localhost:3000", server.http_url, None):
            headers = {"Origin": origin} if origin else {}
            assert httpx.post(url, json=send, headers=headers).status_code == 200, origin
        assert httpx.get(f"{server.http_url}/api/v1/messages").json()["total"] == 3


def test_https_with_the_generated_certificate(accounts: tuple[Path, Path]) -> None:
    ui, _ = accounts
    with ServerThread(Config(http_tls=True, http_auth_file=ui)) as server:
        assert server.http_url.startswith("https://")
        with httpx.Client(verify=trusting(server)) as client:
            assert client.get(f"{server.http_url}/api/v1/messages", auth=("admin", "s3cret")).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.http_url)  # not trusted by default: the certificate is self-signed


def test_https_with_a_user_given_certificate(tmp_path: Path) -> None:
    material = generate_self_signed(tmp_path / "mine", ["mail.test", "localhost", "127.0.0.1"])
    config = Config(http_tls=True, tls_cert=material.cert, tls_key=material.key)
    with ServerThread(config) as server, httpx.Client(verify=trusting(server)) as client:
        assert client.get(f"{server.http_url}/livez").text == "ok"
