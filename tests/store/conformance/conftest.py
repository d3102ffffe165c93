"""The store conformance suite: every test runs against every backend, through the public Store methods only.

`store` is a started store of each backend (closed after the test); `open_store(**options)` opens one with
options (max_messages, max_age, tag rules) as an async context manager. Tests are async and run on anyio's
asyncio runner, so fixture and test share one event loop (a store's tasks belong to the loop that started it).

PostgreSQL comes from `tests.pgcluster` (a session-wide cluster; one fresh database per store). Where it is
missing the postgres cases skip, except in CI (`CI=true`), where they fail.

Events: `Events` records what a store publishes on its hub; `shape()` is the one place that knows what an event
looks like, so a change of the hub's event types changes only it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailnest import events
from mailnest.events import Event, Hub
from mailnest.store.base import Store
from mailnest.tags import parse_rules

try:  # the session-wide cluster; written beside the PostgreSQL backend, so it may not be there yet
    from tests.pgcluster import postgres_server  # noqa: F401  (a fixture: importing it here registers it)
except ImportError as exc:
    _PGCLUSTER_MISSING = str(exc) or type(exc).__name__
else:
    _PGCLUSTER_MISSING = ""

BACKENDS = ["sqlite", "postgres"]
IN_CI = os.environ.get("CI", "").lower() == "true"

StoreOpener = Callable[..., contextlib.AbstractAsyncContextManager[Store]]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the postgres backend is required in CI: {reason}")
    pytest.skip(reason)


def postgres_databases(request: pytest.FixtureRequest) -> Callable[[], str]:
    """`create_database` of the session's PostgreSQL cluster: each call a fresh database URL."""
    if _PGCLUSTER_MISSING:
        _unavailable(f"tests/pgcluster.py cannot be imported: {_PGCLUSTER_MISSING}")
    server = request.getfixturevalue("postgres_server")
    create: Callable[[], str] = server.create_database
    return create


class StoreMaker:
    """`maker()` is a new store of one backend on an empty database, not started; `maker(database=...)` one on
    a database made before (`maker.last`), to reopen it. Everything the backend needs is resolved when the
    maker is made, so never from inside the event loop."""

    def __init__(self, backend: str, request: pytest.FixtureRequest, directories: pytest.TempPathFactory) -> None:
        self.backend = backend
        self.last = ""  # the database of the store made last: a file path or a PostgreSQL URL
        if backend == "sqlite":
            from mailnest.store.sqlite import SQLiteStore

            self._new_database: Callable[[], str] = lambda: str(directories.mktemp("sqlite") / "mail.db")
            self._class: Callable[..., Store] = SQLiteStore
            return
        assert backend == "postgres", backend
        self._new_database = postgres_databases(request)
        try:
            from mailnest.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            _unavailable(f"mailnest.store.postgres cannot be imported: {exc}")
        self._class = PostgresStore

    def __call__(self, *, database: str = "", max_messages: int = 0, max_age: float | None = None) -> Store:
        self.last = database or self._new_database()
        location: Path | str = Path(self.last) if self.backend == "sqlite" else self.last
        store: Store = self._class(location, Hub(), max_messages=max_messages, max_age=max_age)
        return store


def store_maker(backend: str, request: pytest.FixtureRequest, directories: pytest.TempPathFactory) -> StoreMaker:
    return StoreMaker(backend, request, directories)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> StoreMaker:
    """Stores of the backend, not started (for tests of start and close themselves)."""
    return store_maker(backend, request, tmp_path_factory)


@pytest.fixture
def open_store(make_store: StoreMaker) -> Iterator[StoreOpener]:
    """`async with open_store(max_messages=3, tags=["subject:x=t"]) as store:` a started store of the backend
    on a new, empty database; `open_store(database=make_store.last)` reopens the last one."""

    @contextlib.asynccontextmanager
    async def opened(*, database: str = "", max_messages: int = 0, max_age: float | None = None,
                     tags: tuple[str, ...] | list[str] = ()) -> AsyncIterator[Store]:
        store = make_store(database=database, max_messages=max_messages, max_age=max_age)
        if tags:
            store.configure_tags(parse_rules(tags))
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    yield opened


@pytest.fixture
async def store(open_store: StoreOpener) -> AsyncIterator[Store]:
    async with open_store() as started:
        yield started


# -- events --------------------------------------------------------------------------------------------------

def shape(event: Event) -> tuple[str, dict[str, Any]]:
    """An event as (kind, fields), the form every assertion compares; the only code here that reads an event.

    The kind is the name of the event's class in mailnest.events (MessageAdded, ReadChanged, ...); the fields
    are its dataclass fields, with id and uid lists as sets (a backend may list them in any order), tags as a
    tuple, a FlagsChanged's flags as {uid: flags}, and a MessageAdded as the id, uid and folder of its summary."""
    if isinstance(event, events.MessageAdded):
        return "MessageAdded", {"id": event.summary.id, "uid": event.summary.uid, "folder": event.summary.folder}
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    if "flags" in fields:
        fields["flags"] = {uid: frozenset(flags) for uid, flags in zip(fields["uids"], fields["flags"], strict=True)}
    for key in ("ids", "uids"):
        if key in fields:
            fields[key] = set(fields[key])
    if "tags" in fields:
        fields["tags"] = tuple(fields["tags"])
    return type(event).__name__, fields


class Events:
    """What one store publishes, as shaped events, read in the order published."""

    def __init__(self, hub: Hub) -> None:
        self._subscription = hub.subscribe(maxsize=100_000)

    async def take(self, count: int = 0, *, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        """Every event published so far, after waiting (up to `timeout`) for at least `count` of them: a backend
        may deliver its events a moment after the change returns (PostgreSQL's LISTEN/NOTIFY)."""
        got: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while True:
            while (event := self._subscription.get_nowait()) is not None:
                got.append(shape(event))
            if len(got) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        for _ in range(3):  # anything published in the same turn, so that extra events are seen too
            await asyncio.sleep(0)
            while (event := self._subscription.get_nowait()) is not None:
                got.append(shape(event))
        return got

    async def kinds(self, count: int = 0) -> list[str]:
        return [kind for kind, _ in await self.take(count)]

    def close(self) -> None:
        self._subscription.close()


@pytest.fixture
def published(store: Store) -> Iterator[Events]:
    """The events `store` publishes from now on."""
    recorder = Events(store.hub)
    yield recorder
    recorder.close()
