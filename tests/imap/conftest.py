"""A running mailnest (SMTP + store + IMAP) in a background thread, and an imaplib client for it."""

from __future__ import annotations

import imaplib
from collections.abc import Callable, Iterator

import pytest

from mailnest.config import Config, Listen
from mailnest.runtime import ServerThread


def start_server(config: Config) -> ServerThread:
    return ServerThread(config).start()


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerThread]]:
    threads: list[ServerThread] = []

    def make(**changes: object) -> ServerThread:
        config = Config(http=None, imap=Listen("127.0.0.1", 0)).replace(**changes)
        thread = start_server(config)
        threads.append(thread)
        return thread

    yield make
    for thread in threads:
        thread.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server()


@pytest.fixture
def imap(server: ServerThread) -> Iterator[imaplib.IMAP4]:
    """A catch-all login (sees every message)."""
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    client.login("*", "any")
    yield client
    try:
        client.logout()
    except (imaplib.IMAP4.abort, OSError):
        pass
