"""neomutt, driven in tmux, lists the inbox over IMAP and opens a multipart message."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailnest.runtime import ServerThread

from ..conftest import require_tool
from .helpers import deliver, multipart


class Tmux:
    def __init__(self, tmux: str, socket: str) -> None:
        self.tmux = tmux
        self.socket = socket

    def run(self, *args: str) -> str:
        return subprocess.run([self.tmux, "-L", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "mail")

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen shows:\n{screen}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "mail", *keys)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux(require_tool("tmux"), f"mailnest-{uuid.uuid4().hex[:12]}")
    yield session
    subprocess.run([session.tmux, "-L", session.socket, "kill-server"], capture_output=True, timeout=30)


def test_neomutt_lists_inbox_and_opens_multipart(server: ServerThread, tmux: Tmux, tmp_path: Path) -> None:
    neomutt = require_tool("neomutt")
    deliver(server, to=("alice@example.com",), subject="Plain hello")
    deliver(server, to=("alice@example.com",), raw=multipart("Quarterly numbers"))
    rc = tmp_path / "neomuttrc"
    rc.write_text(
        f'set folder = "imap://alice%40example.com@127.0.0.1:{server.imap_port}/"\n'
        'set spoolfile = "+INBOX"\n'
        'set imap_pass = "secret"\n'
        "set ssl_starttls = no\nset ssl_force_tls = no\n"
        'set header_cache = ""\nset message_cachedir = ""\n'
        "set sort = date\nset mark_old = no\nset pager_stop = yes\nset mail_check = 60\n"
        'set index_format = "%4C %-20.20F %s"\n'
        "set confirmappend = no\nset quit = yes\n"
    )
    env = {"HOME": str(tmp_path), "TERM": "xterm-256color", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LANG": "C.UTF-8"}
    tmux.run("new-session", "-d", "-s", "mail", "-x", "160", "-y", "40",
             "env", *(f"{k}={v}" for k, v in env.items()), neomutt, "-n", "-F", str(rc))
    screen = tmux.wait_for("Quarterly numbers")
    assert "Plain hello" in screen
    assert "Reporter" in screen
    tmux.keys("2")  # jump to message 2
    tmux.keys("Enter")
    tmux.keys("Enter")
    screen = tmux.wait_for("Plain body.")
    assert "data.bin" in screen  # the attachment is listed
    tmux.keys("v")  # the attachment menu shows every MIME part
    # wait for text only the attachment menu has: the pager already shows "data.bin" (a race under load)
    screen = tmux.wait_for("applica/octet-stre")
    assert "multipa/alternativ" in screen and "data.bin" in screen  # neomutt abbreviates types
    tmux.keys("q", "q", "q")
