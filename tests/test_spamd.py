"""The spamd client (`mailnest.spamd`) against a real SpamAssassin `spamd` on loopback, compared with
SpamAssassin's own client `spamc`; and what it answers when spamd is missing, silent, confused or the message is
too big. One spamd serves the whole module (start-up takes a few seconds: it compiles its rule set)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mailnest.spamd import SpamdAddress, SpamdAddressError, SpamdClient, parse_report

from .conftest import require_tool

CORPUS = pathlib.Path(__file__).parent / "corpus"
GTUBE = (b"From: Sender <sender@example.com>\r\nTo: rcpt@example.org\r\nSubject: GTUBE\r\n"
         b"Date: Tue, 05 Mar 2024 10:11:12 +0100\r\nMessage-ID: <gtube-1@example.com>\r\n\r\n"
         b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n")
START_DEADLINE = 180.0  # seconds; spamd took about 2 s here, much more on a loaded CI machine


def spamd_path() -> str:
    """spamd lives in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("spamd") or next((p for p in ("/usr/sbin/spamd",) if os.access(p, os.X_OK)), None)
    return found or require_tool("spamd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real spamd on 127.0.0.1: local rules only (-L, no DNS or network tests), no user configs (-x), one
    child; run as `nobody` when the tests run as root (spamd will not keep root). Yields HOST:PORT."""
    binary = spamd_path()
    home = tmp_path_factory.mktemp("spamd")
    home.chmod(0o777)
    log_path = home / "spamd.log"
    for _attempt in range(3):  # the free port can be taken between the probe and spamd's bind
        port = free_port()
        command = [binary, "--syslog=stderr", "-L", "-x", f"--listen=127.0.0.1:{port}", "--max-children=1",
                   "--min-children=1", f"--helper-home-dir={home}"]
        if os.geteuid() == 0:
            command.append("--username=nobody")
        started = time.monotonic()
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=home)
        while time.monotonic() - started < START_DEADLINE and process.poll() is None:
            if b"server started" in log_path.read_bytes():
                break
            time.sleep(0.1)
        if process.poll() is None and b"server started" in log_path.read_bytes():
            break
        process.kill()
        process.wait(timeout=30)
    else:
        pytest.fail(f"spamd did not start: {log_path.read_text(errors='replace')[-2000:]}")
    elapsed = time.monotonic() - started
    sys.stderr.write(f"\nspamd started in {elapsed:.1f} s\n")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def spamc_report(address: str, message: bytes) -> str:
    """SpamAssassin's own client: `spamc -R` prints the score line and the same report."""
    spamc = require_tool("spamc")
    host, port = address.rsplit(":", 1)
    done = subprocess.run([spamc, "-d", host, "-p", port, "-R", "-x"], input=message, capture_output=True,
                          timeout=120)
    return done.stdout.decode("utf-8", "replace")


def test_gtube_scores_as_spam(spamd: str) -> None:
    result = asyncio.run(SpamdClient(spamd, timeout=60).check(GTUBE))
    assert set(result) == {"Error", "IsSpam", "Rules", "Score"}  # Mailpit's SpamAssassinResponse
    assert result["Error"] == ""
    assert result["IsSpam"] is True
    assert result["Score"] >= 1000
    rules = {rule["Name"]: rule for rule in result["Rules"]}
    assert rules["GTUBE"]["Score"] == 1000
    assert rules["GTUBE"]["Description"] == "BODY: Generic Test for Unsolicited Bulk Email"
    assert all(set(rule) == {"Name", "Score", "Description"} for rule in result["Rules"])
    assert result["Score"] == pytest.approx(sum(rule["Score"] for rule in result["Rules"]), abs=0.1 * len(rules))


def test_a_plain_message_is_not_spam(spamd: str) -> None:
    raw = (CORPUS / "html-only.eml").read_bytes()
    result = asyncio.run(SpamdClient(spamd, timeout=60).check(raw))
    assert result["Error"] == ""
    assert result["IsSpam"] is False
    assert result["Score"] < 5
    assert "GTUBE" not in {rule["Name"] for rule in result["Rules"]}


@pytest.mark.parametrize("name", ["gtube", "html-only.eml", "alternative-attachments.eml"])
def test_the_same_rules_and_score_as_spamc(spamd: str, name: str) -> None:
    raw = GTUBE if name == "gtube" else (CORPUS / name).read_bytes()
    result = asyncio.run(SpamdClient(spamd, timeout=60).check(raw))
    report = spamc_report(spamd, raw)
    score_line, _, body = report.partition("\n")
    assert float(score_line.split("/")[0]) == pytest.approx(result["Score"], abs=0.1)
    theirs = [(rule["Name"], rule["Score"]) for rule in parse_report(body)]
    assert sorted(theirs) == sorted((rule["Name"], rule["Score"]) for rule in result["Rules"])
    assert theirs  # the report's table was read at all


def test_ping(spamd: str) -> None:
    assert asyncio.run(SpamdClient(spamd, timeout=60).ping()) is True


def test_unreachable_spamd_is_an_error_not_an_exception() -> None:
    port = free_port()  # bound then closed: nothing listens there
    started = time.monotonic()
    result = asyncio.run(SpamdClient(f"127.0.0.1:{port}", timeout=30).check(GTUBE))
    assert time.monotonic() - started < 25
    assert result == {"Error": result["Error"], "IsSpam": False, "Rules": [], "Score": 0.0}
    assert result["Error"].startswith(f"SpamAssassin (spamd) is not reachable at 127.0.0.1:{port}")
    assert asyncio.run(SpamdClient(f"127.0.0.1:{port}", timeout=30).ping()) is False


def test_unix_socket_that_does_not_exist(tmp_path: pathlib.Path) -> None:
    result = asyncio.run(SpamdClient(f"unix:{tmp_path}/none.sock", timeout=30).check(GTUBE))
    assert result["Error"].startswith(f"SpamAssassin (spamd) is not reachable at unix:{tmp_path}/none.sock")


async def _serve(handler: object) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    return server, server.sockets[0].getsockname()[1]


def test_a_silent_server_times_out() -> None:
    async def scenario() -> tuple[dict[str, object], float, int]:
        release = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            writer.close()

        server, port = await _serve(silent)
        started = time.monotonic()
        result = await SpamdClient(f"127.0.0.1:{port}", timeout=0.5).check(GTUBE)
        elapsed = time.monotonic() - started
        release.set()
        server.close()
        return result, elapsed, port

    result, elapsed, port = asyncio.run(scenario())
    assert result["Error"] == f"SpamAssassin (spamd) at 127.0.0.1:{port} did not answer within 0.5 s"
    assert 0.4 < elapsed < 20


@pytest.mark.parametrize(("answer", "error"), [
    (b"HTTP/1.1 200 OK\r\n\r\nhello", "not a spamd answer"),
    (b"SPAMD/1.0 76 Bad header line: REPORT\r\n", "spamd refused the check: 76 Bad header line: REPORT"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "spamd's answer has no Spam header"),
    (b"", "spamd closed the connection without an answer"),
])
def test_a_confused_server_is_an_error(answer: bytes, error: str) -> None:
    async def scenario() -> dict[str, object]:
        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # the whole request, up to the client's end of writing
            writer.write(answer)
            await writer.drain()
            writer.close()

        server, port = await _serve(reply)
        try:
            return await SpamdClient(f"127.0.0.1:{port}", timeout=30).check(GTUBE)
        finally:
            server.close()

    result = asyncio.run(scenario())
    assert str(result["Error"]).startswith("SpamAssassin (spamd) at 127.0.0.1:") and error in str(result["Error"])
    assert result["IsSpam"] is False and result["Rules"] == []


def test_a_message_over_the_size_cap_is_not_sent() -> None:
    port = free_port()  # nothing listens: the size check must come first
    result = asyncio.run(SpamdClient(f"127.0.0.1:{port}", max_size=100).check(GTUBE + b"x" * 100))
    assert result["Error"] == (f"message of {len(GTUBE) + 100} bytes is over the SpamAssassin check's limit of "
                               "100 bytes; it was not checked")


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:783", SpamdAddress(host="127.0.0.1", port=783)),
    ("spamd.internal:10783", SpamdAddress(host="spamd.internal", port=10783)),
    ("[::1]:783", SpamdAddress(host="::1", port=783)),
    ("unix:/run/spamd.sock", SpamdAddress(path="/run/spamd.sock")),
])
def test_address_parsing(text: str, expected: SpamdAddress) -> None:
    assert SpamdAddress.parse(text) == expected
    assert str(SpamdAddress.parse(text)) == text


