"""Helpers for the output tests: a running mailnest with its outputs, hostile addresses, mutt as a reader."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailnest import Config, ServerThread
from mailnest.models import Envelope
from mailnest.outputs import Delivery, OutputDispatcher
from tests.conftest import require_tool

# Every address that must not write outside an output folder. Absolute paths point into the test's own
# tmp_path (see hostile_addresses) so a bug shows up as a stray file there, not as damage to the machine.
HOSTILE = [
    "../../etc/passwd@x",
    "a/b@c",
    "bob@..",
    "..@..",
    ".@.",
    "bob@.",
    "../@../",
    "x\x00y@example.com",
    "nul\x00@\x00",
    "esc\x1b[31m@ex\x07ample.com",
    "new\r\nline@example.com",
    "tab\tname@example.com",
    "C:\\Windows\\win.ini@x",
    "\\\\server\\share@x",
    "CON@example.com",
    "nul.txt@aux",
    "com1@lpt9",
    "PRN@CON.",
    "a" * 300 + "@example.com",
    "bob@" + "d" * 300 + ".com",
    "x@y" * 200,
    "",
    "@",
    "%2e%2e%2f@%2e%2e",
    "~root@x",
    "spaces and quotes\"@x",
    ".hidden@example.com",
    "ümlaut@bücher.de",
]


def hostile_addresses(tmp_path: Path) -> list[str]:
    return [*HOSTILE, f"{tmp_path}/escaped@x", f"x@{tmp_path}/escaped", f"{tmp_path}/escaped"]


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file() or p.is_symlink()}


def delivery(raw: bytes, rcpts: list[str] | tuple[str, ...], *, mail_from: str = "sender@example.com",
             id: str = "test-id", peer: str = "127.0.0.1:4321") -> Delivery:
    return Delivery(id, raw, Envelope(mail_from=mail_from, rcpt_tos=tuple(rcpts), helo="client.test", peer=peer))


def message(subject: str, body: str = "Hello.\r\n", to: str = "bart@example.com") -> bytes:
    return (f"From: sender@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(subject))}@test>\r\n\r\n{body}").encode()


@contextmanager
def running(config: Config) -> Iterator[tuple[ServerThread, OutputDispatcher]]:
    """mailnest with its outputs: the server and the dispatcher runtime.py built for it."""
    with ServerThread(config) as server:
        yield server, server.server.outputs


def flush(server: ServerThread, dispatcher: OutputDispatcher) -> None:
    server.call(dispatcher.flush())


SEPARATOR = b"=====MUTT-MESSAGE-BOUNDARY====="


def mutt_messages(mailbox: Path, home: Path) -> list[bytes]:
    """Every message of `mailbox` (mbox file or MH/Maildir folder) as mutt reads it, piped out raw.

    mutt needs a terminal: `script` gives it one; the pushed keys tag all, pipe each, then quit."""
    require_tool("mutt")
    require_tool("script")
    (home / "Mail").mkdir(parents=True, exist_ok=True)  # else mutt first asks whether to create it
    out = home / "mutt-out"
    out.unlink(missing_ok=True)
    muttrc = home / "muttrc"
    muttrc.write_text(
        "set pipe_split=yes\nset pipe_decode=no\nset wait_key=no\nset quit=yes\nset auto_tag=yes\n"
        "set sort=mailbox-order\nset mark_old=no\nset move=no\nset check_mbox_size=no\n"
        f'set pipe_sep="\\n{SEPARATOR.decode()}\\n"\n'
    )
    keys = f"<tag-pattern>~A<enter><pipe-entry>cat >> {out}<enter><quit>"
    command = f"mutt -n -F {muttrc} -R -f {mailbox} -e 'push \"{keys}\"'"
    env = {**os.environ, "HOME": str(home), "TERM": "xterm", "MAIL": str(mailbox)}
    # stdin stays an open pipe: at end of input `script` would hang up on mutt half-way.
    with subprocess.Popen(["script", "-qec", command, "/dev/null"], env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL) as process:
        try:
            assert process.wait(timeout=60) == 0, "mutt failed"
        finally:
            process.kill()
    if not out.exists():
        return []
    return [m.strip(b"\n") for m in out.read_bytes().split(b"\n" + SEPARATOR + b"\n") if m.strip(b"\n")]


@contextmanager
def hooked_server(*handlers: object) -> Iterator[tuple[ServerThread, int]]:
    """mailnest with custom handlers (Config.handlers); (server, SMTP port)."""
    with ServerThread(Config(handlers=tuple(handlers))) as server:
        yield server, server.smtp_port
