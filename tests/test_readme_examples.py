"""The README's examples, run as printed against `mailnest serve` (issue 16: a new user follows the README
literally). The one change: the README names the default ports (1025, 8025), and the server here listens on
free ones, so those numbers are replaced (and `MAILNEST_SMTP` says where SMTP is for the lines that name no port,
as a user's shell would). Commands run from the repository root, where `.venv/bin/mailnest` is, with the
virtualenv's bin first on PATH for the lines that say plain `mailnest`.

The recipes for Django and Flask are run by tests/recipes/test_readme_*.py, the team instance by
tests/cluster/test_readme_team.py."""

from __future__ import annotations

import json
import mailbox
import os
import re
import shlex
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_tool
from tests.recipes.readme_blocks import README, between, files, run, write
from tests.test_cli import serving, stop

ROOT = README.parent
BIN = Path(sys.executable).parent


def blocks(part: str, language: str = "sh") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", part, re.S)


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, int]]:
    with serving(tmp_path, "--imap", "off", "--pop3", "off") as (proc, ports):
        yield ports
        stop(proc)


def ported(text: str, ports: dict[str, int]) -> str:
    smtp, http = ports["smtp"], ports["http"]
    return (text.replace("127.0.0.1:1025", f"127.0.0.1:{smtp}").replace('"127.0.0.1", 1025', f'"127.0.0.1", {smtp}')
            .replace("127.0.0.1:8025", f"127.0.0.1:{http}"))


