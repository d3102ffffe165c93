"""Who the relay sends to, and as whom (issue 14): `--release-allow` widens release only, `--relay-deny` wins over
both allow-lists, `--forward-to` sends every new message to fixed addresses (once-only work, taken over by another
node when the forwarding node dies), `--relay-override-from` rewrites the sender of the copy sent and never the
stored message. The upstream is a second mailnest (a real aiosmtpd server) that keeps exactly what it received."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import smtplib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import ConfigError
from mailnest.outputs import Relay
from mailnest.outputs.relay import override_from, plausible_address
from tests.conftest import send
from tests.outputs.helpers import running
from tests.outputs.test_relay import closed_port, latest_id, received, settled, wait_for
from tests.pgcluster import postgres_server  # noqa: F401  (the throwaway PostgreSQL server)


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    with ServerThread(Config()) as server:
        yield server


def relay_config(upstream: ServerThread, **fields: Any) -> Config:
    return Config(relay=f"127.0.0.1:{upstream.smtp_port}", extra={"relay_timeout": 10.0}, **fields)


def release(server: ServerThread, message_id: str, *to: str) -> httpx.Response:
    return httpx.post(f"{server.http_url}/api/v1/message/{message_id}/release", json={"To": list(to)}, timeout=30)


def envelopes(upstream: ServerThread) -> list[tuple[str, ...]]:
    return [rcpts for _, _, rcpts in received(upstream)]


# --- release-allow and relay-deny ----------------------------------------------------------------------


def test_release_allow_widens_release_and_never_automatic_relaying(upstream: ServerThread) -> None:
    config = relay_config(upstream, relay_allow=("*@auto.test",), release_allow=("*@manual.test",))
    with running(config) as (server, dispatcher):
        send(server, subject="both", to=["dev@auto.test", "qa@manual.test", "bob@customer.test"])
        message_id = latest_id(server)
        status = wait_for(settled(server, dispatcher, message_id))
        assert set(status) == {"dev@auto.test"}
        assert envelopes(upstream) == [("dev@auto.test",)]  # qa@manual.test is a recipient, but not relayed to

        assert release(server, message_id, "qa@manual.test").status_code == 200
        refused = release(server, message_id, "bob@customer.test")
        assert refused.status_code == 400 and "bob@customer.test" in refused.json()["Error"]
        assert release(server, message_id, "other@auto.test").status_code == 200  # relay-allow releases too
    assert envelopes(upstream) == [("dev@auto.test",), ("qa@manual.test",), ("other@auto.test",)]


def test_relay_deny_wins_over_both_allow_lists(upstream: ServerThread) -> None:
    config = relay_config(upstream, relay_allow=("*@corp.test",), release_allow=("/.*/",),
                          relay_deny=("ceo@corp.test", "*@secret.test"))
    with running(config) as (server, dispatcher):
        send(server, subject="denied", to=["dev@corp.test", "CEO@corp.test"])
        message_id = latest_id(server)
        assert set(wait_for(settled(server, dispatcher, message_id))) == {"dev@corp.test"}

        for denied in ("ceo@corp.test", "spy@secret.test"):
            refused = release(server, message_id, "anyone@example.org", denied)
            assert refused.status_code == 400, refused.text
            assert "deny-list" in refused.json()["Error"] and denied in refused.json()["Error"]
        assert release(server, message_id, "anyone@example.org").status_code == 200  # /.*/ releases the rest
    assert envelopes(upstream) == [("dev@corp.test",), ("anyone@example.org",)]  # a refused release sent nothing


# --- forward-to ----------------------------------------------------------------------------------------


def test_forward_to_sends_every_new_message_to_the_fixed_addresses(upstream: ServerThread) -> None:
    config = relay_config(upstream, relay_allow=("*@allowed.test", "qa@keep.test"),
                          forward_to=("archive@keep.test", "QA Team <qa@keep.test>"))
    with running(config) as (server, dispatcher):
        send(server, subject="customer", to=["bob@customer.test"])
        first = latest_id(server)
        assert set(wait_for(settled(server, dispatcher, first))) == {"archive@keep.test", "qa@keep.test"}
        assert envelopes(upstream) == [("archive@keep.test", "qa@keep.test")]  # exactly those: not bob

        response = httpx.post(f"{server.http_url}/api/v1/send", timeout=30, json={
            "From": {"Email": "app@example.com"}, "To": [{"Email": "dev@allowed.test"}], "Subject": "api",
            "Text": "sent through the API"})
        assert response.status_code == 200, response.text
        second = response.json()["ID"]
        status = wait_for(lambda: (s := settled(server, dispatcher, second)()) and len(s) == 3 and s)
        assert set(status) == {"dev@allowed.test", "archive@keep.test", "qa@keep.test"}

        send(server, subject="to qa", to=["qa@keep.test"])  # relayed to qa already: one copy, not two
        third = latest_id(server)
        wait_for(lambda: (s := settled(server, dispatcher, third)()) and len(s) == 2)
    got = Counter(envelopes(upstream))
    assert got == Counter({("archive@keep.test", "qa@keep.test"): 2, ("dev@allowed.test",): 1,
                           ("qa@keep.test",): 1, ("archive@keep.test",): 1})


def test_forwarding_is_only_for_new_mail_and_the_bad_settings_are_explained() -> None:
    relay = Relay.from_config(Config(relay="127.0.0.1:2525", forward_to=("QA <qa@keep.test>",)))
    assert relay is not None and relay.forward_to == ("qa@keep.test",) and not relay.allow
    for changes, message in [
        ({"forward_to": ("not-an-address",)}, "forward_to: 'not-an-address' is not an email address"),
        ({"forward_to": ("a@b@c",)}, "is not an email address"),
        ({"forward_to": ("x@corp.test",), "relay_deny": ("*@corp.test",)}, "matches relay_deny '\\*@corp.test'"),
        ({"relay_override_from": "bob at example"}, "relay_override_from: 'bob at example' is not an email"),
        ({"relay_deny": (" ",)}, "relay_deny: an empty pattern"),
        ({"release_allow": ("/[x/",)}, "release_allow: '/\\[x/' is not a valid regular expression"),
        ({"relay": None, "forward_to": ("qa@keep.test",)}, "forward_to is set but relay"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Relay.from_config(Config(relay="127.0.0.1:2525").replace(**changes))
    assert plausible_address("Q A <qa@keep.test>") == "qa@keep.test"
    for bad in ["", "qa", "qa@", "@keep.test", "qa@keep..test", "q a@keep.test", "qa@keep.test\r\nX: y"]:
        assert plausible_address(bad) is None, bad


# --- override-from ----------------------------------------------------------------------------------------

FOLDED = (b"Return-Path: <alice@example.com>\r\nFrom: \"Alice Example\"\r\n <alice@example.com>\r\n"
          b"To: dev@allowed.test\r\nSubject: as whom\r\nMessage-ID: <as-whom@test>\r\n\r\n"
          b"From: a body line that looks like a header stays.\r\n")


def test_override_from_rewrites_the_copy_sent_never_the_stored_message(upstream: ServerThread) -> None:
    config = relay_config(upstream, relay_allow=("*@allowed.test",), release_allow=("*@manual.test",),
                          forward_to=("archive@keep.test",), relay_override_from="Relay Bot <bot@relay.test>")
    with running(config) as (server, dispatcher):
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            client.sendmail("alice@example.com", ["dev@allowed.test"], FOLDED)
        message_id = latest_id(server)
        raw_url = f"{server.http_url}/api/v1/message/{message_id}/raw"
        before = httpx.get(raw_url).content
        wait_for(lambda: (s := settled(server, dispatcher, message_id)()) and len(s) == 2)
        assert release(server, message_id, "qa@manual.test").status_code == 200
        after = httpx.get(raw_url).content
    assert before == after == FOLDED  # the stored bytes, untouched by three rewritten copies

    expected = (b"X-Original-From: alice@example.com\r\nReturn-Path: <alice@example.com>\r\n"
                b"From: Alice Example <bot@relay.test>\r\nTo: dev@allowed.test\r\nSubject: as whom\r\n"
                b"Message-ID: <as-whom@test>\r\n\r\nFrom: a body line that looks like a header stays.\r\n")
    got = received(upstream)
    assert sorted(rcpts for _, _, rcpts in got) == [("archive@keep.test",), ("dev@allowed.test",),
                                                    ("qa@manual.test",)]
    for raw, mail_from, _ in got:
        assert mail_from == "bot@relay.test"
        assert raw == expected
        assert email.utils.parseaddr(email.message_from_bytes(raw)["From"]) == ("Alice Example", "bot@relay.test")


def test_override_from_without_a_from_header_and_with_several() -> None:
    assert override_from(b"Subject: x\n\nbody\n", "bot@relay.test") == b"From: bot@relay.test\nSubject: x\n\nbody\n"
    several = override_from(b"From: a@x.test, b@y.test\r\nSubject: x\r\n\r\n", "bot@relay.test")
    assert several == (b"X-Original-From: a@x.test, b@y.test\r\nFrom: bot@relay.test\r\nSubject: x\r\n\r\n")
    encoded = override_from(b"from: =?utf-8?q?J=C3=B6rg?= <j@x.test>\r\n\r\n", "bot@relay.test")
    assert encoded.startswith(b"X-Original-From: j@x.test\r\nFrom: =?utf-8?")  # the name encoded again
    rewritten = email.message_from_bytes(encoded, policy=email.policy.default)["From"].addresses
    assert [(a.display_name, a.addr_spec) for a in rewritten] == [("Jörg", "bot@relay.test")]
    spaced = override_from(b"FROM : <a@x.test>\r\n\r\n", "bot@relay.test")
    assert spaced == b"X-Original-From: a@x.test\r\nFrom: bot@relay.test\r\n\r\n"  # one From, not two
    body_only = b"Subject: x\r\n\r\nFrom: not a header\r\n"
    assert override_from(body_only, "bot@relay.test") == b"From: bot@relay.test\r\n" + body_only


# --- once per message across nodes (PostgreSQL) ------------------------------------------------------------

LEASE = 3.0
EXTRA = {"work_lease": LEASE, "work_sweep": 0.5, "relay_backoff": 0.1, "relay_max_backoff": 0.3,
         "relay_attempts": 100_000, "relay_timeout": 2.0}


@pytest.fixture
def database(postgres_server: Any) -> str:  # noqa: F811
    return str(postgres_server.create_database())


@pytest.fixture
def start(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    from tests.cluster import nodes
    from tests.outputs.test_work_restart import SERVE_WITH_EXTRA

    monkeypatch.setattr(nodes, "MAILNEST", SERVE_WITH_EXTRA)
    started: list[nodes.Node] = []

    def run(label: str, *args: str) -> nodes.Node:
        node = nodes.Node.start(label, database, tmp_path / label, *args,
                                env={"MAILNEST_TEST_EXTRA": json.dumps(EXTRA)})
        started.append(node)
        return node

    yield run
    for node in started:
        node.stop()


def test_forwarding_held_by_a_killed_node_is_done_once_by_another(start: Callable[..., Any],
                                                                  upstream: ServerThread) -> None:
    from tests.cluster.nodes import wait_until

    forward = ("--forward-to", "archive@keep.test")
    first = start("node1", "--relay", f"127.0.0.1:{closed_port()}", *forward)  # its upstream is down
    second = start("node2", "--relay", f"127.0.0.1:{upstream.smtp_port}", *forward)
    held = [first.send(f"held {i}", to="bob@customer.test") for i in range(2)]
    second.send("normal", to="bob@customer.test")

    def forwarded() -> Counter[str]:
        return Counter(email.message_from_bytes(raw)["Subject"] for raw, _, _ in received(upstream))

    wait_until(lambda: forwarded() == Counter(["normal"]), what="node 2 forwarding its own message")
    first.kill()
    wait_until(lambda: sum(forwarded().values()) >= 3, timeout=30, what="node 1's forwards, taken over")
    wait_for(lambda: "taking over once-only work" in second.output(), timeout=10)
    time.sleep(2 * LEASE)  # a second copy of anything would have come by now
    assert forwarded() == Counter(["normal", "held 0", "held 1"]) and len(held) == 2
    assert {rcpts for _, _, rcpts in received(upstream)} == {("archive@keep.test",)}


# --- `mailnest serve` refuses bad values: one line, exit 2 ------------------------------------------------

RELAY = ["--relay", "127.0.0.1:2525"]


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--relay-deny", " "], {}, "--relay-deny: an empty value; give one, or leave the option out"),
    (["--relay-deny", ""], {}, "--relay-deny: an empty value; give one, or leave the option out"),
    (["--relay-allow", "re:"], {}, "--relay-allow: an empty pattern; use *@example.com, an address, or /regex/"),
    (["--release-allow", "/[x/"], {}, "--release-allow: '/[x/' is not a valid regular expression"),
    (["--forward-to", "not-an-address"], {}, "--forward-to: 'not-an-address' is not an email address; write one "
                                             "such as qa@example.com"),
    ([], {"MAILNEST_FORWARD_TO": "qa@keep.test, bob at example"}, "MAILNEST_FORWARD_TO: 'bob at example' is not"),
    (["--relay-override-from", "Relay Bot"], {}, "--relay-override-from: 'Relay Bot' is not an email address"),
    (["--forward-to", "ceo@corp.test", "--relay-deny", "*@corp.test"], {},
     "--forward-to: 'ceo@corp.test' matches --relay-deny '*@corp.test'"),
])
def test_serve_refuses_bad_relay_values(args: list[str], env: dict[str, str], named: str) -> None:
    from tests.test_cli_startup import QUIET, one_clear_line, serve

    line = one_clear_line(serve(*QUIET, *RELAY, *args, env=env))
    assert named in line, line


@pytest.mark.parametrize(("header", "name"), [
    ('"=?x?= <ceo@bank.example>, Z" <app@test>', "=?x?= <ceo@bank.example>, Z"),  # a name that is syntax
    ("=?utf-8?q?J=C3=BCrgen?= <app@test>", "Jürgen"),
])
def test_a_crafted_from_name_cannot_add_an_address_to_the_override(header: str, name: str) -> None:
    """A review found it: a display name holding `=?` went back unquoted, so its comma and brackets became a
    second, sender-chosen address in front of the override."""
    copy = override_from(f"From: {header}\r\nFrom: second@sender.test\r\nSubject: x\r\n\r\nbody\r\n".encode(),
                         "qa@ok.example")
    message = email.message_from_bytes(copy, policy=email.policy.default)
    assert message.get_all("From") is not None and len(message.get_all("From")) == 1  # the second one is gone
    assert [(a.display_name, a.addr_spec) for a in message["From"].addresses] == [(name, "qa@ok.example")]


def test_a_long_original_from_stays_one_valid_line() -> None:
    many = ", ".join(f"user{n}@example.test" for n in range(100))
    copy = override_from(f"From: {many}\r\n\r\nx\r\n".encode(), "qa@ok.example")
    assert all(len(line) <= 998 for line in copy.split(b"\r\n"))
