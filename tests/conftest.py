"""Shared fixtures: a real mailnest on port 0 in a background thread, and helpers to talk to it."""

from __future__ import annotations

import os
import shutil
import smtplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

from mailnest import Config, ServerThread

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """The path of a system tool; skips without it, except in CI where a missing tool is a failure."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI (.ci/run installs it) but was not found")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(params=["generated", "given"])
def certificate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Config settings for TLS: the self-signed certificate mailnest generates, or one the user gives."""
    if request.param == "generated":
        return {"tls": True}
    from mailnest.tls import generate_self_signed

    material = generate_self_signed(tmp_path_factory.mktemp("cert"), ["localhost", "127.0.0.1"])
    return {"tls_cert": material.cert, "tls_key": material.key}


@pytest.fixture
def server_config() -> Config:
    return Config()


@pytest.fixture
def server(server_config: Config) -> Iterator[ServerThread]:
    with ServerThread(server_config) as running:
        yield running


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        yield client


def send(server: ServerThread, *, to: list[str] | None = None, sender: str = "sender@example.com",
         subject: str = "Hello", body: str = "Hello there.\n", raw: bytes | None = None,
         **headers: str) -> bytes:
    """Send one message over SMTP with smtplib; returns the bytes sent."""
    to = to or ["rcpt@example.com"]
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        if raw is None:
            msg = EmailMessage()
            msg["From"] = sender
            msg["To"] = ", ".join(to)
            msg["Subject"] = subject
            for name, value in headers.items():
                msg[name.replace("_", "-")] = value
            msg.set_content(body)
            raw = bytes(msg)
        client.sendmail(sender, to, raw)
    return raw


def trusting(server: ServerThread) -> ssl.SSLContext:
    """A client TLS context that trusts the server's certificate (generated or given)."""
    assert server.tls_cert is not None, "the server has no TLS certificate"
    return ssl.create_default_context(cafile=str(server.tls_cert))
