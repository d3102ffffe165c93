"""Bad SMTP input gets a clear error, stores nothing it should not, and never stops the listener."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.smtp.server import _DATA_READ_LIMIT
from tests.conftest import send


class Conversation:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        lines = []
        while True:
            line = self.reader.readline()
            if not line:
                return b"".join(lines) or b"<closed>"
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    def say(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def stored(api: httpx.Client) -> int:
    return api.get("/api/v1/messages").json()["total"]


def assert_still_serving(server: ServerThread, api: httpx.Client) -> None:
    before = stored(api)
    send(server, subject="still serving")
    assert stored(api) == before + 1


def test_unknown_and_malformed_commands(server: ServerThread, api: httpx.Client) -> None:
    c = Conversation(server.smtp_port)
    assert c.say(b"BOGUS command\r\n").startswith(b"500")
    assert c.say(b"\r\n").startswith(b"500")
    assert c.say(b"\xff\xfe\r\n").startswith(b"500")
    assert c.say(b"EHLO\r\n").startswith(b"501")
    assert c.say(b"EHLO ok.test\r\n").startswith(b"250")
    assert c.say(b"MAIL FROM:nonsense<<\r\n").startswith(b"501")
    assert c.say(b"RCPT TO:<a@example.com>\r\n").startswith(b"503")
    assert c.say(b"DATA\r\n").startswith(b"503")
    assert c.say(b"MAIL FROM:<a@example.com> SIZE=abc\r\n")[:1] == b"5"
    assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"250")
    assert c.say(b"RCPT TO:not an address\r\n").startswith(b"553")
    assert c.say(b"RCPT TO:<a@example.com> BOGUS=1\r\n").startswith(b"555")
    c.close()
    assert stored(api) == 0
    assert_still_serving(server, api)


def test_overlong_command_line_gets_500_and_session_goes_on(server: ServerThread, api: httpx.Client) -> None:
    c = Conversation(server.smtp_port)
    assert c.say(b"EHLO ok.test\r\n").startswith(b"250")
    assert c.say(b"MAIL FROM:<" + b"a" * 5000 + b"@example.com>\r\n").startswith(b"500")
    assert c.say(b"NOOP\r\n").startswith(b"250")
    assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"250")
    assert c.say(b"RCPT TO:<b@example.com>\r\n").startswith(b"250")
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(b"Subject: after long line\r\n\r\nok\r\n.\r\n").startswith(b"250")
    c.close()
    assert stored(api) == 1


@pytest.mark.parametrize("server_config", [Config(max_message_size=10_000)])
def test_oversize_message_is_refused_with_552_and_not_stored(server: ServerThread, api: httpx.Client) -> None:
    c = Conversation(server.smtp_port)
    ehlo = c.say(b"EHLO ok.test\r\n")
    assert b"SIZE 10000" in ehlo
    assert c.say(b"MAIL FROM:<a@example.com> SIZE=20000\r\n").startswith(b"552")
    assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"250")
    assert c.say(b"RCPT TO:<b@example.com>\r\n").startswith(b"250")
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 30 + b".\r\n"
                 ).startswith(b"552")
    # the session goes on after the refusal
    assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"250")
    assert c.say(b"RCPT TO:<b@example.com>\r\n").startswith(b"250")
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(b"Subject: small\r\n\r\nfits\r\n.\r\n").startswith(b"250")
    c.close()
    listing = api.get("/api/v1/messages").json()
    assert [m["Subject"] for m in listing["messages"]] == ["small"]


@pytest.mark.parametrize("server_config", [Config(max_recipients=3)])
def test_too_many_recipients_get_452(server: ServerThread, api: httpx.Client) -> None:
    c = Conversation(server.smtp_port)
    c.say(b"EHLO ok.test\r\n")
    c.say(b"MAIL FROM:<a@example.com>\r\n")
    replies = [c.say(f"RCPT TO:<r{i}@example.com>\r\n".encode())[:3] for i in range(5)]
    assert replies == [b"250", b"250", b"250", b"452", b"452"]
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(b"Subject: three\r\n\r\nx\r\n.\r\n").startswith(b"250")
    c.close()
    message = api.get("/api/v1/message/latest").json()
    assert message["Envelope"]["RcptTo"] == ["r0@example.com", "r1@example.com", "r2@example.com"]


def test_disconnect_during_data_stores_nothing(server: ServerThread, api: httpx.Client) -> None:
    c = Conversation(server.smtp_port)
    c.say(b"EHLO ok.test\r\n")
    c.say(b"MAIL FROM:<a@example.com>\r\n")
    c.say(b"RCPT TO:<b@example.com>\r\n")
    assert c.say(b"DATA\r\n").startswith(b"354")
    c.sock.sendall(b"Subject: cut off\r\n\r\nhalf a mess")
    c.close()
    time.sleep(0.2)
    assert stored(api) == 0
    assert_still_serving(server, api)


@pytest.mark.parametrize(("raw", "term"), [
    (b"Subject: nul\x00byte\r\nFrom: a@example.com\r\n\r\nbody with \x00 NUL zebra\r\n", "zebra"),
    (b"Subject: \xff\xfe latin junk \xe9\r\nFrom: =?bogus?Q?x?= <a@example.com>\r\n\r\n\xff\xff giraffe\r\n", "junk"),
    (b"Content-Type: multipart/mixed; boundary=\"never\"\r\nSubject: broken mime\r\n\r\n--wrong\r\nno end\r\n",
     "broken"),
    (b"Content-Type: text/plain; charset=x-unknown-charset\r\nContent-Transfer-Encoding: base64\r\n"
     b"Subject: bad base64\r\n\r\n!!!not base64***\r\n", "base64"),
    (b"no headers at all, just text about an okapi\r\n", "okapi"),
], ids=["nul", "8bit-junk", "no-end-boundary", "bad-base64", "no-headers"])
def test_broken_mime_is_stored_as_received_listed_and_searchable(server: ServerThread, api: httpx.Client,
                                                                 raw: bytes, term: str) -> None:
    send(server, raw=raw)
    listing = api.get("/api/v1/messages").json()
    assert listing["total"] == 1
    id_ = listing["messages"][0]["ID"]
    assert api.get(f"/api/v1/message/{id_}/raw").content == raw
    assert api.get(f"/api/v1/message/{id_}").status_code == 200
    assert api.get(f"/api/v1/message/{id_}/headers").status_code == 200
    found = api.get("/api/v1/search", params={"query": term}).json()
    assert [m["ID"] for m in found["messages"]] == [id_]
    assert_still_serving(server, api)


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r", b"\n.\r",
                                      b"\r.\n", b"\r.\r"],
                         ids=["LF.LF", "LF.CRLF", "CR.CRLF", "CRLF.LF", "CRLF.CR", "LF.CR", "CR.LF", "CR.CR"])
def test_smtp_smuggling_patterns_do_not_end_data(server: ServerThread, api: httpx.Client, fake_end: bytes) -> None:
    """Only CRLF "." CRLF ends a message (RFC 5321 4.1.1.4); the other end-of-data lookalikes used to smuggle
    a second message past a filter stay inside the first one, byte for byte."""
    c = Conversation(server.smtp_port)
    c.say(b"EHLO ok.test\r\n")
    c.say(b"MAIL FROM:<a@example.com>\r\n")
    c.say(b"RCPT TO:<b@example.com>\r\n")
    assert c.say(b"DATA\r\n").startswith(b"354")
    smuggled = (b"Subject: outer\r\n\r\nouter body" + fake_end + b"MAIL FROM:<evil@example.com>\r\n"
                b"RCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n")
    assert c.say(smuggled + b".\r\n").startswith(b"250")
    assert c.say(b"NOOP\r\n").startswith(b"250")  # and the session is still in step with the client
    c.close()
    listing = api.get("/api/v1/messages").json()
    assert listing["total"] == 1
    # A "." that starts a line is transparency (RFC 5321 4.5.2) and is removed, as for any message: after CRLF,
    # and (as Postfix reads a broken client's lines) after a bare LF; a bare CR is no line end. The line endings
    # stay as sent.
    stored_bytes = api.get(f"/api/v1/message/{listing['messages'][0]['ID']}/raw").content
    assert stored_bytes == smuggled.replace(b"\n.", b"\n")
    assert stored_bytes.count(b".") == smuggled.count(b".") - (b"\n." in fake_end)  # the fake end's dot after LF


def test_the_end_of_data_is_found_across_a_read_that_splits_it(server: ServerThread, api: httpx.Client) -> None:
    """A message of just over the DATA read buffer, whose last bytes before a pause are CRLF ".": the buffer
    overruns there and is handed on without its last two bytes, so the final CRLF "." CRLF arrives split as
    CR | LF "." CRLF. It must still end the message (it used to be missed, and the session hung in DATA)."""
    c = Conversation(server.smtp_port)
    c.sock.settimeout(5)
    c.say(b"EHLO ok.test\r\n")
    c.say(b"MAIL FROM:<a@example.com>\r\n")
    c.say(b"RCPT TO:<b@example.com>\r\n")
    assert c.say(b"DATA\r\n").startswith(b"354")
    head = b"Subject: exactly past the read buffer\r\n\r\n"
    total = _DATA_READ_LIMIT + 3  # asyncio overruns once the buffer is longer than limit + len(".\r\n") - 1
    filler = ((b"x" * 76 + b"\r\n") * (total // 78 + 1))[:total - len(head) - 3]
    c.sock.sendall(head + filler + b"\r\n.")
    time.sleep(0.3)
    assert c.say(b"\r\n").startswith(b"250")
    assert c.say(b"NOOP\r\n").startswith(b"250")
    c.close()
    listing = api.get("/api/v1/messages").json()
    assert listing["total"] == 1
    assert api.get(f"/api/v1/message/{listing['messages'][0]['ID']}/raw").content == head + filler + b"\r\n"


@pytest.mark.parametrize("address", [b"<a\x0bb@example.com>", b"<a\x00b@example.com>", b"<a b@example.com>",
                                     b"<a\tb@example.com>", b"<>"])
def test_addresses_that_could_inject_headers_are_refused(server: ServerThread, api: httpx.Client,
                                                         address: bytes) -> None:
    c = Conversation(server.smtp_port)
    c.say(b"EHLO ok.test\r\n")
    assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"250")
    assert c.say(b"RCPT TO:" + address + b"\r\n")[:1] == b"5"
    c.close()
    assert stored(api) == 0
    assert_still_serving(server, api)
