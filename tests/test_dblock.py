"""Issue 16 item 6: two servers on one SQLite file both started, and their live views diverged. The second is now
refused at start (exit 2, one line), whether it is a `mailnest serve` or an embedded server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import ConfigError
from tests.test_cli import MAILNEST, serving, stop

QUIET = ["--imap", "off", "--pop3", "off"]


def test_a_second_serve_on_the_same_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    with serving(tmp_path, "--db", str(db), *QUIET) as (first, ports):
        second = subprocess.run([*MAILNEST, "serve", "--db", str(db), "--smtp", "127.0.0.1:0", "--http",
                                 "127.0.0.1:0", *QUIET], capture_output=True, text=True, timeout=30)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().splitlines() == [
            f"mailnest serve: error: --db {db} is in use by another mailnest server; stop that one, or give this one "
            "another --db file (several servers share mail through a postgresql:// --db)"]
        # The variable's spelling, as every start-up error names what the user set.
        by_env = subprocess.run([*MAILNEST, "serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", *QUIET],
                                capture_output=True, text=True, timeout=30, env={**os.environ, "MAILNEST_DB": str(db)})
        assert by_env.returncode == 2 and "MAILNEST_DB" in by_env.stderr, by_env.stderr
        # The first is untouched by the attempts.
        assert httpx.get(f"http://127.0.0.1:{ports['http']}/readyz").status_code == 200
        code, _, err = stop(first)
        assert code == 0, err
    # Stopped, it lets go: the next server on the file starts and keeps the mail.
    with serving(tmp_path, "--db", str(db), *QUIET) as (again, _):
        assert stop(again)[0] == 0


def test_an_embedded_server_on_a_file_in_use_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    with ServerThread(Config(db=db)):
        second = ServerThread(Config(db=db))
        with pytest.raises(ConfigError, match="in use by another mailnest server"):
            second.start()
    with ServerThread(Config(db=db)) as third:  # released at stop
        assert third.server.store is not None


def test_a_killed_server_leaves_no_stale_lock(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    with serving(tmp_path, "--db", str(db), *QUIET) as (first, _):
        first.kill()
        first.wait(10)
    with serving(tmp_path, "--db", str(db), *QUIET) as (again, _):
        assert stop(again)[0] == 0
