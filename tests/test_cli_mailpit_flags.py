"""Mailpit's options as `mailnest serve` flags and MAILNEST_* variables, end to end through a real process:
--label, --webroot, --smtp-allowed-recipients, --smtp-ignore-rejected-recipients, --cors HOST, and
--max-message-size 0."""

from __future__ import annotations

import smtplib
from pathlib import Path

import httpx
import pytest

from mailnest.cli import build_parser, config_from_args
from tests.test_cli import serving, stop


def parsed(*args: str, env: dict[str, str] | None = None) -> object:
    return config_from_args(build_parser().parse_args(["serve", *args]), env or {})


def test_label_and_allowed_recipients_from_flags(tmp_path: Path) -> None:
    with serving(tmp_path, "--label", "Team A", "--smtp-allowed-recipients", r"@example\.com$") as (proc, ports):
        client = smtplib.SMTP(timeout=10)
        code, greeting = client.connect("127.0.0.1", ports["smtp"])
        assert (code, greeting) == (220, b"mailnest mailnest (Team A) ESMTP")
        with client:
            refused = client.sendmail("app@example.com", ["dev@example.com", "x@elsewhere.org"],
                                      b"Subject: kept\r\n\r\nhi\r\n")
        assert list(refused) == ["x@elsewhere.org"] and refused["x@elsewhere.org"][0] == 550
        latest = httpx.get(f"http://127.0.0.1:{ports['http']}/api/v1/message/latest").json()
        assert latest["Subject"] == "kept"
        assert [a["Address"] for a in latest["To"] + latest["Bcc"]] == ["dev@example.com"]
        assert stop(proc)[0] == 0


def test_ignored_recipients_and_unlimited_size_from_variables(tmp_path: Path) -> None:
    env = {"MAILNEST_SMTP_ALLOWED_RECIPIENTS": "(?i)^dev@", "MAILNEST_SMTP_IGNORE_REJECTED_RECIPIENTS": "true",
           "MAILNEST_MAX_MESSAGE_SIZE": "0", "MAILNEST_LABEL": "ci"}
    with serving(tmp_path, env=env) as (proc, ports):
        client = smtplib.SMTP(timeout=60)
        assert client.connect("127.0.0.1", ports["smtp"])[1] == b"mailnest mailnest (ci) ESMTP"
        with client:
            client.ehlo("size.test")
            assert "size" not in client.esmtp_features  # 0: no limit to advertise
            big = b"Subject: big\r\n\r\n" + b"y" * (51 << 20) + b"\r\n"  # over the 50M default
            assert client.sendmail("app@example.com", ["DEV@example.com", "x@elsewhere.org"], big) == {}
            assert client.sendmail("app@example.com", ["x@elsewhere.org"], b"Subject: dropped\r\n\r\nx\r\n") == {}
        listing = httpx.get(f"http://127.0.0.1:{ports['http']}/api/v1/messages").json()
        assert [m["Subject"] for m in listing["messages"]] == ["big"]
        latest = httpx.get(f"http://127.0.0.1:{ports['http']}/api/v1/message/latest", timeout=60).json()
        assert [a["Address"] for a in latest["To"] + latest["Bcc"]] == ["DEV@example.com"]
        assert stop(proc)[0] == 0


def test_cors_takes_mailpit_host_names_beside_full_origins(tmp_path: Path) -> None:
    with serving(tmp_path, "--cors", "example.com,foo.test:8080", "--cors", "http://localhost:3000") as (proc, ports):
        url = f"http://127.0.0.1:{ports['http']}/api/v1/messages"

        def preflight(origin: str) -> str | None:
            answer = httpx.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"})
            return answer.headers.get("access-control-allow-origin")

        for allowed in ("https://example.com", "http://example.com", "http://foo.test:8080", "http://localhost:3000"):
            assert preflight(allowed) == allowed, allowed
        for refused in ("http://example.com:8080", "http://foo.test", "http://evil.example"):
            assert preflight(refused) is None, refused
        assert stop(proc)[0] == 0


def test_the_option_values_as_parsed() -> None:
    config = parsed("--webroot", "mail", "--label", " staging ", "--cors", "Example.COM foo.test")
    assert config.webroot == "/mail/" and config.label == "staging"  # type: ignore[attr-defined]
    assert config.cors_origins == ("http://example.com", "https://example.com",  # type: ignore[attr-defined]
                                   "http://foo.test", "https://foo.test")
    assert parsed("--cors", "http://a.test,*,b.test").cors_origins == ("*",)  # type: ignore[attr-defined]
    from_env = parsed(env={"MAILNEST_WEBROOT": "/tools/mail", "MAILNEST_CORS": "a.test,http://localhost:3000"})
    assert from_env.webroot == "/tools/mail/"  # type: ignore[attr-defined]
    assert from_env.cors_origins == ("http://a.test", "https://a.test",  # type: ignore[attr-defined]
                                     "http://localhost:3000", "https://localhost:3000")
    assert parsed("--webroot", "/").webroot == "/"  # type: ignore[attr-defined]


@pytest.mark.parametrize("webroot", ["/a/../b", "/a//b", "/mail?x", "/mail#top", "/%2e%2e/", "/ma il/"])
def test_a_webroot_that_is_not_a_clean_path_is_refused(webroot: str) -> None:
    from mailnest.config import Config, ConfigError

    with pytest.raises(ConfigError, match="webroot"):
        Config(webroot=webroot)