def shell(line: str, ports: dict[str, int], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILNEST_")}
    environment.update(PATH=f"{BIN}{os.pathsep}{environment.get('PATH', '')}",
                       MAILNEST_SMTP=f"127.0.0.1:{ports['smtp']}", **env)
    result = subprocess.run(["bash", "-c", ported(line, ports)], cwd=cwd, capture_output=True, text=True,
                            timeout=60, env=environment)
    assert result.returncode == 0, (line, result.stdout, result.stderr)
    return result


def api(ports: dict[str, int], path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{ports['http']}{path}", timeout=10)


def test_quick_start_send_it_a_message_and_read_it_back(server: dict[str, int]) -> None:
    require_tool("swaks")
    quick = between("## Quick start", "## Commands")
    send_block, read_block = blocks(quick)[1:3]
    sent = commands(send_block)
    assert len(sent) == 3  # swaks, mailnest send, smtplib
    for line in sent:
        shell(line, server)
    listing = json.loads(shell(commands(read_block)[0], server).stdout)
    assert [m["Subject"] for m in listing["messages"]] == ["hello"] * 3
    latest = json.loads(shell(commands(read_block)[1], server).stdout)
    assert latest["Subject"] == "hello" and latest["Envelope"]["RcptTo"] == ["dev@example.com"]
    raw = shell(commands(read_block)[2], server).stdout
    assert raw.endswith("It works.\n")  # the source of the newest (read as text here: CRLF shows as LF)
    waited = json.loads(shell(commands(read_block)[3], server).stdout)
    assert waited["messages"][0]["Subject"] == "hello"


def test_the_search_example(server: dict[str, int]) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "billing@shop.example", "dev@example.com", "Invoice"
    message["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    message.set_content("Attached.")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf")
    with smtplib.SMTP("127.0.0.1", server["smtp"]) as client:
        client.send_message(message)
        client.sendmail("news@shop.example", ["dev@example.com"], b"Subject: no attachment\r\n\r\nx\r\n")
    [line] = commands(blocks(between("**Errors.** A query that cannot", "## Testing with mailnest"))[0])
    found = json.loads(shell(line, server).stdout)
    assert [m["Subject"] for m in found["messages"]] == ["Invoice"]


def test_the_sendmail_examples(server: dict[str, int]) -> None:
    block = blocks(between("### `mailnest sendmail` and `mailnest-sendmail`", "## What the SMTP side does"))[0]
    for line in commands(block):
        shell(line, server)
    listing = api(server, "/api/v1/messages").json()
    assert [m["Subject"] for m in listing["messages"]] == ["hi", "hi"]
    boxes = api(server, "/api/v1/mailboxes").json()
    assert [{k: b[k] for k in ("Address", "Total", "Unread")} for b in boxes] == [
        {"Address": "dev@example.com", "Total": 2, "Unread": 2}]
    assert boxes[0]["Latest"] == listing["messages"][0]["Created"]


def test_the_ingest_dump_and_readyz_examples(server: dict[str, int], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "old-mail").mkdir()
    (tmp_path / "old-mail" / "one.eml").write_bytes(b"From: a@example.com\nTo: dev@example.com\nSubject: old 1\n\nx\n")
    box = mailbox.mbox(tmp_path / "archive.mbox")
    box.add(b"From: a@example.com\nTo: dev@example.com\nSubject: old 2\n\nx\n")
    box.close()
    maildir = mailbox.Maildir(home / "Maildir")
    maildir.add(b"From: a@example.com\nTo: dev@example.com\nSubject: kept 1\n\nx\n")
    over_smtp, into_db = commands(blocks(between("### `mailnest ingest`", "### `mailnest dump`"))[0])
    shell(over_smtp, server, cwd=tmp_path)
    assert {m["Subject"] for m in api(server, "/api/v1/messages").json()["messages"]} == {"old 1", "old 2"}
    shell(into_db, server, cwd=tmp_path, HOME=str(home))
    assert (tmp_path / "mail.db").exists()

    from_db, over_http = commands(blocks(between("### `mailnest dump`", "### `mailnest readyz`"))[0])
    shell(from_db, server, cwd=tmp_path)
    assert [path.read_bytes() for path in (tmp_path / "saved-mail").iterdir()] == [
        b"From: a@example.com\nTo: dev@example.com\nSubject: kept 1\n\nx\n"]
    shell(over_http, server, cwd=tmp_path)
    assert len(list((tmp_path / "saved-mail").iterdir())) == 3  # the one from the file, and the server's two

    [probe] = commands(blocks(between("### `mailnest readyz`", "### `mailnest mcp`"))[0])
    shell(probe, server)


def test_the_python_client_example(server: dict[str, int]) -> None:
    with smtplib.SMTP("127.0.0.1", server["smtp"]) as client:
        client.sendmail("hello@app.example", ["dev@example.com"],
                        b"Subject: welcome\r\n\r\nConfirm: https://app.example/confirm/Zx81 with code 482913\r\n")
    [block] = blocks(between("### The Python client", "| method | does |"), "python")
    result = subprocess.run([sys.executable, "-c", ported(block, server)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "welcome https://app.example/confirm/Zx81 ['482913']"


def test_the_mailbox_on_demand_examples(server: dict[str, int]) -> None:
    require_tool("curl")
    [block] = blocks(between("### Mailboxes on demand", "### MailHog API"))
    [line] = commands(block)
    made = json.loads(shell(line, server).stdout)
    assert made["Domain"].startswith("signup-") and made["Domain"].endswith(".mailnest.test")
    assert made["MaxAge"] == 3600 and made["Query"] == f"mailbox:@{made['Domain']}"
    [code] = blocks(between("A test run of its own on a shared server:", "`Mail` has the parsed fields"), "python")
    result = subprocess.run([sys.executable, "-c", ported(code, server)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "welcome True 1"


def test_the_embedding_example() -> None:
    [block] = blocks(between("### Embedding a server", "### Framework settings"), "python")
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_pytest_plugin_examples(tmp_path: Path) -> None:
    plugin = between("### The pytest plugin", "### The Python client")
    signup, conftest = blocks(plugin, "python")
    write(tmp_path, {"test_signup.py": signup, "conftest.py": conftest})
    result = run(tmp_path, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:django", "-v")
    assert result.returncode == 0 and "test_signup_link PASSED" in result.stdout, result.stdout + result.stderr


def test_the_custom_handler_example(tmp_path: Path) -> None:
    [block] = [b for b in blocks(between("### Custom handlers", "### Relay"), "python") if "myhooks.py" in b]
    hooks = files(block) or {"myhooks.py": block}
    write(tmp_path, hooks)
    with serving(tmp_path, "--handler", "myhooks:RejectBlocked", "--imap", "off", "--pop3", "off",
                 env={"PYTHONPATH": str(tmp_path)}) as (proc, ports):
        with smtplib.SMTP("127.0.0.1", ports["smtp"]) as client:
            refused = client.sendmail("a@example.com", ["x@blocked.example", "ok@example.com"],
                                      b"Subject: hooks\r\n\r\nx\r\n")
        assert refused == {"x@blocked.example": (550, b"5.1.1 no such user")}
        assert api(ports, "/api/v1/messages").json()["messages"][0]["To"] == []  # no To header; envelope below
        assert api(ports, "/api/v1/message/latest").json()["Envelope"]["RcptTo"] == ["ok@example.com"]
        stop(proc)


def serve_lines() -> list[str]:
    """Every `mailnest serve` command line of the README's sh blocks (continuations joined), except the team
    instance's, which tests/cluster/test_readme_team.py runs with its PostgreSQL."""
    text = README.read_text(encoding="utf-8")
    team = text.index("## Running a team instance")
    text = text[:team] + text[text.index("\n## ", team + 1):]
    found = []
    for block in blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(("mailnest serve ", ".venv/bin/mailnest serve ")):
                found.append(line)
    return found


def users_file(tmp_path: Path) -> None:
    """users.txt as the README prints it, and a ui-users.txt in the same form, where a line names them."""
    [block] = [b for b in blocks(README.read_text(encoding="utf-8"), "text") if b.startswith("# users.txt")]
    (tmp_path / "users.txt").write_text(block)
    (tmp_path / "ui-users.txt").write_text("admin:secret\n")


def test_the_readme_shows_its_serve_lines() -> None:
    assert len(serve_lines()) >= 6  # ports file, TLS twice, relay twice, chaos


@pytest.mark.parametrize("line", serve_lines())
def test_every_serve_line_starts(line: str, tmp_path: Path) -> None:
    """Each `mailnest serve` line of the README starts as printed, with only its listeners moved to free ports."""
    users_file(tmp_path)
    words = shlex.split(line.split(" #", 1)[0].rstrip().removesuffix("&"))
    if "--ports-file" in words:  # the test's own ports file is the one it waits for
        at = words.index("--ports-file")
        del words[at:at + 2]
    environment = {"PYTHONPATH": str(tmp_path)}
    previous = os.getcwd()
    os.chdir(tmp_path)  # the files the line names (users.txt) are in the current folder
    try:
        with serving(tmp_path, *words[2:], "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0",
                     env=environment) as (proc, ports):
            scheme = "https" if "--http-tls" in words else "http"
            assert httpx.get(f"{scheme}://127.0.0.1:{ports['http']}/readyz", verify=False).status_code == 200
            code, _, err = stop(proc)
            assert code == 0, err
    finally:
        os.chdir(previous)


def test_the_tls_and_login_example(tmp_path: Path) -> None:
    swaks = require_tool("swaks")
    users_file(tmp_path)
    [block] = [b for b in blocks(between("**Authentication.** By default", "**Client settings for TLS")) if "swaks" in b]
    serve_line, swaks_line = commands(block)
    words = shlex.split(serve_line)
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        with serving(tmp_path, *words[2:], "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0") as (proc, ports):
            sent = subprocess.run([swaks, *shlex.split(ported(swaks_line, ports))[1:]], capture_output=True,
                                  text=True, timeout=60)
            assert sent.returncode == 0, sent.stdout + sent.stderr
            message = api(ports, "/api/v1/message/latest").json()
            assert message["Envelope"]["AuthUser"] == "app" and message["Envelope"]["TLS"]
            stop(proc)
    finally:
        os.chdir(previous)
