"""Custom handlers: loading them, the adapter on its own, then end to end through SMTP."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope as SMTPEnvelope
from aiosmtpd.smtp import Session

from mailnest import ServerThread
from mailnest.outputs import CustomHandlers, HandlerLoadError, load_handler
from mailnest.outputs.custom import HANDLER_FAILED, valid_reply
from tests.outputs.helpers import hooked_server

# --- handlers in both styles ---------------------------------------------------------------------------


class RcptFilter:
    """aiosmtpd style, async, doing its own bookkeeping as aiosmtpd asks hooks to."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.seen.append(address)
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address.endswith("@blocked.test"):
            return "553 5.7.1 sender blocked"
        envelope.mail_from = address
        return "250 OK"


class SmtpdStyle:
    """smtpd's SMTPServer style: a plain, synchronous process_message."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.threads: list[str] = []

    def process_message(self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes, **kwargs: Any) -> str | None:
        self.calls.append((peer, mailfrom, list(rcpttos), data, kwargs))
        self.threads.append(threading.current_thread().name)
        if b"SPAM" in data:
            return "554 5.7.1 looks like spam"
        return None


class AsyncProcessMessage:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def process_message(self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes) -> None:
        self.subjects.append(data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode())


class Exploding:
    def __init__(self) -> None:
        self.calls = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.calls += 1
        if b"explode" in envelope.content:
            raise RuntimeError("handler bug")
        envelope.content = b"rewritten by the handler"
        return "250 fine"


# --- the adapter on its own ----------------------------------------------------------------------------


def session_and_envelope() -> tuple[Session, SMTPEnvelope]:
    session = Session(asyncio.get_running_loop())
    session.peer = ("127.0.0.1", 40000)
    session.host_name = "client.test"
    envelope = SMTPEnvelope()
    envelope.mail_from = "ann@example.com"
    return session, envelope


def test_rcpt_refusal_is_returned_and_bookkeeping_undone() -> None:
    async def main() -> None:
        custom = CustomHandlers([RcptFilter()])
        session, envelope = session_and_envelope()
        assert await custom.on_rcpt(None, session, envelope, "bart@example.com", []) is None
        assert envelope.rcpt_tos == []  # the hook appended; mailnest's own handler appends, once
        assert await custom.on_rcpt(None, session, envelope, "nobody@example.com", []) == "550 5.1.1 no such user"
        assert await custom.on_mail(None, session, envelope, "x@blocked.test", []) == "553 5.7.1 sender blocked"
        assert envelope.mail_from == "ann@example.com"
        assert await custom.on_data(None, session, envelope) is None  # no DATA hook: nothing to say

    asyncio.run(main())


def test_process_message_gets_smtpd_arguments_on_a_worker_thread() -> None:
    async def main() -> None:
        handler = SmtpdStyle()
        custom = CustomHandlers([handler])
        session, envelope = session_and_envelope()
        envelope.rcpt_tos = ["bart@example.com"]
        envelope.mail_options = ["BODY=8BITMIME"]
        envelope.content = envelope.original_content = b"Subject: hi\r\n\r\nbody\r\n"
        assert await custom.on_data(None, session, envelope) is None
        envelope.content = b"Subject: SPAM\r\n\r\n"
        assert await custom.on_data(None, session, envelope) == "554 5.7.1 looks like spam"
        peer, mailfrom, rcpttos, data, kwargs = handler.calls[0]
        assert (peer, mailfrom, rcpttos, data) == (("127.0.0.1", 40000), "ann@example.com", ["bart@example.com"],
                                                   b"Subject: hi\r\n\r\nbody\r\n")
        assert kwargs == {"mail_options": ["BODY=8BITMIME"], "rcpt_options": []}
        assert threading.main_thread().name not in handler.threads

    asyncio.run(main())


def test_handler_that_raises_gives_451_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        custom = CustomHandlers([Exploding()])
        session, envelope = session_and_envelope()
        envelope.content = envelope.original_content = b"please explode"
        with caplog.at_level(logging.ERROR, logger="mailnest.outputs.custom"):
            assert await custom.on_data(None, session, envelope) == HANDLER_FAILED
        assert HANDLER_FAILED.startswith("451 ")
        record = next(r for r in caplog.records if "Exploding failed in handle_DATA" in r.getMessage())
        assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])
        envelope.content = b"calm"
        assert await custom.on_data(None, session, envelope) is None  # positive reply: mailnest replies
        assert envelope.content == b"calm"  # the hook's rewrite is undone: stored bytes are as received

    asyncio.run(main())


def test_replies_that_are_not_smtp_are_refused_with_451() -> None:
    class Bad:
        async def handle_RCPT(self, *args: Any) -> str:
            return "550 injected\r\nRCPT TO:<x>"

    async def main() -> None:
        session, envelope = session_and_envelope()
        assert await CustomHandlers([Bad()]).on_rcpt(None, session, envelope, "a@b", []) == HANDLER_FAILED

    asyncio.run(main())
    assert valid_reply("250 OK") and valid_reply("550-first\r\n550 second") and valid_reply("221")
    assert not valid_reply("OK") and not valid_reply("550-a\r\n551 b") and not valid_reply(550)


def test_ehlo_new_style_edits_old_style_refuses_and_simple_commands_reply() -> None:
    class NoPipelining:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:
            session.host_name = hostname
            return [r for r in responses if "PIPELINING" not in r]

    class OldStyle:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
            return "550 go away" if hostname == "bad.test" else "250 HELP"

    class Verifier:
        def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
            return "250 <bart@example.com>" if address == "bart" else "550 unknown"

    async def main() -> None:
        session, envelope = session_and_envelope()
        custom = CustomHandlers([NoPipelining(), OldStyle(), Verifier()])
        lines = ["250-mailnest", "250-PIPELINING", "250 HELP"]
        assert await custom.on_ehlo(None, session, envelope, "ok.test", lines) == ["250-mailnest", "250 HELP"]
        assert await custom.on_ehlo(None, session, envelope, "bad.test", lines) == ["550 go away"]
        assert await custom.on_command("VRFY", None, session, envelope, "bart") == "250 <bart@example.com>"
        assert await custom.on_command("NOOP", None, session, envelope, "") is None

    asyncio.run(main())


# --- loading -------------------------------------------------------------------------------------------


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(directory: Path, source: str) -> str:
    name = f"hooks_{uuid.uuid4().hex[:8]}"
    (directory / f"{name}.py").write_text(source)
    return name


def test_load_handler_class_instance_function_and_file(module_dir: Path) -> None:
    name = write_module(module_dir, (
        "class Handler:\n    async def handle_RCPT(self, *a):\n        return None\n"
        "instance = Handler()\n"
        "def process_message(peer, mailfrom, rcpttos, data):\n    return None\n"
        "class Nested:\n    inner = Handler()\n"))
    assert type(load_handler(f"{name}:Handler")).__name__ == "Handler"
    module = sys.modules[name]
    assert load_handler(f"{name}:instance") is module.instance
    assert load_handler(f"{name}:process_message") is module.process_message
    assert load_handler(f"{name}:Nested.inner") is module.Nested.inner
    assert type(load_handler(f"{module_dir / (name + '.py')}:Handler")).__name__ == "Handler"


@pytest.mark.parametrize(("spec", "message"), [
    ("no_colon_here", "expected module:object"),
    ("mod:", "expected module:object"),
    ("surely_missing_module_xyz:Handler", "no module named 'surely_missing_module_xyz'"),
    ("{mod}:Missing", "has no attribute 'Missing'"),
    ("{mod}:NeedsArgs", "must be constructible without arguments"),
    ("{mod}:nothing", "has none of handle_HELO"),
    ("{broken}:Handler", "importing"),
    ("{imports_missing}:Handler", "No module named 'not_installed_dependency'"),
    ("/no/such/file.py:Handler", "no such file"),
])
def test_load_handler_errors_name_the_problem(module_dir: Path, spec: str, message: str) -> None:
    mod = write_module(module_dir, "class NeedsArgs:\n    def __init__(self, x):\n        pass\n"
                                   "    async def handle_DATA(self, *a):\n        pass\nnothing = 42\n")
    broken = write_module(module_dir, "raise ValueError('broken at import')\n")
    imports_missing = write_module(module_dir, "import not_installed_dependency\n")
    spec = spec.format(mod=mod, broken=broken, imports_missing=imports_missing)
    with pytest.raises(HandlerLoadError) as raised:
        load_handler(spec)
    assert message in str(raised.value)
    assert spec in str(raised.value)


def test_config_objects_are_checked_too() -> None:
    with pytest.raises(HandlerLoadError, match="has none of"):
        CustomHandlers.from_config([object()])
    handler = RcptFilter()
    assert CustomHandlers.from_config([handler]).handlers == (handler,)


# --- end to end ----------------------------------------------------------------------------------------


def stored(server: ServerThread) -> list[tuple[str, tuple[str, ...]]]:
    async def read() -> list[tuple[str, tuple[str, ...]]]:
        page = await server.store.list(limit=100)
        result = []
        for summary in reversed(page.messages):
            message = await server.store.get(summary.id)
            assert message is not None
            result.append((summary.subject, message.envelope.rcpt_tos))
        return result

    return server.call(read())


def test_refused_recipient_end_to_end() -> None:
    rcpt_filter = RcptFilter()
    with hooked_server(rcpt_filter) as (server, port), smtplib.SMTP("127.0.0.1", port) as smtp:
        refused = smtp.sendmail("ann@example.com", ["bart@example.com", "nobody@example.com"],
                                b"Subject: partly\r\n\r\nx\r\n")
        assert refused == {"nobody@example.com": (550, b"5.1.1 no such user")}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("ann@example.com", ["nobody@example.com"], b"Subject: nobody\r\n\r\nx\r\n")
        with pytest.raises(smtplib.SMTPSenderRefused) as sender:
            smtp.sendmail("x@blocked.test", ["bart@example.com"], b"Subject: blocked\r\n\r\nx\r\n")
        assert sender.value.smtp_code == 553
        smtp.sendmail("ann@example.com", ["bart@example.com", "lisa@example.com"], b"Subject: both\r\n\r\nx\r\n")
        assert stored(server) == [("partly", ("bart@example.com",)),
                                  ("both", ("bart@example.com", "lisa@example.com"))]
    assert "nobody@example.com" in rcpt_filter.seen


def test_process_message_styles_and_data_refusal_end_to_end() -> None:
    sync_style, async_style = SmtpdStyle(), AsyncProcessMessage()
    with hooked_server(sync_style, async_style) as (server, port), smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.sendmail("ann@example.com", ["bart@example.com"], b"Subject: hello\r\n\r\nbody\r\n")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("ann@example.com", ["bart@example.com"], b"Subject: SPAM\r\n\r\nbuy\r\n")
        assert refused.value.smtp_code == 554
        smtp.sendmail("ann@example.com", ["bart@example.com"], b"Subject: again\r\n\r\nbody\r\n")
        assert [s for s, _ in stored(server)] == ["hello", "again"]  # the refused message is not kept
    peer, mailfrom, rcpttos, data, _ = sync_style.calls[0]
    assert peer[0] == "127.0.0.1" and mailfrom == "ann@example.com" and rcpttos == ["bart@example.com"]
    assert data == b"Subject: hello\r\n\r\nbody\r\n"
    assert async_style.subjects == ["hello", "again"]  # the refusal by the first handler ended that DATA


def test_raising_handler_gives_451_and_the_server_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    exploding = Exploding()
    with caplog.at_level(logging.ERROR), hooked_server(exploding) as (server, port):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                smtp.sendmail("ann@example.com", ["bart@example.com"], b"Subject: x\r\n\r\nexplode\r\n")
            assert failed.value.smtp_code == 451
            smtp.sendmail("ann@example.com", ["bart@example.com"], b"Subject: same session\r\n\r\nok\r\n")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("ann@example.com", ["bart@example.com"], b"Subject: new session\r\n\r\nok\r\n")
        assert [s for s, _ in stored(server)] == ["same session", "new session"]
        raw = server.call(server.store.raw(server.call(server.store.latest()).id))
        assert raw == b"Subject: new session\r\n\r\nok\r\n"  # the handler's rewrite did not reach the store
    assert exploding.calls == 3
    assert any(r.exc_info and "handler bug" in str(r.exc_info[1]) for r in caplog.records)


def test_ehlo_and_vrfy_hooks_end_to_end() -> None:
    class Hooks:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:
            if hostname == "rude.test":
                return ["554 5.7.1 not you"]
            return [r for r in responses if "PIPELINING" not in r]

        def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
            return "250 Bart <bart@example.com>" if address == "bart" else "550 5.1.1 unknown"

    with hooked_server(Hooks()) as (server, port):
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test") as smtp:
            code, _ = smtp.ehlo()
            assert code == 250 and smtp.has_extn("8bitmime") and not smtp.has_extn("pipelining")
            assert smtp.verify("bart") == (250, b"Bart <bart@example.com>")
            assert smtp.verify("nobody")[0] == 550
            smtp.sendmail("a@example.com", ["bart@example.com"], b"Subject: after hooks\r\n\r\nx\r\n")
        with smtplib.SMTP("127.0.0.1", port, local_hostname="rude.test") as smtp:
            assert smtp.ehlo()[0] == 554
            code, _ = smtp.docmd("MAIL", "FROM:<a@example.com>")
            assert code == 503  # refused hello: still no greeting on record
        assert [s for s, _ in stored(server)] == ["after hooks"]
