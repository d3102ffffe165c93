"""Release (POST /api/v1/message/{ID}/release) through a real relay: another mailnest is the upstream server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.conftest import send


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    with ServerThread(Config()) as server:
        yield server


@pytest.fixture
def relaying(upstream: ServerThread) -> Iterator[ServerThread]:
    config = Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("*@allowed.example", "boss@example.com"),
                    extra={"relay_timeout": 10.0})
    with ServerThread(config) as server:
        yield server


def test_release_to_allowed_addresses(relaying: ServerThread, upstream: ServerThread) -> None:
    send(relaying, subject="release me", to=["dev@example.com"])
    with httpx.Client(base_url=relaying.http_url, timeout=30) as api:
        webui = api.get("/api/v1/webui").json()["MessageRelay"]
        assert webui["Enabled"] is True and webui["SMTPServer"] == f"127.0.0.1:{upstream.smtp_port}"
        assert webui["AllowedRecipients"] == "*@allowed.example, boss@example.com"
        response = api.post("/api/v1/message/latest/release", json={"To": ["qa@allowed.example", "Boss@Example.com"]})
        assert response.status_code == 200 and response.text == "ok"
        refused = api.post("/api/v1/message/latest/release", json={"To": ["qa@allowed.example", "x@evil.example"]})
        assert refused.status_code == 400 and "x@evil.example" in refused.json()["Error"]
    with httpx.Client(base_url=upstream.http_url, timeout=30) as up:
        got = up.get("/api/v1/messages").json()["messages"]
    assert [m["Subject"] for m in got] == ["release me"]  # once: the refused release sent nothing
    assert sorted(a["Address"].lower() for a in got[0]["Bcc"]) == ["boss@example.com", "qa@allowed.example"]


@pytest.mark.parametrize(("body", "status"), [
    ({}, 400), ({"To": []}, 400), ({"To": "qa@allowed.example"}, 400), ({"To": ["not an address"]}, 400),
    (["qa@allowed.example"], 400), ({"to": "qa@allowed.example", "Cc": []}, 400),
])
def test_release_bad_bodies(relaying: ServerThread, body: object, status: int) -> None:
    send(relaying)
    with httpx.Client(base_url=relaying.http_url, timeout=30) as api:
        response = api.post("/api/v1/message/latest/release", json=body)
    assert response.status_code == status and response.json()["Error"]


def test_release_of_a_missing_message(relaying: ServerThread) -> None:
    with httpx.Client(base_url=relaying.http_url, timeout=30) as api:
        response = api.post("/api/v1/message/nope/release", json={"To": ["qa@allowed.example"]})
        assert response.status_code == 404
        assert api.post("/api/v1/message/latest/release", json={"To": ["qa@allowed.example"]}).status_code == 404


def test_release_without_a_relay(server: ServerThread, api: httpx.Client) -> None:
    send(server)
    assert api.get("/api/v1/webui").json()["MessageRelay"]["Enabled"] is False
    response = api.post("/api/v1/message/latest/release", json={"To": ["qa@allowed.example"]})
    assert response.status_code == 400 and "no relay" in response.json()["Error"]


def test_release_when_the_upstream_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = Config(relay=f"127.0.0.1:{closed_port}", relay_allow=("*@allowed.example",),
                    extra={"relay_timeout": 5.0})
    with ServerThread(config) as server, httpx.Client(base_url=server.http_url, timeout=30) as api:
        send(server)
        response = api.post("/api/v1/message/latest/release", json={"To": ["qa@allowed.example"]})
    assert response.status_code == 502 and "SMTP error" in response.json()["Error"]


def test_webui_tells_the_ui_the_release_lists_and_the_sender(upstream: ServerThread) -> None:
    config = Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("*@allowed.example",),
                    release_allow=("*@manual.example", "*@allowed.example"), relay_deny=("ceo@allowed.example",),
                    relay_override_from="Relay Bot <bot@relay.example>", extra={"relay_timeout": 10.0})
    with ServerThread(config) as server, httpx.Client(base_url=server.http_url, timeout=30) as api:
        webui = api.get("/api/v1/webui").json()["MessageRelay"]
        assert webui == {"Enabled": True, "SMTPServer": f"127.0.0.1:{upstream.smtp_port}", "ReturnPath": "",
                         "AllowedRecipients": "*@allowed.example, *@manual.example",
                         "BlockedRecipients": "ceo@allowed.example", "OverrideFrom": "bot@relay.example",
                         "PreserveMessageIDs": True, "RecipientAllowlist": "*@allowed.example, *@manual.example"}
        send(server, subject="mailhog release", to=["dev@example.com"])
        message_id = api.get("/api/v1/message/latest").json()["ID"]
        # MailHog's release goes through the same lists: release-allow lets it out, relay-deny does not
        assert api.post(f"/api/v1/messages/{message_id}/release", json={"Email": "qa@manual.example"}).status_code \
            == 200
        denied = api.post(f"/api/v1/messages/{message_id}/release", json={"Email": "ceo@allowed.example"})
        assert denied.status_code == 400 and "deny-list" in denied.text
    with httpx.Client(base_url=upstream.http_url, timeout=30) as up:
        got = up.get("/api/v1/messages").json()["messages"]
    assert [(m["Subject"], m["From"]["Address"]) for m in got] == [("mailhog release", "bot@relay.example")]


def test_webui_offers_no_release_when_nothing_may_be_released(upstream: ServerThread) -> None:
    config = Config(relay=f"127.0.0.1:{upstream.smtp_port}", forward_to=("archive@keep.example",))
    with ServerThread(config) as server, httpx.Client(base_url=server.http_url, timeout=30) as api:
        webui = api.get("/api/v1/webui").json()["MessageRelay"]
        assert webui["Enabled"] is False and webui["AllowedRecipients"] == "" and webui["OverrideFrom"] == ""
        send(server)
        refused = api.post("/api/v1/message/latest/release", json={"To": ["archive@keep.example"]})
        assert refused.status_code == 400 and "allow-list" in refused.json()["Error"]
