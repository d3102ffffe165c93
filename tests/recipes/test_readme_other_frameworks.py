"""The README's other framework settings, each as printed, against a real mailnest (issue 16: every example is run
by a test): fastapi-mail and aiosmtplib send through it, nodemailer (installed from the npm registry with the
committed lockfile) sends through it with the machine's Node, and the settings files of frameworks that cannot run
here (Laravel's `.env`, Rails, Java Mail) are read as their framework reads them and their values used to send,
so a wrong host, port or encryption setting in the README fails."""

from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailnest import Client, ServerThread
from mailnest.config import SERVE_DEFAULTS
from tests.conftest import require_tool
from tests.recipes.readme_blocks import between

NODE_DIR = Path(__file__).parent / "node"
PART = between("**FastAPI and asyncio.**", "Code that calls a `sendmail` binary")


def block(after: str, language: str) -> str:
    """The first `language` block after the line starting with `after`, exactly as printed."""
    found = re.search(rf"```{language}\n(.*?)```", PART[PART.index(after):], re.S)
    assert found, (after, language)
    return found.group(1)


def ported(text: str, port: int) -> str:
    assert "1025" in text
    return text.replace("1025", str(port))


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread() as thread:
        yield thread


def arrived(server: ServerThread, subject: str) -> None:
    with Client(server.http_url) as client:
        [mail] = client.wait_for(f'subject:"{subject}"', timeout=20)
    assert mail.recipients == ("dev@example.com",)


def test_the_readme_settings_name_the_default_smtp_port() -> None:
    assert SERVE_DEFAULTS.smtp is not None and (SERVE_DEFAULTS.smtp.host, SERVE_DEFAULTS.smtp.port) == ("127.0.0.1", 1025)


def test_fastapi_mail(server: ServerThread, tmp_path: Path) -> None:
    code = ported(block("**FastAPI and asyncio.** With fastapi-mail:", "python"), server.smtp_port) + """
import asyncio
from fastapi_mail import FastMail, MessageSchema, MessageType

message = MessageSchema(subject="from fastapi-mail", recipients=["dev@example.com"], body="hi",
                        subtype=MessageType.plain)
asyncio.run(FastMail(conf).send_message(message))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    arrived(server, "from fastapi-mail")


def test_aiosmtplib(server: ServerThread, tmp_path: Path) -> None:
    line = ported(block("With aiosmtplib", "python"), server.smtp_port)
    code = """
import asyncio
from email.message import EmailMessage
import aiosmtplib

async def main():
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "app@example.com", "dev@example.com", "from aiosmtplib"
    message.set_content("hi")
""" + "".join("    " + text + "\n" for text in line.splitlines()) + "\nasyncio.run(main())\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    arrived(server, "from aiosmtplib")


@pytest.fixture(scope="module")
def nodemailer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nodemailer installed with `npm ci` from the committed lockfile (node_modules is never committed)."""
    npm = require_tool("npm")
    require_tool("node")
    where = tmp_path_factory.mktemp("node")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NODE_DIR / name, where / name)
    done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=where, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return where


def test_nodemailer(server: ServerThread, nodemailer: Path) -> None:
    line = ported(block("**Node, nodemailer:**", "js"), server.smtp_port)
    script = ('const nodemailer = require("nodemailer");\n' + line +
              'transporter.sendMail({ from: "app@example.com", to: "dev@example.com", subject: "from nodemailer", '
              'text: "hi" }).then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });\n')
    (nodemailer / "send.cjs").write_text(script)
    result = subprocess.run([str(require_tool("node")), "send.cjs"], cwd=nodemailer, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    arrived(server, "from nodemailer")


def send_with(settings: dict[str, str], server: ServerThread, subject: str) -> None:
    """What a framework does with these settings: connect to host:port, no TLS, no login."""
    with smtplib.SMTP(settings["host"], int(settings["port"]), timeout=10) as smtp:
        smtp.sendmail("app@example.com", ["dev@example.com"], f"Subject: {subject}\r\n\r\nhi\r\n".encode())
    arrived(server, subject)


def test_laravel_env(server: ServerThread) -> None:
    env = dict(line.split("=", 1) for line in block("**Laravel-style `.env`:**", "ini").splitlines() if line)
    assert env["MAIL_MAILER"] == "smtp"
    assert env["MAIL_USERNAME"] == env["MAIL_PASSWORD"] == env["MAIL_ENCRYPTION"] == "null"  # no login, no TLS
    send_with({"host": env["MAIL_HOST"], "port": ported(env["MAIL_PORT"], server.smtp_port)}, server, "from .env")


def test_rails_action_mailer(server: ServerThread) -> None:
    ruby = block("**Rails ActionMailer**", "ruby")
    assert "config.action_mailer.delivery_method = :smtp" in ruby
    settings = dict(re.findall(r'(\w+): "?([\w.]+)"?', ruby.split("smtp_settings = ", 1)[1]))
    assert set(settings) == {"address", "port"}  # no user_name, password or enable_starttls_auto
    send_with({"host": settings["address"], "port": ported(settings["port"], server.smtp_port)}, server,
              "from rails")


def test_java_mail_properties(server: ServerThread) -> None:
    properties = dict(line.split("=", 1) for line in block("**Java Mail** properties:", "properties").splitlines()
                      if line)
    assert properties["mail.smtp.auth"] == "false"
    send_with({"host": properties["mail.smtp.host"], "port": ported(properties["mail.smtp.port"], server.smtp_port)},
              server, "from java mail")
