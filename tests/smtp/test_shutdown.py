"""Stopping finishes messages in flight and tells idle clients 421; nothing acknowledged is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from mailnest import Config, ServerThread
from tests.smtp.test_bad_input import Conversation


def test_stop_finishes_the_message_in_flight_and_refuses_idle_sessions(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    server = ServerThread(Config(db=db)).start()
    idle = Conversation(server.smtp_port)
    busy = Conversation(server.smtp_port)
    busy.say(b"EHLO busy.test\r\n")
    busy.say(b"MAIL FROM:<a@example.com>\r\n")
    busy.say(b"RCPT TO:<b@example.com>\r\n")
    assert busy.say(b"DATA\r\n").startswith(b"354")
    busy.sock.sendall(b"Subject: in flight\r\n\r\nfirst half, ")

    stopper = threading.Thread(target=server.stop)
    stopper.start()
    assert idle.reply().startswith(b"421")  # told at once, while the busy session is still finishing
    time.sleep(0.2)
    assert stopper.is_alive()  # waiting for the message in flight
    busy.sock.sendall(b"second half\r\n.\r\n")
    assert busy.reply().startswith(b"250")
    assert busy.reply().startswith(b"421")
    stopper.join(15)
    assert not stopper.is_alive()
    idle.close()
    busy.close()

    with ServerThread(Config(db=db)) as again:
        listing = httpx.get(f"{again.http_url}/api/v1/messages").json()
    assert [m["Subject"] for m in listing["messages"]] == ["in flight"]
