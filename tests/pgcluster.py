"""A throwaway PostgreSQL cluster for the test session: initdb into a temporary directory, pg_ctl start on
127.0.0.1 and a free port, stopped and deleted at the end.

`postgres_server` is session-scoped (with pytest-xdist each worker process has its own session, so its own
cluster). Its `.dsn` is the superuser URL of the `postgres` database; `.create_database()` makes a new empty
database, so each test can have its own. Missing PostgreSQL skips outside CI and fails in CI (CI=true), since
`.ci/run` installs the Debian package `postgresql`. postgres refuses to run as root, so under root (as in CI)
initdb and the server run as `nobody`, owning the temporary directory.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
_PACKAGE_HINT = "install the Debian package `postgresql` (apt-get install postgresql)"
_UNPRIVILEGED = ("nobody", "nogroup")


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb, else the directory of initdb on PATH."""
    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One running cluster. `dsn` is the superuser URL of its `postgres` database."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.sockets = root / "sockets"
        self.logfile = root / "postgres.log"
        self.port = 0
        self.user = "postgres"
        self._names = itertools.count(1)
        self._as_nobody = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_nobody:
            user, group = _UNPRIVILEGED
            command = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups", *command]
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=self.root, timeout=120)
        if check and result.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stdout}\n"
                               f"{result.stderr}\n{log}")
        return result

    def init(self) -> None:
        self.sockets.mkdir()
        if self._as_nobody:
            user, group = _UNPRIVILEGED
            for path in (self.root, self.sockets):
                shutil.chown(path, user, group)
        self._run("initdb", "-D", str(self.datadir), "-U", self.user, "-E", "UTF8", "--locale=C.UTF-8",
                  "--auth-local=trust", "--auth-host=reject")
        # trust for 127.0.0.1 only: no other host, and no IPv6 line, may log in
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/pgcluster.py\nlisten_addresses = '127.0.0.1'\nfsync = on\n"
                       "shared_buffers = 16MB\nmax_connections = 200\nunix_socket_directories = "
                       f"'{self.sockets}'\nlogging_collector = off\n")

    def start(self, *, same_port: bool = False) -> None:
        """pg_ctl start on a free port (another process may take a port between the probe and the bind: retry),
        or `same_port` again after stop(), as a restarted server comes back where its clients expect it."""
        for _ in range(1 if same_port else 5):
            if not same_port:
                self.port = _free_port()
            result = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir), "-l",
                               str(self.logfile), "-o", f"-p {self.port}", check=False)
            if result.returncode == 0:
                return
        raise RuntimeError(f"pg_ctl start failed: {result.stdout}\n{result.stderr}\n"
                           f"{self.logfile.read_text(errors='replace')[-3000:]}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.datadir), check=False)

    def restart(self) -> None:
        """pg_ctl restart on the same port (`-m fast`: clients are disconnected, as in a real restart)."""
        self._run("pg_ctl", "restart", "-w", "-t", "60", "-m", "fast", "-D", str(self.datadir), "-l",
                  str(self.logfile), "-o", f"-p {self.port}")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser through psql (no Python driver needed); returns its unaligned output."""
        result = self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                           str(self.port), "-U", self.user, "-d", database, "-c", sql)
        return result.stdout.strip()

    def create_database(self) -> str:
        """A new empty database; returns its postgresql:// URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        reason = f"PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH): {_PACKAGE_HINT}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="mailnest-pg-"))
    server = PostgresServer(bindir, root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate" if not server.port else "fast")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL cluster (see the module docstring)."""
    yield from start_server()

