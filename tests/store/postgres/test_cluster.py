"""The throwaway cluster fixture itself: a real server, a database per caller, trust on 127.0.0.1 only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.pgcluster import PostgresServer


def test_the_cluster_answers_and_gives_each_caller_a_fresh_database(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_user, inet_server_addr()::text, current_setting('fsync')").fetchone()
        assert row == ("postgres", "127.0.0.1/32", "on")
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second and first.startswith("postgresql://")
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
    with psycopg.connect(second, autocommit=True) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)


def test_the_server_runs_unprivileged_in_its_own_directory(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        datadir = conn.execute("SHOW data_directory").fetchone()
        sockets = conn.execute("SHOW unix_socket_directories").fetchone()
    assert datadir is not None and sockets is not None
    assert datadir[0] == str(postgres_server.datadir) and sockets[0] == str(postgres_server.sockets)
    pid = int((postgres_server.datadir / "postmaster.pid").read_text().split()[0])
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = int(next(line for line in status if line.startswith("Uid:")).split()[1])
    assert uid != 0


_WITHOUT_POSTGRES = '''
import tests.pgcluster as pgcluster
from tests.pgcluster import postgres_server  # noqa: F401

pgcluster.find_bindir = lambda: None  # as on a machine without the package


def test_needs_postgres(postgres_server):
    pass
'''


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_missing_postgresql_skips_outside_ci_and_fails_in_ci(tmp_path: Path, ci: str, outcome: str) -> None:
    test = tmp_path / "test_without_postgres.py"
    test.write_text(_WITHOUT_POSTGRES)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(Path(__file__).parents[3])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:randomly", "-p", "no:cacheprovider",
                             str(test)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert outcome in result.stdout, result.stdout
    assert "install the Debian package `postgresql`" in result.stdout
