"""Dovecot, the reference IMAP server, run preauthenticated on a pipe over a throwaway maildir.

No daemon and no network: `/usr/lib/dovecot/imap` speaks IMAP on stdin/stdout (imaplib.IMAP4_stream). Dovecot
refuses to serve mail as root, so under root it runs as `nobody` (setpriv) with its home owned by nobody.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

DOVECOT_IMAP = "/usr/lib/dovecot/imap"
_CONFIG = """\
mail_location = maildir:~/Maildir
ssl = no
log_path = /dev/null
info_log_path = /dev/null
mail_fsync = never
namespace inbox {
  inbox = yes
  separator = /
}
"""


def dovecot_available() -> bool:
    return os.access(DOVECOT_IMAP, os.X_OK) and (os.geteuid() != 0 or shutil.which("setpriv") is not None)


class Dovecot:
    """One maildir; every `client()` is a fresh Dovecot process (a new IMAP session) over it."""

    def __init__(self) -> None:
        # mkdtemp gives a private, unique directory; it cannot live under pytest's tmp_path because that tree
        # is only readable by root while Dovecot may run as nobody.
        self.home = Path(tempfile.mkdtemp(prefix="mailnest-dovecot-"))
        for sub in ("cur", "new", "tmp"):
            (self.home / "Maildir" / sub).mkdir(parents=True)
        (self.home / "dovecot.conf").write_text(_CONFIG)
        prefix = ""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in [self.home, *self.home.rglob("*")]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            prefix = f"setpriv --reuid={nobody.pw_uid} --regid={nobody.pw_gid} --clear-groups "
        home = shlex.quote(str(self.home))
        self.command = (f"{prefix}env -i HOME={home} USER=mailnest TZ=UTC {DOVECOT_IMAP} "
                        f"-c {home}/dovecot.conf 2>/dev/null")

    def client(self) -> imaplib.IMAP4_stream:
        return imaplib.IMAP4_stream(self.command)

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4_stream]:
        client = self.client()
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
