"""Load existing mail into mailnest: `.eml` files, MH folders, Maildirs and mbox files.

`iter_messages` finds the messages under a path (what kind of path it is, it works out itself) and yields
their bytes. They go either to a running mailnest over SMTP (`import_over_smtp`) or straight into a store
(`import_into_store`, which is what `mailnest ingest --db FILE` uses). The SMTP envelope comes from the
headers (Return-Path, Sender or From; To, Cc and Bcc) unless the caller gives one.

Stored bytes are the file's bytes. Over SMTP, line ends become CRLF first, as the protocol requires; mbox
`>From ` quoting is left as found, since mboxo and mboxrd files cannot be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import logging
import mailbox
import os
import re
import smtplib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .config import Config, ConfigError, Listen, parse_listen
from .events import Hub
from .models import Envelope
from .store.base import Store
from .store.select import open_store, parse_db, shown

log = logging.getLogger(__name__)

_DEFAULT_SMTP = "127.0.0.1:1025"
_STORE_WINDOW = 64  # messages in flight to the store at once, so that group commit can batch them
_BARE_LF = re.compile(rb"(?<!\r)\n")


class IngestError(Exception):
    """A path that cannot be imported (missing, unreadable, not mail); the message says which and why."""


@dataclass
class ImportResult:
    imported: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    def __str__(self) -> str:
        text = f"imported {self.imported} message(s)"
        return text + (f", {len(self.failed)} failed" if self.failed else "")


# -- finding messages ------------------------------------------------------------------------------------


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mh(path: Path) -> bool:
    if (path / ".mh_sequences").is_file():
        return True
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(files) and all(p.name.isdigit() for p in files)


def _starts_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(5) == b"From "
    except OSError:
        return False


def detect(path: Path) -> str:
    """What a path holds: "maildir", "mh", "mbox", "eml" (one message) or "directory" (to walk)."""
    if path.is_dir():
        if _is_maildir(path):
            return "maildir"
        if _is_mh(path):
            return "mh"
        return "directory"
    if path.is_file():
        return "mbox" if _starts_like_mbox(path) else "eml"
    raise IngestError(f"{path}: no such file or directory")


def iter_messages(path: str | Path) -> Iterator[tuple[bytes, str]]:
    """Every message under `path` as (raw bytes, where it came from), oldest first where that is known."""
    path = Path(path)
    kind = detect(path)
    if kind == "eml":
        yield path.read_bytes(), str(path)
    elif kind == "mbox":
        yield from _iter_mbox(path)
    elif kind == "maildir":
        yield from _iter_maildir(mailbox.Maildir(path, factory=None, create=False), str(path))
    elif kind == "mh":
        yield from _iter_mh(mailbox.MH(path, factory=None, create=False), str(path))
    else:
        yield from _iter_directory(path)


def _iter_mbox(path: Path) -> Iterator[tuple[bytes, str]]:
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        for number, key in enumerate(box.iterkeys(), 1):
            yield box.get_bytes(key), f"{path} #{number}"
    finally:
        box.close()


def _iter_maildir(box: mailbox.Maildir, where: str) -> Iterator[tuple[bytes, str]]:
    # Maildir file names start with the delivery time, so sorting them is (roughly) arrival order.
    for key in sorted(box.iterkeys()):
        yield box.get_bytes(key), f"{where} {key}"
    for folder in sorted(box.list_folders()):
        yield from _iter_maildir(box.get_folder(folder), f"{where}/.{folder}")


def _iter_mh(box: mailbox.MH, where: str) -> Iterator[tuple[bytes, str]]:
    for key in sorted(box.iterkeys(), key=int):
        yield box.get_bytes(key), f"{where}/{key}"
    for folder in sorted(box.list_folders()):
        yield from _iter_mh(box.get_folder(folder), f"{where}/{folder}")


def _iter_directory(path: Path) -> Iterator[tuple[bytes, str]]:
    """A directory that is no mailbox itself: its .eml files, mbox files and mailboxes, recursively."""
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from iter_messages(entry)
        elif entry.suffix.lower() == ".eml":
            try:
                raw = entry.read_bytes()
            except OSError as exc:
                # One unreadable file in a tree should not stop the rest from going in.
                log.warning("skipping %s: %s", entry, exc.strerror or exc)
                continue
            yield raw, str(entry)
        elif _starts_like_mbox(entry):
            yield from _iter_mbox(entry)
        else:
            log.info("skipping %s: not an .eml, mbox, Maildir or MH folder", entry)


def iter_all(paths: Iterable[str | Path]) -> Iterator[tuple[bytes, str]]:
    for path in paths:
        yield from iter_messages(path)


# -- envelopes ---------------------------------------------------------------------------------------------


_FIELD_NAME = re.compile(rb"[!-9;-~]+:")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def split_header(data: bytes) -> tuple[list[bytes], bytes]:
    """(header fields, each with its continuation lines and line ends; everything after them)."""
    fields: list[bytes] = []
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end + 1
        line = data[position:end]
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif _FIELD_NAME.match(line):
            fields.append(line)
        else:
            break  # the blank line, or a body that starts without one
        position = end
    return fields, data[position:]


def field_name(field_bytes: bytes) -> str:
    return field_bytes.split(b":", 1)[0].decode("ascii", "replace").strip().lower()


def header_values(fields: list[bytes], *names: str) -> list[str]:
    """Unfolded values of the named fields. Raw UTF-8 (RFC 6532) is read as UTF-8, anything else as Latin-1:
    the stdlib's compat32 parser would turn non-ASCII addresses into replacement characters."""
    wanted = {n.lower() for n in names}
    values = []
    for field_bytes in fields:
        if field_name(field_bytes) in wanted:
            value = field_bytes.split(b":", 1)[1]
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = value.decode("latin-1")
            values.append(_FOLD.sub("", text).strip())
    return values


