"""`mailnest dump DIR`: every stored message as DIR/ID.eml, the bytes exactly as received.

The messages come from a database (`--db FILE` or a PostgreSQL URL, no server needed) or from a running mailnest
(or Mailpit) over its HTTP API (`--url`, the default: the address the MAILNEST_* variables give the server).
DIR is created if its parent exists. File names are the message IDs with anything but letters, digits, `.`, `_`
and `-` replaced, so a server cannot name a file outside DIR; each file is written whole, then renamed into
place. Exit 0 when every message was written, 1 when some could not be (each is named), 2 for unusable
arguments, a database that cannot be read or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from .config import Config, ConfigError, is_database_url
from .events import Hub
from .probe import base_url
from .store.select import open_store, parse_db, shown

PAGE = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SQLITE_HEADER = b"SQLite format 3\x00"


class DumpError(Exception):
    """A source or a folder that cannot be used; the message says which and why."""


def safe_name(message_id: str, taken: set[str]) -> str:
    """A file name for `message_id` inside the folder: no separators, no leading dot, unique among `taken`."""
    stem = _UNSAFE.sub("_", message_id).lstrip(".") or "message"
    stem = stem[:200]
    name, number = f"{stem}.eml", 1
    while name.lower() in taken:
        number += 1
        name = f"{stem}-{number}.eml"
    taken.add(name.lower())
    return name


def _write(folder: Path, name: str, raw: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".dump-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(raw)
        os.replace(temporary, folder / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def prepare_folder(folder: Path) -> None:
    if folder.exists():
        if not folder.is_dir():
            raise DumpError(f"{folder} is a file, not a folder; name a folder to write the messages into")
        return
    if not folder.absolute().parent.is_dir():
        raise DumpError(f"the folder {folder.absolute().parent} does not exist; create it first, or name another "
                        "place (DIR itself is created)")
    try:
        folder.mkdir()
    except OSError as exc:
        raise DumpError(f"cannot create {folder}: {exc.strerror or exc}") from None


def _http_messages(url: str) -> Iterator[tuple[str, bytes | None]]:
    """(ID, raw bytes or None when it went away) for every message of the server at `url`."""
    import httpx  # here: the other subcommands start without it

    seen: set[str] = set()
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as client:
        start = 0
        while True:
            try:
                response = client.get("api/v1/messages", params={"start": start, "limit": PAGE})
            except httpx.HTTPError as exc:
                raise DumpError(f"cannot reach {url}: {exc or type(exc).__name__}; is mailnest running there? "
                                "Point at it with --url, or read a database with --db") from None
            if response.status_code != 200:
                raise DumpError(f"{url}api/v1/messages answered {response.status_code}: "
                                f"{response.text.strip()[:200]}")
            try:
                page = response.json()
                summaries = page["messages"] or []
                ids = [str(summary["ID"]) for summary in summaries]
            except (ValueError, KeyError, TypeError):
                raise DumpError(f"{url} does not answer as mailnest or Mailpit (api/v1/messages is not a message "
                                "list)") from None
            for message_id in ids:
                if message_id in seen:  # pages moved by new arrivals
                    continue
                seen.add(message_id)
                try:
                    raw = client.get(f"api/v1/message/{message_id}/raw")
                except httpx.HTTPError as exc:
                    raise DumpError(f"lost {url} while reading {message_id}: {exc}") from None
                yield message_id, raw.content if raw.status_code == 200 else None
            if len(ids) < PAGE:
                return
            start += len(ids)


async def _db_messages(config: Config) -> AsyncIterator[tuple[str, bytes | None]]:
    store = open_store(config, Hub())
    try:
        await store.start()
    except Exception as exc:
        raise DumpError(f"cannot open the database {shown(config.db)}: {exc}") from None
    try:
        start = 0
        while True:
            page = await store.list(start=start, limit=PAGE)
            for summary in page.messages:
                yield summary.id, await store.raw(summary.id)
            if len(page.messages) < PAGE:
                return
            start += len(page.messages)
    finally:
        await store.close()


def _check_db(db: Path | str) -> None:
    if is_database_url(db):
        return
    path = Path(db)
    if not path.is_file():
        raise DumpError(f"--db {path}: no such database file" + (" (it is a folder)" if path.is_dir() else ""))
    with path.open("rb") as file:
        if file.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            raise DumpError(f"--db {path} is not a SQLite database")


class Dumper:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: set[str] = set()  # names written in this run; a file of an earlier run is overwritten
        self.written = 0
        self.missing: list[str] = []

    def add(self, message_id: str, raw: bytes | None) -> None:
        if raw is None:
            self.missing.append(message_id)
            return
        _write(self.folder, safe_name(message_id, self.taken), raw)
        self.written += 1


def add_dump_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", type=Path, help="where to write ID.eml files (created if missing)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--db", metavar="FILE|URL", type=parse_db,
                        help="read this SQLite file or PostgreSQL URL directly (no server needed)")
    source.add_argument("--url", metavar="URL",
                        help="read over HTTP from the mailnest (or Mailpit) at this base URL, e.g. "
                             "http://127.0.0.1:8025/; user:password@ in it for --http-auth-file (default: from "
                             "MAILNEST_HTTP and MAILNEST_WEBROOT, else http://127.0.0.1:8025/)")
    parser.add_argument("--tenant", metavar="NAME", help="with a PostgreSQL --db: the tenant to read")


async def _dump_db(config: Config, dumper: Dumper) -> None:
    async for message_id, raw in _db_messages(config):
        await asyncio.to_thread(dumper.add, message_id, raw)


def dump_main(args: argparse.Namespace) -> int:
    """0 every message written, 1 some could not be, 2 unusable arguments or source."""
    prog = "mailnest dump"
    folder: Path = args.folder
    try:
        if args.db is not None:
            _check_db(args.db)
            config = Config(db=args.db, tenant=args.tenant, max_messages=0, http=None, smtp=None)
            source = shown(args.db)
        else:
            if args.tenant:
                raise ConfigError("--tenant needs a PostgreSQL --db")
            url = base_url(args.url)
            source = url
        prepare_folder(folder)
        dumper = Dumper(folder)
        if args.db is not None:
            asyncio.run(_dump_db(config, dumper))
        else:
            for message_id, raw in _http_messages(url):
                dumper.add(message_id, raw)
    except (ConfigError, DumpError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: cannot write into {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for message_id in dumper.missing:
        print(f"{prog}: {message_id} was deleted before it could be read", file=sys.stderr)
    print(f"mailnest dump: {dumper.written} message{'s' if dumper.written != 1 else ''} from {source} into {folder}")
    return 1 if dumper.missing else 0
