"""Relay: allowed recipients reach a second mailnest acting as the upstream, others never do; outages are
retried with backoff and then given up; release refuses anything off the allow-list."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mailnest import Config, Listen, ServerThread
from mailnest.config import ConfigError
from mailnest.outputs import AllowList, OutputDispatcher, Relay, RelayFailed, RelayNotConfigured, RelayRefused
from tests.conftest import send
from tests.outputs.helpers import hooked_server, running

# --- the allow-list ------------------------------------------------------------------------------------


def test_allow_list_patterns() -> None:
    allow = AllowList(["bob@example.com", "*@allowed.test", "qa-*@example.org", "/dev[0-9]+@(a|b)\\.test/",
                       "re:.*@staging\\.example\\.net"])
    for yes in ["bob@example.com", "BOB@Example.COM", "x@allowed.test", "qa-7@example.org", "dev12@b.test",
                "anyone@staging.example.net"]:
        assert allow.allows(yes), yes
    for no in ["bob@example.com.evil", "xbob@example.com", "x@sub.allowed.test", "a@b@allowed.test",
               "x@allowed.test.evil", "qa@example.org", "dev@a.test", "dev1@c.test", "x@evilstaging.example.net",
               "", "x@allowed.test\r\nRCPT TO:<victim@evil>"]:
        assert not allow.allows(no), no
    assert not AllowList([])
    assert not AllowList([]).allows("anyone@anywhere")


@pytest.mark.parametrize(("changes", "message"), [
    ({"relay_allow": ("/[unclosed/",)}, "not a valid regular expression"),
    ({"relay_allow": ("",)}, "an empty pattern"),
    ({"relay": None, "relay_allow": ("*@x.test",)}, "relay_allow is set but relay"),
    ({"relay": "smtp.example.com:0"}, "needs the upstream's port"),
    ({"relay": "no-port"}, "between 0 and 65535"),
    ({"relay_tls": "ssl"}, "must be none, starttls or tls"),
    ({"relay_user": "me"}, "relay_user and relay_password go together"),
])
def test_bad_relay_settings_are_explained(changes: dict[str, Any], message: str) -> None:
    config = Config(relay="127.0.0.1:2525", relay_allow=("*@x.test",)).replace(**changes)
    with pytest.raises(ConfigError, match=message):
        Relay.from_config(config)


# --- end to end ----------------------------------------------------------------------------------------


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last result {result!r}")
        time.sleep(0.02)


def relay_status(server: ServerThread, dispatcher: OutputDispatcher, message_id: str) -> dict[str, Any] | None:
    async def read() -> dict[str, Any] | None:
        return dispatcher.relay_status(message_id)

    return server.call(read())


def settled(server: ServerThread, dispatcher: OutputDispatcher, message_id: str) -> Callable[[], Any]:
    def check() -> dict[str, Any] | None:
        status = relay_status(server, dispatcher, message_id)
        if status and all(s["Status"] != "pending" for s in status.values()):
            return status
        return None

    return check


def received(upstream: ServerThread) -> list[tuple[bytes, str, tuple[str, ...]]]:
    async def read() -> list[tuple[bytes, str, tuple[str, ...]]]:
        page = await upstream.store.list(limit=100)
        out = []
        for summary in reversed(page.messages):
            message = await upstream.store.get(summary.id)
            raw = await upstream.store.raw(summary.id)
            assert message is not None and raw is not None
            out.append((raw, message.envelope.mail_from, message.envelope.rcpt_tos))
        return out

    return upstream.call(read())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def latest_id(server: ServerThread) -> str:
    summary = server.call(server.store.latest())
    assert summary is not None
    return summary.id


def test_allowed_recipients_are_relayed_and_others_never(tmp_path: Any) -> None:
    with ServerThread(Config()) as upstream:
        config = Config(relay=f"127.0.0.1:{upstream.smtp_port}",
                        relay_allow=("*@allowed.test", "/qa-[0-9]+@example\\.com/"))
        with running(config) as (server, dispatcher):
            send(server, sender="app@example.com",
                 to=["a@allowed.test", "bob@forbidden.test", "qa-1@example.com", "B@Allowed.Test"])
            message_id = latest_id(server)
            raw = server.call(server.store.raw(message_id))
            status = wait_for(settled(server, dispatcher, message_id))
            assert set(status) == {"a@allowed.test", "qa-1@example.com", "B@Allowed.Test"}
            assert all(s["Status"] == "sent" and s["Attempts"] == 1 for s in status.values())
            relay = httpx.get(f"{server.http_url}/api/v1/message/{message_id}").json()["Relay"]
            assert relay["a@allowed.test"]["Status"] == "sent" and "bob@forbidden.test" not in relay
            [(got_raw, mail_from, rcpts)] = received(upstream)
            assert got_raw == raw
            assert mail_from == "app@example.com"
            assert rcpts == ("a@allowed.test", "qa-1@example.com", "B@Allowed.Test")

            send(server, to=["bob@forbidden.test", "carol@allowed.test.evil"], subject="not for relay")
            flush_id = latest_id(server)
            server.call(dispatcher.flush())
            assert relay_status(server, dispatcher, flush_id) is None
            time.sleep(0.2)
            assert len(received(upstream)) == 1  # the forbidden-only message never went anywhere


def test_relay_without_allow_list_forwards_nothing() -> None:
    with ServerThread(Config()) as upstream, running(Config(relay=f"127.0.0.1:{upstream.smtp_port}")) as (
            server, dispatcher):
        send(server, to=["a@example.com"])
        server.call(dispatcher.flush())
        assert relay_status(server, dispatcher, latest_id(server)) is None
        time.sleep(0.2)
        assert received(upstream) == []


def test_outage_is_retried_with_backoff_then_failed_without_delaying_smtp() -> None:
    config = Config(relay=f"127.0.0.1:{closed_port()}", relay_allow=("*@allowed.test",),
                    extra={"relay_attempts": 3, "relay_backoff": 0.2, "relay_max_backoff": 0.3})
    with running(config) as (server, dispatcher):
        started = time.monotonic()
        send(server, to=["a@allowed.test"])
        assert time.monotonic() - started < 0.2  # the 250 did not wait for the relay
        message_id = latest_id(server)
        first = wait_for(lambda: (relay_status(server, dispatcher, message_id) or {}).get("a@allowed.test"))
        assert first["Status"] == "pending"
        final = wait_for(settled(server, dispatcher, message_id))["a@allowed.test"]
        elapsed = time.monotonic() - started
        assert final["Status"] == "failed"
        assert final["Attempts"] == 3
        assert "Connection" in final["Reason"] and "gave up after 3 attempts" in final["Reason"]
        assert 0.4 <= elapsed < 5  # waited 0.2 s then 0.3 s (capped) between the three attempts


def test_permanent_refusal_is_not_retried() -> None:
    class RefuseNobody:
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                              options: list[str]) -> str | None:
            return "550 5.1.1 no such user" if address.startswith("nobody@") else None

    with hooked_server(RefuseNobody()) as (upstream, port):
        config = Config(relay=f"127.0.0.1:{port}", relay_allow=("*@allowed.test",),
                        extra={"relay_attempts": 5, "relay_backoff": 5.0})
        with running(config) as (server, dispatcher):
            send(server, to=["ok@allowed.test", "nobody@allowed.test"])
            status = wait_for(settled(server, dispatcher, latest_id(server)))
        assert status["ok@allowed.test"]["Status"] == "sent"
        assert status["nobody@allowed.test"] == {**status["nobody@allowed.test"], "Status": "failed",
                                                 "Reason": "550 5.1.1 no such user", "Attempts": 1}
        assert [r for _, _, r in received(upstream)] == [("ok@allowed.test",)]


def test_release_sends_only_to_the_allow_list() -> None:
    with ServerThread(Config()) as upstream:
        config = Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("*@allowed.test",))
        with running(config) as (server, dispatcher):
            send(server, to=["someone@example.com"], subject="to release")
            message_id = latest_id(server)
            raw = server.call(server.store.raw(message_id))
            with pytest.raises(RelayRefused) as refused:
                server.call(dispatcher.release(raw, ["x@allowed.test", "victim@example.com"], "app@example.com",
                                               message_id=message_id))
            assert refused.value.addresses == ("victim@example.com",)
            with pytest.raises(RelayRefused):
                server.call(dispatcher.release(raw, [], "app@example.com"))
            statuses = server.call(dispatcher.release(raw, ["x@allowed.test"], "app@example.com",
                                                      message_id=message_id))
            assert statuses["x@allowed.test"].state == "sent"
            assert relay_status(server, dispatcher, message_id)["x@allowed.test"]["Status"] == "sent"
            assert received(upstream) == [(raw, "app@example.com", ("x@allowed.test",))]


def test_release_reports_failures_and_missing_configuration() -> None:
    config = Config(relay=f"127.0.0.1:{closed_port()}", relay_allow=("*@allowed.test",))
    with running(config) as (server, dispatcher), pytest.raises(RelayFailed, match=r"x@allowed\.test: Connection"):
        server.call(dispatcher.release(b"Subject: x\r\n\r\n", ["x@allowed.test"], "a@b"))
    with running(Config()) as (server, _):
        plain = OutputDispatcher(server.config, server.store, server.hub)
        with pytest.raises(RelayNotConfigured):
            server.call(plain.release(b"Subject: x\r\n\r\n", ["x@allowed.test"], "a@b"))


def test_relay_never_mentions_forbidden_recipients_upstream() -> None:
    # The upstream sees one transaction with only the allowed recipient: smtplib's view of it.
    with ServerThread(Config()) as upstream:
        config = Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("ok@allowed.test",))
        with running(config) as (server, dispatcher), smtplib.SMTP("127.0.0.1", server.smtp_port) as smtp:
            smtp.sendmail("a@example.com", ["secret@forbidden.test", "ok@allowed.test"],
                          b"To: secret@forbidden.test\r\nSubject: s\r\n\r\nx\r\n")
            wait_for(settled(server, dispatcher, latest_id(server)))
            [(_, _, rcpts)] = received(upstream)
            assert rcpts == ("ok@allowed.test",)


def test_relay_of_internationalised_addresses_uses_smtputf8() -> None:
    with ServerThread(Config()) as upstream:
        config = Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("*@allowed.test",))
        with running(config) as (server, dispatcher), smtplib.SMTP("127.0.0.1", server.smtp_port) as smtp:
            raw = "Subject: grüße\r\n\r\nnaïve ✓\r\n".encode()
            smtp.sendmail("zoë@example.com", ["用户@allowed.test"], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            status = wait_for(settled(server, dispatcher, latest_id(server)))
            assert status["用户@allowed.test"]["Status"] == "sent"
            assert received(upstream) == [(raw, "zoë@example.com", ("用户@allowed.test",))]


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_relay_over_tls_with_login(mode: str, tmp_path: Any) -> None:
    users = tmp_path / "users"
    users.write_text("relayer:s3cret\n")
    upstream_config = Config(http=None, tls=True, smtps=Listen("127.0.0.1", 0), auth_file=users)
    with ServerThread(upstream_config) as upstream:
        port = upstream.smtps_port if mode == "tls" else upstream.smtp_port
        # The upstream's certificate is self-signed: the relay verifies by default, so trust is switched off
        # here the way a user would for a lab server.
        config = Config(http=None, relay=f"localhost:{port}", relay_tls=mode, relay_user="relayer",
                        relay_password="s3cret", relay_allow=("*@allowed.test",),
                        extra={"relay_tls_verify": False, "relay_backoff": 0.05})
        with running(config) as (server, dispatcher):
            send(server, to=["x@allowed.test"], subject=f"relayed over {mode}")
            status = wait_for(settled(server, dispatcher, latest_id(server)))
            assert status["x@allowed.test"]["Status"] == "sent", status
        message = upstream.call(upstream.store.get(upstream.call(upstream.store.latest()).id))
        assert message.summary.subject == f"relayed over {mode}"
        assert message.envelope.auth_user == "relayer"
        assert message.envelope.tls is not None


def test_relay_with_a_wrong_password_fails_without_retrying_forever(tmp_path: Any) -> None:
    users = tmp_path / "users"
    users.write_text("relayer:s3cret\n")
    with ServerThread(Config(http=None, tls=True, auth_file=users)) as upstream:
        config = Config(http=None, relay=f"localhost:{upstream.smtp_port}", relay_tls="starttls",
                        relay_user="relayer", relay_password="wrong", relay_allow=("*@allowed.test",),
                        extra={"relay_tls_verify": False, "relay_backoff": 0.05, "relay_attempts": 2})
        with running(config) as (server, dispatcher):
            send(server, to=["x@allowed.test"])
            status = wait_for(settled(server, dispatcher, latest_id(server)), timeout=20)
            assert status["x@allowed.test"]["Status"] == "failed"
            assert "535" in status["x@allowed.test"]["Reason"] or "auth" in status["x@allowed.test"]["Reason"].lower()
