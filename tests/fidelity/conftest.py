"""One mailnest (SMTP, IMAP and POP3 on port 0) and one reference aiosmtpd per module: the suite stays fast."""

from __future__ import annotations

import poplib
from collections.abc import Iterator

import pytest

from mailnest import Config, Listen, ServerThread
from tests.fidelity.harness import Mailnest
from tests.fidelity.reference import ReferenceServer


@pytest.fixture(scope="module")
def mailnest() -> Iterator[Mailnest]:
    config = Config(imap=Listen("127.0.0.1", 0), pop3=Listen("127.0.0.1", 0), http=None, max_message_size=64 << 20)
    with ServerThread(config) as server:
        yield Mailnest(server)


@pytest.fixture(scope="module")
def reference() -> Iterator[ReferenceServer]:
    with ReferenceServer() as server:
        yield server


@pytest.fixture(autouse=True)
def long_pop3_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    # poplib refuses lines over 2,048 bytes; the corpus has lines over 1 MiB.
    monkeypatch.setattr(poplib, "_MAXLINE", 8 << 20)


@pytest.fixture(autouse=True)
def nothing_left_over(mailnest: Mailnest, reference: ReferenceServer) -> Iterator[None]:
    mailnest.take()
    reference.take()
    yield
