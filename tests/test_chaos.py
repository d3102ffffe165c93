"""Chaos: the pure settings and decisions (seeded), then the SMTP side failing on purpose for real clients
(smtplib), driven by --chaos, Mailpit's chaos API and MailHog's Jim."""

from __future__ import annotations

import smtplib
import time

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.chaos import (
    NOTHING,
    Action,
    Chaos,
    ChaosError,
    ChaosSettings,
    Trigger,
    describe,
    from_jim,
    from_mailpit,
    jim_settings,
    parse_spec,
    to_jim,
    to_mailpit,
)
from mailnest.config import ConfigError
from tests.conftest import send

# -- the --chaos flag ----------------------------------------------------------------------------------------


def test_parse_spec_every_key() -> None:
    settings = parse_spec("sender=451:0.5, recipient=550:10%, auth=0.2, latency=200ms, rate=10/s, drop=0.05, "
                          "accept=99%, seed=42")
    assert settings.sender == Trigger(451, 0.5)
    assert settings.recipient == Trigger(550, 0.1)
    assert settings.auth == Trigger(535, 0.2)  # the default code
    assert settings.latency == pytest.approx(0.2)
    assert settings.rate == 10
    assert settings.drop == 0.05 and settings.accept == pytest.approx(0.99) and settings.seed == 42
    assert describe(settings) == ("sender=451:0.5,recipient=550:0.1,auth=535:0.2,drop=0.05,accept=0.99,"
                                  "latency=200ms,rate=10/s")


@pytest.mark.parametrize(("spec", "expected"), [
    ("", ChaosSettings()), ("on", ChaosSettings()), ("latency=1.5s", ChaosSettings(latency=1.5)),
    ("latency=2", ChaosSettings(latency=2.0)), ("rate=600/m", ChaosSettings(rate=10.0)),
    ("rate=5", ChaosSettings(rate=5.0)), ("rcpt=552:1", ChaosSettings(recipient=Trigger(552, 1.0))),
])
def test_parse_spec_forms(spec: str, expected: ChaosSettings) -> None:
    assert parse_spec(spec) == expected
    assert not expected.active or expected != ChaosSettings()


@pytest.mark.parametrize(("spec", "fragment"), [
    ("sender=451:1.5", "between 0 and 1"), ("sender=351:0.5", "between 400 and 599"), ("bogus=1", "KEY=VALUE"),
    ("latency=fast", "duration"), ("rate=lots", "rate"), ("drop=150%", "between 0 and 1"), ("sender", "KEY=VALUE"),
    ("seed=x", "whole number"), ("sender=abc:0.1", "CODE:CHANCE"),
])
def test_parse_spec_errors_name_the_item(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="--chaos") as caught:
        parse_spec(spec)
    assert fragment in str(caught.value)


# -- decisions -----------------------------------------------------------------------------------------------


def test_idle_chaos_does_nothing() -> None:
    session = Chaos(ChaosSettings()).session()
    assert [session.connect(), session.command(), session.mail(), session.rcpt(), session.auth(),
            session.data(1000)] == [NOTHING] * 6
    assert not NOTHING


def test_triggers_fire_at_their_probability_with_a_seed() -> None:
    chaos = Chaos(ChaosSettings(sender=Trigger(451, 0.3), seed=7))
    session = chaos.session()
    replies = [session.mail().reply for _ in range(2000)]
    rejected = [r for r in replies if r]
    assert 500 < len(rejected) < 700  # 30% of 2000
    assert rejected[0].startswith("451 4.7.1 ")
    again = Chaos(ChaosSettings(sender=Trigger(451, 0.3), seed=7)).session()
    assert [again.mail().reply for _ in range(2000)] == replies  # the same seed, the same run


def test_certain_triggers_and_codes() -> None:
    session = Chaos(ChaosSettings(recipient=Trigger(550, 1.0), auth=Trigger(454, 1.0))).session()
    assert session.rcpt().reply.startswith("550 5.7.1 Chaos: recipient rejected")
    assert session.auth().reply.startswith("454 4.7.8 Chaos: authentication failed")
    assert session.mail() == NOTHING


def test_drop_latency_accept_and_link_speed() -> None:
    assert Chaos(ChaosSettings(drop=1.0)).session().mail() == Action(drop=True)
    assert Chaos(ChaosSettings(latency=0.25)).session().rcpt() == Action(delay=0.25)
    assert Chaos(ChaosSettings(accept=0.0)).session().connect() == Action(drop=True)
    slow = Chaos(ChaosSettings(link_affect=1.0, link_min=1000, link_max=1000)).session()
    assert slow.data(5000).delay == pytest.approx(5.0)