@pytest.mark.parametrize("text", ["", "localhost", "localhost:", ":783", "host:0", "host:65536", "host:x",
                                  "unix:"])
def test_bad_addresses_say_what_is_expected(text: str) -> None:
    with pytest.raises(SpamdAddressError) as caught:
        SpamdAddress.parse(text)
    assert "--spamassassin" in str(caught.value)
    assert "HOST:PORT" in str(caught.value) or "socket path" in str(caught.value)


def test_report_continuation_lines_are_joined() -> None:
    report = ("Content analysis details:   (6.1 points, 5.0 required)\n\n"
              " pts rule name              description\n"
              "---- ---------------------- --------------------------------------------------\n"
              " 3.1 SOME_RULE              A long description that spamd wraps onto\n"
              "                            a second line\n"
              " 2.3 ROUNDING               2.3 stays 2.3, -0.05 goes down to -0.1\n"
              "-0.05 TINY                  x\n"
              "-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n"
              "1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email\n\n")
    assert parse_report(report) == [
        {"Name": "SOME_RULE", "Score": 3.1, "Description": "A long description that spamd wraps onto a second line"},
        {"Name": "ROUNDING", "Score": 2.3, "Description": "2.3 stays 2.3, -0.05 goes down to -0.1"},
        {"Name": "TINY", "Score": -0.1, "Description": "x"},
        {"Name": "NO_RELAYS", "Score": 0.0, "Description": "Informational: message was not relayed via SMTP"},
        {"Name": "GTUBE", "Score": 1000.0, "Description": "BODY: Generic Test for Unsolicited Bulk Email"},
    ]

