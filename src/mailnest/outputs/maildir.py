"""Maildir: ``DIR/<domain>/<user>/{tmp,new,cur}``, one Maildir per envelope recipient.

Delivery follows the Maildir protocol: the message is written completely under ``tmp/`` with a name no
other delivery can choose (time, microseconds, process id, a per-process counter and the host name), then
moved into ``new/``, so readers (mutt, Dovecot, `mailbox.Maildir`) only ever see whole messages. The name
carries ``,S=<size>`` as Dovecot writes it, letting IMAP servers skip a stat.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import time
from pathlib import Path

from . import safe_names
from .delivery import Delivery, unix_lines

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _host() -> str:
    # gethostname reads a kernel value (no DNS); the Maildir spec escapes "/" and ":" in it.
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072") or "localhost"


class MaildirOutput:
    name = "maildir"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._host = _host()
        self._counter = itertools.count(1)
        self._ready: set[Path] = set()

    def write(self, delivery: Delivery) -> None:
        data = unix_lines(delivery.raw)
        for rcpt in delivery.recipients:
            self.add(self.maildir(rcpt), data)

    def maildir(self, address: str) -> Path:
        """The Maildir of one recipient, with its tmp/new/cur created when missing."""
        path = safe_names.mailbox_dir(self.root, address)
        if path not in self._ready or not (path / "new").is_dir():
            for sub in ("tmp", "new", "cur"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            self._ready.add(path)
        return path

    def unique_name(self, size: int) -> str:
        now = time.time()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        return f"{seconds}.M{micros}P{os.getpid()}Q{next(self._counter)}.{self._host},S={size}"

    def add(self, maildir: Path, data: bytes) -> str:
        """Deliver `data` into `maildir`; returns the file name under ``new/``."""
        while True:
            unique = self.unique_name(len(data))
            tmp = maildir / "tmp" / unique
            try:
                fd = os.open(tmp, _CREATE, 0o666)
            except FileExistsError:
                continue  # a stale file of an earlier process with our pid: pick the next counter
            break
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            target = maildir / "new" / unique
            try:
                os.link(tmp, target)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    raise
                os.rename(tmp, target)  # no hard links on this file system
        finally:
            tmp.unlink(missing_ok=True)
        return unique
