"""A running mailnest (SMTP + store + POP3) in a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mailnest.config import Config, Listen
from mailnest.runtime import ServerThread

from .helpers import Mailnest


def _start(config: Config) -> ServerThread:
    return ServerThread(config).start()


@pytest.fixture
def mailnest() -> Iterator[Mailnest]:
    thread = _start(Config(http=None, pop3=Listen("127.0.0.1", 0)))
    try:
        yield Mailnest(thread)
    finally:
        thread.stop()


@pytest.fixture
def make_mailnest() -> Iterator[Callable[..., Mailnest]]:
    """Build a mailnest with a custom config (e.g. a short idle timeout)."""
    threads: list[ServerThread] = []

    def make(**changes: object) -> Mailnest:
        config = Config(http=None, pop3=Listen("127.0.0.1", 0)).replace(**changes)
        thread = _start(config)
        threads.append(thread)
        return Mailnest(thread)

    yield make
    for thread in threads:
        thread.stop()
