"""The sendmail drop-in: flags, header handling, and real runs (a subprocess fed on stdin) against mailnest."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mailnest.config import Config
from mailnest.importer import split_header
from mailnest.runtime import ServerThread
from mailnest.sendmail import (
    EX_NOUSER,
    EX_OK,
    EX_UNAVAILABLE,
    EX_USAGE,
    Options,
    UsageError,
    parse_args,
    prepare,
    read_message,
    sendmail_main,
)

MESSAGE = (b"From: App <app@example.com>\nTo: Bob <bob@example.com>, carol@example.com\n"
           b"Cc: dan@example.com\nBcc: secret@example.com,\n  hidden@example.com\nSubject: hello\n"
           b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <1@example.com>\n\n"
           b"Body line\n.leading dot\n")


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread(Config(http=None)) as thread:
        yield thread


def run_sendmail(server: ServerThread | None, args: list[str], stdin: bytes,
                 port: int | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env["MAILNEST_SMTP"] = f"127.0.0.1:{port if port is not None else server.smtp_port}"  # type: ignore[union-attr]
    return subprocess.run([sys.executable, "-m", "mailnest.sendmail", *args], input=stdin, env=env,
                          capture_output=True, timeout=30, check=False)


# -- pure parts ------------------------------------------------------------------------------------------


def test_parse_args_accepts_what_callers_pass() -> None:
    options = parse_args(["-t", "-i", "-f", "bounce@example.com", "-FApp Name", "-odi", "-oem", "-bm",
                          "-N", "never", "-R", "hdrs", "-V", "envid", "-B", "8BITMIME", "-v", "x@example.com"])
    assert options == Options(recipients=["x@example.com"], extract_recipients=True, sender="bounce@example.com",
                              full_name="App Name", ignore_dots=True, verbose=True)
    assert parse_args(["-ti", "-fme@example.com"]).sender == "me@example.com"
    assert parse_args(["-oi", "a@example.com"]).ignore_dots
    assert parse_args(["-f", "<>", "a@x"]).sender == ""
    assert parse_args(["-r", "r@example.com"]).sender == "r@example.com"
    assert parse_args(["--smtp", "127.0.0.1:2525"]).smtp == "127.0.0.1:2525"
    assert parse_args(["-S", "h:1"]).smtp == "h:1"
    assert parse_args(["--", "-weird@example.com"]).recipients == ["-weird@example.com"]


@pytest.mark.parametrize("argv", [["-bs"], ["-bp"], ["-Q"], ["--frob"], ["-f"], ["-ti", "-F"]])
def test_parse_args_refuses(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_args(argv)


def test_read_message_dot_handling() -> None:
    data = b"Subject: x\n\nline\n.\nafter the dot\n"
    assert read_message(io.BytesIO(data), ignore_dots=False) == b"Subject: x\n\nline\n"
    assert read_message(io.BytesIO(data), ignore_dots=True) == data
    assert read_message(io.BytesIO(b"a\r\n.\r\nb"), ignore_dots=False) == b"a\r\n"
    assert read_message(io.BytesIO(b"a\n..\nb\n"), ignore_dots=False) == b"a\n..\nb\n"


def test_split_header_keeps_continuations() -> None:
    fields, body = split_header(b"A: 1\nB: 2\n  more\n\nbody\n")
    assert fields == [b"A: 1\n", b"B: 2\n  more\n"]
    assert body == b"\nbody\n"


def test_prepare_with_t_extracts_recipients_and_strips_bcc() -> None:
    message, sender, recipients = prepare(MESSAGE, Options(extract_recipients=True), hostname="h", user="u")
    assert recipients == ["bob@example.com", "carol@example.com", "dan@example.com", "secret@example.com",
                          "hidden@example.com"]
    assert sender == "app@example.com"
    assert b"Bcc" not in message and b"hidden" not in message
    assert message == MESSAGE.replace(b"Bcc: secret@example.com,\n  hidden@example.com\n", b"").replace(
        b"\n", b"\r\n")


def test_prepare_adds_missing_from_date_and_message_id() -> None:
    message, sender, recipients = prepare(b"Subject: bare\n\nhi\n",
                                          Options(recipients=["x@example.com"], sender="app@example.com",
                                                  full_name="The App"),
                                          hostname="box", user="www")
    assert sender == "app@example.com" and recipients == ["x@example.com"]
    assert b"\r\nFrom: The App <app@example.com>\r\n" in message
    assert b"\r\nDate: " in message
    assert b"\r\nMessage-ID: <" in message and b"@box>\r\n" in message
    assert message.endswith(b"\r\n\r\nhi\r\n")
    _, default_sender, _ = prepare(b"Subject: x\n\n", Options(recipients=["x@example.com"]), hostname="box",
                                   user="www")
    assert default_sender == "www@box"


def test_prepare_resent_headers_win_with_t() -> None:
    data = b"From: a@example.com\nTo: old@example.com\nResent-To: new@example.com\n\nx\n"
    assert prepare(data, Options(extract_recipients=True), hostname="h", user="u")[2] == ["new@example.com"]


def test_no_recipients_is_a_usage_error() -> None:
    err = io.StringIO()
    assert sendmail_main(["-t"], stdin=io.BytesIO(b"From: a@example.com\n\nx\n"), stderr=err) == EX_USAGE
    assert "no recipient" in err.getvalue()


# -- real runs against mailnest ------------------------------------------------------------------------


def test_sendmail_t_delivers_and_bcc_is_envelope_only(server: ServerThread) -> None:
    result = run_sendmail(server, ["-t", "-i", "-odi", "-oem"], MESSAGE + b".\nnot the end\n")
    assert result.returncode == EX_OK, result.stderr
    page = server.call(server.store.list())
    assert page.total == 1
    summary = page.messages[0]
    message = server.call(server.store.get(summary.id))
    assert set(message.envelope.rcpt_tos) == {"bob@example.com", "carol@example.com", "dan@example.com",
                                              "secret@example.com", "hidden@example.com"}
    assert {a.address for a in summary.bcc} == {"secret@example.com", "hidden@example.com"}
    raw = server.call(server.store.raw(summary.id))
    assert b"Bcc:" not in raw
    assert raw.endswith(b"Body line\r\n.leading dot\r\n.\r\nnot the end\r\n")  # -i: a lone dot is content
    assert server.call(server.store.count(mailbox="hidden@example.com")) == 1


def test_sendmail_without_i_stops_at_a_lone_dot(server: ServerThread) -> None:
    result = run_sendmail(server, ["-f", "bounce@example.com", "rcpt@example.com"],
                          b"From: a@example.com\nSubject: dot\n\nkept\n.\nignored\n")
    assert result.returncode == EX_OK, result.stderr
    summary = server.call(server.store.latest())
    raw = server.call(server.store.raw(summary.id))
    assert raw.endswith(b"\r\n\r\nkept\r\n") and b"ignored" not in raw
    message = server.call(server.store.get(summary.id))
    assert message.envelope.mail_from == "bounce@example.com"
    assert message.envelope.rcpt_tos == ("rcpt@example.com",)


def test_sendmail_unicode_addresses(server: ServerThread) -> None:
    data = "From: jürgen@example.com\nTo: zoë@example.com\nSubject: Grüße\n\nhallo\n".encode()
    result = run_sendmail(server, ["-t"], data)
    assert result.returncode == EX_OK, result.stderr
    message = server.call(server.store.get(server.call(server.store.latest()).id))
    assert message.envelope.rcpt_tos == ("zoë@example.com",)
    assert message.envelope.mail_from == "jürgen@example.com"
    assert "Subject: Grüße\r\n".encode() in server.call(server.store.raw(message.id))


def test_sendmail_exit_codes(server: ServerThread) -> None:
    with ServerThread(Config(http=None)) as gone:
        closed_port = gone.smtp_port
    unreachable = run_sendmail(None, ["x@example.com"], b"Subject: x\n\nx\n", port=closed_port)
    assert unreachable.returncode == EX_UNAVAILABLE
    assert b"Is `mailnest serve` running?" in unreachable.stderr
    assert run_sendmail(server, ["-bs"], b"").returncode == EX_USAGE
    assert run_sendmail(server, ["-t"], b"Subject: nobody\n\nx\n").returncode == EX_USAGE


def test_sendmail_refused_recipient_exit_code(server: ServerThread) -> None:
    limited = ServerThread(Config(http=None, max_recipients=1)).start()
    try:
        err = io.StringIO()
        code = sendmail_main([f"--smtp=127.0.0.1:{limited.smtp_port}", "a@example.com", "b@example.com"],
                             stdin=io.BytesIO(b"Subject: two\n\nx\n"), stderr=err)
        assert code == EX_NOUSER, err.getvalue()
        assert "b@example.com: refused: 452" in err.getvalue()
        assert limited.call(limited.store.count(mailbox="a@example.com")) == 1
    finally:
        limited.stop()


def test_sendmail_null_sender(server: ServerThread) -> None:
    """`-f '<>'` (bounces, delivery reports) is delivered with the empty envelope sender, as either spelling."""
    for args in (["-f", "<>", "bob@example.com"], ["-f<>", "bob@example.com"]):
        result = run_sendmail(server, args, MESSAGE)
        assert result.returncode == EX_OK, result.stderr
        message = server.call(server.store.get(server.call(server.store.latest()).id))
        assert message.envelope.mail_from == ""
        assert message.envelope.rcpt_tos == ("bob@example.com",)