def test_rate_limit_counts_messages_per_second() -> None:
    now = [100.0]
    chaos = Chaos(ChaosSettings(rate=2), clock=lambda: now[0])
    session = chaos.session()
    assert session.mail() == NOTHING and session.mail() == NOTHING
    limited = session.mail()
    assert limited.reply.startswith("421 4.7.0") and limited.close
    now[0] += 1.01
    assert session.mail() == NOTHING


def test_settings_change_live_for_open_sessions() -> None:
    chaos = Chaos(ChaosSettings())
    session = chaos.session()
    assert session.mail() == NOTHING
    chaos.update(ChaosSettings(sender=Trigger(421, 1.0)))
    assert session.mail().reply.startswith("421 ")


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ChaosError):
        ChaosSettings(sender=Trigger(200, 0.5))
    with pytest.raises(ChaosError):
        ChaosSettings(latency=-1)


# -- the API shapes ------------------------------------------------------------------------------------------


def test_mailpit_triggers_round_trip_and_reset() -> None:
    base = ChaosSettings(latency=0.1, recipient=Trigger(550, 0.5))
    settings = from_mailpit({"sender": {"errorcode": 452, "probability": 25}}, base)
    assert settings.sender == Trigger(452, 0.25)
    assert settings.recipient == Trigger(451, 0.0)  # omitted: reset, as in Mailpit
    assert settings.latency == 0.1  # not a Mailpit setting: kept
    assert to_mailpit(settings)["Sender"] == {"ErrorCode": 452, "Probability": 25}
    for bad in ([], {"Sender": {"ErrorCode": 600, "Probability": 5}}, {"Sender": {"Probability": 101}},
                {"Sender": {"ErrorCode": "451"}}, {"Sender": 5}):
        with pytest.raises(ChaosError):
            from_mailpit(bad, base)


def test_unknown_fields_are_ignored_as_go_does() -> None:
    """Mailpit (Go's decoder) answers 200 to `{"reject_senders": 0.5}`; so does mailnest, at every level."""
    base = ChaosSettings(sender=Trigger(451, 0.5))
    assert from_mailpit({"reject_senders": 0.5}, base).sender == Trigger(451, 0.0)  # omitted: reset
    given = from_mailpit({"Sender": {"ErrorCode": 452, "Probability": 10, "Extra": 1}, "Nope": {}}, base)
    assert given.sender == Trigger(452, 0.1)
    assert from_jim({"RejectSenderChance": 0.2, "Colour": "red"}, base).sender.probability == 0.2


def test_jim_defaults_and_updates() -> None:
    jim = jim_settings(None)
    assert to_jim(jim) == {"DisconnectChance": 0.005, "AcceptChance": 0.99, "LinkSpeedAffect": 0.1,
                           "LinkSpeedMin": 1024, "LinkSpeedMax": 10240, "RejectSenderChance": 0.05,
                           "RejectRecipientChance": 0.05, "RejectAuthChance": 0.05}
    assert jim.sender.code == 550 and jim.auth.code == 535
    changed = from_jim({"RejectSenderChance": 1, "AcceptChance": 1}, jim)
    assert changed.sender == Trigger(550, 1.0) and changed.accept == 1.0
    with pytest.raises(ChaosError):
        from_jim({"RejectSenderChance": 2}, jim)
    with pytest.raises(ChaosError):
        from_jim({"RejectSenderChance": "often"}, jim)


# -- end to end: smtplib against a chaotic mailnest ------------------------------------------------------------------


def smtp(server: ServerThread) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test", timeout=10)


@pytest.mark.parametrize("server_config", [Config(chaos="sender=451:1")])
def test_sender_rejected_by_the_flag(server: ServerThread, api: httpx.Client) -> None:
    with smtp(server) as client, pytest.raises(smtplib.SMTPSenderRefused) as caught:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")
    assert caught.value.smtp_code == 451
    assert api.get("/api/v1/messages").json()["total"] == 0


@pytest.mark.parametrize("server_config", [Config(chaos="on")])
def test_api_triggers_change_smtp_behaviour_live(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="before chaos")
    assert api.put("/api/v1/chaos", json={"Recipient": {"ErrorCode": 550, "Probability": 100}}).status_code == 200
    with smtp(server) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: refused\r\n\r\nbody\r\n")
    assert caught.value.recipients["b@example.com"][0] == 550
    assert api.put("/api/v1/chaos", json={}).json()["Recipient"]["Probability"] == 0
    send(server, subject="after chaos")
    assert [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]] == ["after chaos", "before chaos"]