def envelope_from_headers(raw: bytes) -> tuple[str, list[str]]:
    """(sender, recipients) as the headers give them: Return-Path, Sender or From; To, Cc and Bcc."""
    fields, _ = split_header(raw)

    def addresses(*names: str) -> list[str]:
        values = header_values(fields, *names)
        return [addr for _, addr in email.utils.getaddresses(values) if addr and "@" in addr]

    sender = ""
    for name in ("Return-Path", "Sender", "From"):
        found = addresses(name)
        if found:
            sender = found[0]
            break
    recipients = list({a.lower(): a for a in addresses("To", "Cc", "Bcc")}.values())
    if not recipients:
        recipients = list({a.lower(): a for a in addresses("Delivered-To", "X-Original-To")}.values())
    return sender, recipients


# Fields that a message has and other text files do not; one of them is enough.
_MESSAGE_FIELDS = frozenset({"from", "to", "cc", "bcc", "subject", "date", "message-id", "received", "return-path",
                             "sender", "reply-to", "mime-version", "content-type", "delivered-to", "x-original-to"})


def not_mail(raw: bytes) -> str | None:
    """Why `raw` is not a mail message, or None when it is one: it must start with header fields, one of them a
    field that messages have (From, To, Subject, Date, Message-ID, Received...)."""
    fields, _ = split_header(raw)
    if not fields:
        return "not a mail message: it does not start with header fields such as From: or Subject: (skipped)"
    if not any(field_name(f) in _MESSAGE_FIELDS for f in fields):
        names = ", ".join(sorted({field_name(f) for f in fields})[:3])
        return (f"not a mail message: its header fields ({names}) include none of From, To, Subject, Date or "
                "Message-ID (skipped)")
    return None


def _envelope(raw: bytes, mail_from: str | None, rcpt_tos: list[str] | None) -> tuple[str, list[str]]:
    sender, recipients = envelope_from_headers(raw)
    return (sender if mail_from is None else mail_from), (recipients if not rcpt_tos else list(rcpt_tos))


# -- destinations ------------------------------------------------------------------------------------------


Progress = Callable[[ImportResult], None]


async def import_into_store(store: Store, paths: Iterable[str | Path], *, mail_from: str | None = None,
                            rcpt_tos: list[str] | None = None, progress: Progress | None = None) -> ImportResult:
    """Add every message under `paths` to a started store; files are read off the event loop. A file that is not
    mail (see `not_mail`) is left out and named in the result's `failed` list. `progress` is called with the
    result so far after each message."""
    result = ImportResult()
    messages = iter_all(paths)
    pending: set[asyncio.Task[None]] = set()

    async def add(raw: bytes, source: str) -> None:
        sender, recipients = _envelope(raw, mail_from, rcpt_tos)
        try:
            await store.add(raw, Envelope(sender, tuple(recipients), source="import"))
        except Exception as exc:
            log.warning("could not store %s: %s", source, exc)
            result.failed.append((source, str(exc)))
        else:
            result.imported += 1
        if progress is not None:
            progress(result)

    try:
        while True:
            item = await asyncio.to_thread(next, messages, None)
            if item is None:
                break
            if (reason := not_mail(item[0])) is not None:
                result.failed.append((item[1], reason))
                continue
            # Start order is store order, so messages keep their file order in the store.
            pending.add(asyncio.create_task(add(*item)))
            if len(pending) >= _STORE_WINDOW:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if pending:
            await asyncio.wait(pending)
    return result


