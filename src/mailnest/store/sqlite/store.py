"""SQLiteStore: the embedded store, composed of one object per job (see the package's docstring).

The Store protocol's methods come from the *Methods classes (reads, changes, IMAP, tags), each naming the
collaborators it uses; this class builds those collaborators and runs the life cycle: open and migrate in the
writer thread, start the tasks, and on close store what is queued before anything stops.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...events import Hub
from ...models import Envelope, Summary
from .. import schema, shared
from ..base import Mailbox
from .changes import ChangeMethods
from .checkpoints import Wal
from .connections import Connections
from .imap import ImapMethods
from .indexer import Indexer
from .ingest import Ingest
from .reads import ReadMethods
from .retention import Retention
from .spaces import SpaceMethods
from .tags import TagCache, TagMethods, TagRules
from .views import view
from .work import WorkMethods, WorkPlan
from .writes import Writer


class SQLiteStore(ReadMethods, ChangeMethods, ImapMethods, TagMethods, WorkMethods, SpaceMethods):
    def __init__(self, path: Path | str | None, hub: Hub, *, max_messages: int = 0,
                 max_age: float | None = None) -> None:
        self.hub = hub
        self.uidvalidity = 0
        self.connections = Connections(path)
        self.wal = Wal(self.connections)
        self.writer = Writer(self.connections, self.wal)
        self.retention = Retention(self.writer, hub, max_messages, max_age)
        self.indexer = Indexer(self.writer)
        self.tag_rules = TagRules()
        self.tag_cache = TagCache()
        self.ingest = Ingest(self.writer, self.indexer, self.retention, self.tag_rules, hub)
        self.work_plan = WorkPlan()
        self.login_patterns: dict[str, tuple[str, ...]] = {}  # configure_logins
        self._closed = False

    def configure_ingest(self, *, ignore_duplicate_ids: bool = False, use_message_dates: bool = False,
                         compress: bool = False) -> None:
        self.ingest.ignore_duplicate_ids = ignore_duplicate_ids
        self.ingest.use_message_dates = self.newest_by_date = use_message_dates
        self.ingest.compress = compress

    @property
    def duplicates_ignored(self) -> int:
        return self.ingest.duplicates_ignored

    def configure_logins(self, patterns: Mapping[str, Sequence[str]]) -> None:
        self.login_patterns = {login.lower(): tuple(p.lower() for p in values)
                               for login, values in patterns.items() if values}

    def login_mailbox(self, login: str | None) -> Mailbox:
        return shared.login_mailbox(login, self.login_patterns)

    def configure_work(self, kinds: Sequence[str], *, holder: str, lease: float) -> None:
        super().configure_work(kinds, holder=holder, lease=lease)
        self.ingest.work_plan = self.work_plan

    @property
    def path(self) -> Path:
        return self.connections.path

    @property
    def max_messages(self) -> int:
        return self.retention.max_messages

    @property
    def max_age(self) -> float | None:
        return self.retention.max_age

    async def start(self) -> None:
        self.connections.start()
        await self.connections.in_writer(self._open)
        self.hub.add_listener(self.tag_cache.forget_on_change)
        self.ingest.start()
        self.wal.start()
        self.retention.start()
        self.start_space_retention()

    def _open(self) -> None:
        """In the writer thread: open, migrate, and read what the jobs keep in memory."""
        conn = self.connections.open_writer()
        self.wal.page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        schema.migrate(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
        if row is None:
            self.uidvalidity = int(time.time())
            conn.execute("INSERT INTO meta VALUES ('uidvalidity', ?)", (str(self.uidvalidity),))
        else:
            self.uidvalidity = int(row[0])
        self.retention.recount(conn)
        self.indexer.load(conn)
        self.ingest.opened(conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = self.connections.closed = True
        self.retention.stop()
        self.stop_space_retention()
        await self.ingest.stop()  # what is queued is stored first: its clients are waiting for a 250
        await self.wal.close()
        self.connections.close_readers()
        await self.connections.close_writer()

    async def add(self, raw: bytes, envelope: Envelope, *, tags: Sequence[str] = (), read: bool = False) -> Summary:
        return await self.ingest.add(raw, envelope, tags, read)

    # -- kept for code outside the package that reached into the single module this package replaced -----

    _view = staticmethod(view)  # benchmarks/search_bench.py

