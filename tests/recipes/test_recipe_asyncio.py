"""README recipe: an asyncio app sending with aiosmtplib, tested with the fixture and with an embedded server."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib

import mailnest.client
import mailnest.runtime
from mailnest.pytest_plugin import Inbox


async def send_login_code(smtp_host: str, smtp_port: int, to: str, code: str) -> None:
    """The application code under test."""
    message = EmailMessage()
    message["From"] = "security@app.example"
    message["To"] = to
    message["Subject"] = "Your sign-in code"
    message.set_content(f"Your code is {code}. It expires in 10 minutes.")
    await aiosmtplib.send(message, hostname=smtp_host, port=smtp_port)


def test_login_code_with_the_fixture(mailnest: Inbox) -> None:
    carol = mailnest.address("carol")
    asyncio.run(send_login_code(mailnest.smtp_host, mailnest.smtp_port, carol, "482913"))
    [mail] = mailnest.wait_for(to=carol)
    assert mail.codes() == ["482913"]


def test_login_code_on_the_apps_own_loop() -> None:
    async def scenario() -> None:
        async with (mailnest.runtime.MailServer() as server,
                    mailnest.client.AsyncClient(server.http_url) as client):
            waiting = asyncio.create_task(client.wait_for("subject:sign-in", mailbox="dave@app.test"))
            await send_login_code(server.smtp_host, server.smtp_port, "dave@app.test", "770041")
            [mail] = await waiting
            assert mail.codes() == ["770041"]

    asyncio.run(scenario())