def import_over_smtp(host: str, port: int, paths: Iterable[str | Path], *, mail_from: str | None = None,
                     rcpt_tos: list[str] | None = None, timeout: float = 30,
                     progress: Progress | None = None) -> ImportResult:
    """Send every message under `paths` to an SMTP server (a running mailnest), one connection for all.

    Raises OSError when the server cannot be reached at all; a message the server refuses, or a file that is not
    mail, is recorded in the result's `failed` list and the import goes on.
    """
    result = ImportResult()
    client: smtplib.SMTP | None = None
    try:
        for raw, source in iter_all(paths):
            if progress is not None and (result.imported or result.failed):
                progress(result)
            if (reason := not_mail(raw)) is not None:
                result.failed.append((source, reason))
                continue
            sender, recipients = _envelope(raw, mail_from, rcpt_tos)
            if not recipients:
                result.failed.append((source, "no recipients in To, Cc or Bcc (give some with --to)"))
                continue
            if client is None:
                client = smtplib.SMTP(host, port, timeout=timeout, local_hostname="mailnest-ingest")
                client.ehlo()
            options = []
            if not all(a.isascii() for a in (sender, *recipients)) and client.has_extn("smtputf8"):
                options.append("SMTPUTF8")
            if not raw.isascii() and client.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            try:
                client.sendmail(sender, recipients, _BARE_LF.sub(b"\r\n", raw), mail_options=options)
            except smtplib.SMTPServerDisconnected as exc:
                result.failed.append((source, f"server disconnected: {exc}"))
                client = None
            except smtplib.SMTPException as exc:
                result.failed.append((source, str(exc)))
            else:
                result.imported += 1
    finally:
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
    return result


# -- command line --------------------------------------------------------------------------------------


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help=".eml files, mbox files, Maildirs, MH folders, or directories holding them")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--smtp", metavar="HOST:PORT",
                       help="send to a running mailnest over SMTP (default: $MAILNEST_SMTP or 127.0.0.1:1025)")
    where.add_argument("--db", metavar="FILE|URL", type=parse_db,
                       help="write straight into this database file, or PostgreSQL URL, instead (no server "
                            "needed; a server already running on a SQLite file will not announce the new messages)")
    parser.add_argument("--tenant", metavar="NAME", help="with a PostgreSQL --db: the tenant to write into")
    parser.add_argument("--from", dest="mail_from", metavar="ADDRESS",
                        help="envelope sender for every message (default: Return-Path, Sender or From)")
    parser.add_argument("--to", dest="rcpt_tos", action="append", metavar="ADDRESS",
                        help="envelope recipient for every message, repeatable (default: To, Cc and Bcc)")
    parser.add_argument("--use-message-dates", action="store_true",
                        help="with --db: date each message by its own Date header rather than the time of the "
                             "import (over SMTP the server decides: start it with --use-message-dates)")


class TerminalProgress:
    """A running count on a terminal (`stream` is one): one line, redrawn at most every `interval` seconds, cleared
    before the summary is printed. Nothing at all when the output is a file or a pipe."""

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.interval = interval
        self._next = 0.0
        self._shown = False

    def __call__(self, result: ImportResult) -> None:
        now = time.monotonic()
        if not self.enabled or now < self._next:
            return
        self._next = now + self.interval
        failed = f", {len(result.failed)} skipped or failed" if result.failed else ""
        self.stream.write(f"\rmailnest ingest: {result.imported} imported{failed}...")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def ingest_main(args: argparse.Namespace) -> int:
    """`mailnest ingest`: 0 when every message went in, 1 when some failed, 2 for unusable arguments."""
    paths = [Path(p) for p in args.paths]
    if args.use_message_dates and args.db is None:
        print("mailnest ingest: --use-message-dates needs --db (over SMTP the server dates the mail: start it with "
              "--use-message-dates)", file=sys.stderr)
        return 2
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"mailnest ingest: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    progress = TerminalProgress(sys.stderr)
    try:
        if args.db is not None:
            config = Config(db=args.db, tenant=args.tenant, max_messages=0, use_message_dates=args.use_message_dates)
            result = asyncio.run(_ingest_into_db(config, paths,
                                                 args.mail_from, args.rcpt_tos, progress))
            where = shown(args.db)
        else:
            listen = _smtp_listen(args.smtp)
            where = str(listen)
            try:
                result = import_over_smtp(listen.host, listen.port, paths, mail_from=args.mail_from,
                                          rcpt_tos=args.rcpt_tos, progress=progress)
            except (OSError, smtplib.SMTPException) as exc:
                progress.clear()
                print(f"mailnest ingest: cannot send to {listen}: {exc}\n"
                      "Is `mailnest serve` running? Point at it with --smtp HOST:PORT, or use --db FILE.",
                      file=sys.stderr)
                return 1
    except (ConfigError, IngestError, OSError, mailbox.Error) as exc:
        progress.clear()
        print(f"mailnest ingest: {exc}", file=sys.stderr)
        return 2
    progress.clear()
    for source, reason in result.failed:
        print(f"mailnest ingest: {source}: {reason}", file=sys.stderr)
    print(f"mailnest ingest: {result} into {where}")
    return 1 if result.failed else 0


def _smtp_listen(value: str | None) -> Listen:
    return parse_listen(value or os.environ.get("MAILNEST_SMTP") or _DEFAULT_SMTP, what="--smtp")


async def _ingest_into_db(config: Config, paths: list[Path], mail_from: str | None,
                          rcpt_tos: list[str] | None, progress: Progress | None = None) -> ImportResult:
    # No retention here (max_messages=0): pruning is the server's job when it next opens the store with its limits.
    store = open_store(config, Hub())
    await store.start()
    try:
        return await import_into_store(store, paths, mail_from=mail_from, rcpt_tos=rcpt_tos, progress=progress)
    finally:
        await store.close()