@pytest.mark.parametrize("server_config", [Config(chaos="auth=535:1")])
def test_authentication_rejected(server: ServerThread) -> None:
    with smtp(server) as client, pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        client.login("user", "secret")
    assert caught.value.smtp_code == 535


@pytest.mark.parametrize("server_config", [Config(chaos="drop=1")])
def test_dropped_connection_stores_nothing(server: ServerThread, api: httpx.Client) -> None:
    with pytest.raises(smtplib.SMTPServerDisconnected), smtp(server) as client:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")
    assert api.get("/api/v1/messages").json()["total"] == 0


@pytest.mark.parametrize("server_config", [Config(chaos="accept=0")])
def test_refused_connection(server: ServerThread) -> None:
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        smtp(server).noop()


@pytest.mark.parametrize("server_config", [Config(chaos="latency=150ms")])
def test_latency_before_every_reply(server: ServerThread) -> None:
    with smtp(server) as client:
        started = time.monotonic()
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: slow\r\n\r\nbody\r\n")
        elapsed = time.monotonic() - started
    assert elapsed >= 0.15 * 4  # MAIL, RCPT, DATA's end, and EHLO each waited


@pytest.mark.parametrize("server_config", [Config(chaos="rate=3/s")])
def test_rate_limit_answers_421_and_closes(server: ServerThread, api: httpx.Client) -> None:
    with smtp(server) as client:
        for i in range(3):
            client.sendmail("a@example.com", ["b@example.com"], f"Subject: {i}\r\n\r\nbody\r\n".encode())
        with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPServerDisconnected)) as caught:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: over\r\n\r\nbody\r\n")
    if isinstance(caught.value, smtplib.SMTPSenderRefused):
        assert caught.value.smtp_code == 421
    assert api.get("/api/v1/messages").json()["total"] == 3


def test_chaos_api_is_refused_unless_enabled(server: ServerThread, api: httpx.Client) -> None:
    for response in (api.get("/api/v1/chaos"), api.put("/api/v1/chaos", json={})):
        assert response.status_code == 400
        assert "not enabled" in response.json()["Error"]
    assert api.get("/api/v1/webui").json()["ChaosEnabled"] is False


@pytest.mark.parametrize("server_config", [Config(chaos="on")])
@pytest.mark.parametrize("body", [{"Sender": {"ErrorCode": 200, "Probability": 5}}, {"Sender": "x"}, ["list"]])
def test_bad_trigger_bodies_get_400(server: ServerThread, api: httpx.Client, body: object) -> None:
    response = api.put("/api/v1/chaos", json=body)
    assert response.status_code == 400 and response.json()["Error"]


@pytest.mark.parametrize("server_config", [Config(chaos="on")])
def test_a_put_with_unknown_fields_is_taken(server: ServerThread, api: httpx.Client) -> None:
    response = api.put("/api/v1/chaos", json={"reject_senders": 0.5, "Recipient": {"ErrorCode": 451,
                                                                                    "Probability": 5}})
    assert response.status_code == 200, response.text
    assert response.json()["Recipient"] == {"ErrorCode": 451, "Probability": 5}


def test_jim_is_invited_used_and_sent_away(server: ServerThread, api: httpx.Client) -> None:
    assert api.get("/api/v2/jim").status_code == 404
    assert api.put("/api/v2/jim", json={}).status_code == 404
    created = api.post("/api/v2/jim", json={"RejectSenderChance": 1, "DisconnectChance": 0, "AcceptChance": 1,
                                             "LinkSpeedAffect": 0})
    assert created.status_code == 201
    assert api.post("/api/v2/jim").status_code == 409  # already there
    jim = api.get("/api/v2/jim").json()
    assert jim["RejectSenderChance"] == 1 and jim["RejectRecipientChance"] == 0.05
    with smtp(server) as client, pytest.raises(smtplib.SMTPSenderRefused) as caught:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")
    assert caught.value.smtp_code == 550
    assert api.put("/api/v2/jim", json={"RejectSenderChance": 0, "RejectRecipientChance": 0,
                                        "RejectAuthChance": 0}).status_code == 200
    send(server, subject="through")
    assert api.put("/api/v2/jim", json={"RejectSenderChance": "often"}).status_code == 400
    assert api.delete("/api/v2/jim").status_code == 200
    assert api.get("/api/v2/jim").status_code == 404
    assert api.delete("/api/v2/jim").status_code == 404
    send(server, subject="after Jim")
    assert api.get("/api/v1/messages").json()["total"] == 2
