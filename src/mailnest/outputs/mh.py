"""MH folders: ``DIR/<domain>/<user>/<n>``, one file per message per envelope recipient, numbered 1, 2, 3 ...

The layout is what Python's `mailbox.MH`, nmh and mutt read: every folder gets an (empty) ``.mh_sequences``,
and a message file appears under its number only once it is complete (written to a hidden temporary file,
then hard-linked to the first free number, so a reader never sees half a message and a number taken by
someone else, even another process, is skipped rather than overwritten). Numbering continues after the
highest number already in the folder, so a restart carries on where the last run stopped.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from . import safe_names
from .delivery import Delivery, unix_lines

SEQUENCES = ".mh_sequences"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class MHOutput:
    name = "mh"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Last number this process used per folder: saves a directory scan per message.
        self._last: dict[Path, int] = {}

    def write(self, delivery: Delivery) -> None:
        data = unix_lines(delivery.raw)
        for rcpt in delivery.recipients:
            self.add(self.folder(rcpt), data)

    def folder(self, address: str) -> Path:
        """The folder for one recipient, created (with its domain folder) when missing."""
        folder = safe_names.mailbox_dir(self.root, address)
        for path in (self.root, folder.parent, folder):
            if not path.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                _touch(path / SEQUENCES)
                self._last.pop(folder, None)  # removed and made again under us: number afresh
        return folder

    def add(self, folder: Path, data: bytes) -> int:
        """Store `data` as the next message of `folder`; returns its number."""
        tmp = folder / f".mailnest-{uuid.uuid4().hex}.tmp"
        _write_new(tmp, data)
        try:
            number = self._last.get(folder) or _highest(folder)
            while True:
                number += 1
                target = folder / str(number)
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                        raise
                    # No hard links here (some network and FAT file systems): create exclusively instead.
                    try:
                        _write_new(target, data)
                    except FileExistsError:
                        continue
                self._last[folder] = number
                return number
        finally:
            tmp.unlink(missing_ok=True)


def _highest(folder: Path) -> int:
    numbers = [int(entry) for entry in os.listdir(folder) if entry.isascii() and entry.isdigit()]
    return max(numbers, default=0)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, _CREATE, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _touch(path: Path) -> None:
    try:
        os.close(os.open(path, _CREATE, 0o666))
    except FileExistsError:
        pass
