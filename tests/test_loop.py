"""`--loop uvloop`: every front door on uvloop's event loop (SMTP with STARTTLS and AUTH, SMTPS, IMAP with
STARTTLS, POP3, the API, live events), from the embedding API and from `mailnest serve`; a bad value, or uvloop
missing, is exit 2 with what to do."""

from __future__ import annotations

import asyncio
import imaplib
import json
import os
import poplib
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mailnest import Config, Listen, ServerThread
from tests.conftest import trusting

if not os.environ.get("CI"):
    pytest.importorskip("uvloop")  # in CI the test extras install it: its absence fails there

MESSAGE = b"From: a@example.com\r\nTo: dev@example.com\r\nSubject: on uvloop\r\n\r\nhello\r\n"


def test_every_front_door_works_on_uvloop() -> None:
    config = Config(loop="uvloop", tls=True, smtps=Listen("127.0.0.1", 0), imap=Listen("127.0.0.1", 0),
                    pop3=Listen("127.0.0.1", 0))
    with ServerThread(config) as server:
        async def loop_type() -> str:
            return type(asyncio.get_running_loop()).__module__

        assert server.call(loop_type()).startswith("uvloop")
        context = trusting(server)
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            client.starttls(context=context)
            client.login("anyone", "anything")
            client.sendmail("a@example.com", ["dev@example.com"], MESSAGE)
        with smtplib.SMTP_SSL("127.0.0.1", server.smtps_port, context=context) as client:
            client.sendmail("a@example.com", ["dev@example.com"], MESSAGE)
        listing = httpx.get(f"{server.http_url}/api/v1/messages").json()
        assert [m["Subject"] for m in listing["messages"]] == ["on uvloop", "on uvloop"]
        latest = httpx.get(f"{server.http_url}/api/v1/message/latest").json()
        assert latest["Envelope"]["TLS"]["Version"].startswith("TLSv1.")
        imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
        imap.starttls(ssl_context=context)
        imap.login("dev@example.com", "x")
        assert imap.select("INBOX") == ("OK", [b"2"])
        typ, data = imap.fetch("1", "(BODY[])")
        assert typ == "OK" and data[0][1] == MESSAGE  # type: ignore[index]
        imap.logout()
        pop = poplib.POP3("127.0.0.1", server.pop3_port, timeout=30)
        pop.stls(context=context)
        pop.user("dev@example.com")
        pop.pass_("x")
        assert pop.stat()[0] == 2
        pop.quit()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MAILNEST_")}


def test_serve_with_loop_uvloop(tmp_path: Path) -> None:
    ports = tmp_path / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "mailnest.cli", "serve", "--loop", "uvloop", "--smtp",
                             "127.0.0.1:0", "--http", "127.0.0.1:0", "--imap", "off", "--pop3", "off",
                             "--ports-file", str(ports)], env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (ports.exists() and ports.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "mailnest serve --loop uvloop did not start"
            time.sleep(0.05)
        bound = json.loads(ports.read_text())
        with smtplib.SMTP("127.0.0.1", bound["smtp"]) as client:
            client.sendmail("a@example.com", ["dev@example.com"], MESSAGE)
        listing = httpx.get(f"http://127.0.0.1:{bound['http']}/api/v1/messages").json()
        assert listing["messages"][0]["Subject"] == "on uvloop"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def test_a_loop_that_is_not_one_is_exit_2() -> None:
    done = subprocess.run([sys.executable, "-m", "mailnest.cli", "serve", "--loop", "tokio"], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "'tokio' is not one of asyncio, uvloop" in done.stderr
    assert "Traceback" not in done.stderr


def test_uvloop_missing_is_exit_2_saying_how_to_get_it() -> None:
    code = ("import sys; sys.modules['uvloop'] = None\n"  # as if it were not installed
            "from mailnest.cli import main\n"
            "sys.exit(main(['serve', '--loop', 'uvloop', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0', "
            "'--imap', 'off', '--pop3', 'off']))")
    done = subprocess.run([sys.executable, "-c", code], env={**_env(), "MAILNEST_LOOP": "asyncio"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "uvloop is not installed; pip install 'mailnest[fast]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_variable_names_the_loop_too() -> None:
    code = ("import sys; sys.modules['uvloop'] = None\n"
            "from mailnest.cli import main\n"
            "sys.exit(main(['serve', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--imap', 'off', "
            "'--pop3', 'off']))")
    done = subprocess.run([sys.executable, "-c", code], env={**_env(), "MAILNEST_LOOP": "uvloop"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "MAILNEST_LOOP" in done.stderr and "pip install 'mailnest[fast]'" in done.stderr
