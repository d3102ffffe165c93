"""Shared fixtures: a real mailnest on port 0 in a background thread, and helpers to talk to it."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@pytest.fixture(autouse=True)
def _no_running_loop_left_by_the_browser(request: pytest.FixtureRequest) -> Iterator[None]:
    """Playwright's sync API (the session-wide `browser` fixture) leaves its event loop marked as running in the
    main thread, so `asyncio.run()` in any later test of that worker would fail. Tests that do not use the browser
    run without that mark, and it is put back afterwards for the browser's own next use."""
    loop = asyncio._get_running_loop()
    if loop is None or "browser" in request.fixturenames:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)


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


@contextmanager
def http_site(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a free port) answering with `handler`, for links, images and webhooks a
    test needs mailnest to reach; yields its base URL, and is gone afterwards."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def trusting(server: ServerThread) -> ssl.SSLContext:
    """A client TLS context that trusts the server's certificate (generated or given)."""
    assert server.tls_cert is not None, "the server has no TLS certificate"
    return ssl.create_default_context(cafile=str(server.tls_cert))


# -- CI runs every test: a skip there is a failure --------------------------------------------------------------

def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Report every skipped test at the end of the run; in CI (`CI=true`) any skip fails the run.

    A test skips when a system tool or privilege it needs is missing. Outside CI that is a convenience; in CI it
    would hide a missing install step in .ci/run, so the run fails and names what was skipped.
    """
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller reports for everyone
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = [report for report in reporter.stats.get("skipped", []) if not hasattr(report, "wasxfail")]
    if not skipped:
        return
    lines = []
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        lines.append(f"  {report.nodeid}: {reason}")
    verdict = "CI requires every test to run; these were skipped" if IN_CI else "skipped (they run in CI)"
    reporter.line("")
    reporter.write_sep("=", f"{len(skipped)} test(s) {verdict}", red=IN_CI, yellow=not IN_CI)
    for line in lines:
        reporter.write_line(line)
    if IN_CI and session.exitstatus == 0:
        session.exitstatus = 1
