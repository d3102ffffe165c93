"""The README's "Running a team instance", followed literally: its psql lines, its three nodes, its HAProxy
configuration, its check through the balancer, a node killed behind the balancer, and its backup and restore.

The one change: the README's database URL names port 5432, and the test's throwaway PostgreSQL listens on a free
port, so that number is replaced in `MAILNEST_DB`. psql and pg_dump reach the cluster through PGHOST/PGPORT/
PGUSER, as a superuser's shell would."""

from __future__ import annotations

import imaplib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_tool

README = Path(__file__).resolve().parents[2] / "README.md"
MAILNEST = str(Path(sys.executable).with_name("mailnest"))


def section() -> str:
    text = README.read_text()
    start = text.index("## Running a team instance")
    return text[start:text.index("\n## ", start + 1)]


def blocks() -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", section(), re.S)


def lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def argv(line: str) -> list[str]:
    """A README command line as arguments; a trailing `&` (run in the background) is the test's Popen."""
    words = shlex.split(line.rstrip().removesuffix("&"))
    return [MAILNEST, *words[1:]] if words[0] == "mailnest" else words


def imap_uidvalidity(serve_line: str) -> int:
    host, port = re.search(r"--imap (\S+):(\d+)", serve_line).groups()  # type: ignore[union-attr]
    with imaplib.IMAP4(host, int(port), timeout=15) as imap:
        imap.login("*", "x")
        _, data = imap.status("INBOX", "(UIDVALIDITY)")
    return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))  # type: ignore[union-attr,index]


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_the_team_instance_section_works_as_printed(postgres_server, tmp_path: Path,
                                                    background: list[subprocess.Popen[bytes]]) -> None:
    for tool in ("psql", "haproxy", "curl", "pg_dump", "pg_restore"):
        require_tool(tool)
    database, start_nodes, haproxy_cfg, check, backup = blocks()
    shell = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(postgres_server.port), "PGUSER": "postgres"}

    # 1. The database: the README's psql lines, as a superuser.
    for line in lines(database):
        subprocess.run(line, shell=True, check=True, env=shell, cwd=tmp_path, capture_output=True, timeout=60)

    # 2. Three nodes, as the non-superuser role the README made (it must be able to create the schema and pg_trgm).
    export, *serves = lines(start_nodes)
    name, _, url = export.removeprefix("export ").partition("=")
    assert name == "MAILNEST_DB" and ":5432/" in url
    env = {**shell, "MAILNEST_DB": url.replace(":5432/", f":{postgres_server.port}/")}
    nodes = []
    for line in serves:
        logfile = (tmp_path / f"node{len(nodes) + 1}.log").open("wb")
        nodes.append(subprocess.Popen(argv(line), env=env, cwd=tmp_path, stdout=logfile, stderr=subprocess.STDOUT))
        background.append(nodes[-1])
    http = [re.search(r"--http (\S+)", line).group(1) for line in serves]  # type: ignore[union-attr]
    for address in http:
        wait_until(lambda a=address: ready(f"http://{a}/readyz"), f"the node on {address}")

    # The password stays out of the API and the logs.
    info = httpx.get(f"http://{http[0]}/api/v1/info", timeout=10).json()
    assert info["Database"] == env["MAILNEST_DB"].replace(":change-me@", ":***@"), info

    # 3. HAProxy with the README's configuration, then the README's check through it.
    assert haproxy_cfg.startswith("# haproxy.cfg\n")
    (tmp_path / "haproxy.cfg").write_text(haproxy_cfg)
    commands = lines(check)
    assert commands[0].startswith("haproxy ")
    balancer = subprocess.Popen(argv(commands[0]), cwd=tmp_path, stdout=(tmp_path / "haproxy.log").open("wb"),
                                stderr=subprocess.STDOUT)
    background.append(balancer)
    front = re.search(r"bind (\S+:8025)", haproxy_cfg).group(1)  # type: ignore[union-attr]
    wait_until(lambda: ready(f"http://{front}/readyz"), "HAProxy's checks to pass")
    subprocess.run(argv(commands[1]), env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    found = subprocess.run(argv(commands[2]), cwd=tmp_path, check=True, capture_output=True, text=True, timeout=60)
    assert '"Subject":"through the balancer"' in found.stdout.replace(": ", ":"), found.stdout

    # A node killed behind the balancer: the next messages still go through, and every node has them all.
    nodes[0].send_signal(signal.SIGKILL)
    nodes[0].wait(10)
    smtp = re.search(r"bind (\S+):1025", haproxy_cfg).group(1)  # type: ignore[union-attr]
    for i in range(3):
        subprocess.run([MAILNEST, "send", "--smtp", f"{smtp}:1025", "--to", "dev@example.com", "--subject",
                        f"after the kill {i}"], env=env, check=True, capture_output=True, timeout=60)
    for address in http[1:]:
        listed = httpx.get(f"http://{address}/api/v1/messages", timeout=10).json()
        assert listed["messages_count"] == 4, (address, listed)

    # Backups: the README's pg_dump while the nodes run, then its pg_restore with the nodes stopped.
    dump, *restore = lines(backup)
    uidvalidity = imap_uidvalidity(serves[1])
    subprocess.run(dump, shell=True, check=True, env=env, cwd=tmp_path, capture_output=True, timeout=60)
    subprocess.run([MAILNEST, "send", "--smtp", f"{smtp}:1025", "--to", "dev@example.com", "--subject",
                    "after the backup"], env=env, check=True, capture_output=True, timeout=60)
    for proc in nodes[1:]:
        proc.terminate()
        proc.wait(15)
    # Restored into a new, empty database (the hard case: no pg_trgm there yet), owned by the README's role.
    fresh = postgres_server.create_database()
    name = fresh.rsplit("/", 1)[1]
    postgres_server.psql(f'ALTER DATABASE "{name}" OWNER TO mailnest')
    env["MAILNEST_DB"] = env["MAILNEST_DB"].rsplit("/", 1)[0] + "/" + name
    for line in restore:
        result = subprocess.run(line, shell=True, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
    log = (tmp_path / "node-restored.log").open("wb")
    restarted = subprocess.Popen(argv(serves[1]), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    background.append(restarted)
    wait_until(lambda: ready(f"http://{http[1]}/readyz"), "the restarted node")
    assert imap_uidvalidity(serves[1]) != uidvalidity  # IMAP clients resync: UIDs after the backup may come again
    subjects = sorted(m["Subject"] for m in httpx.get(f"http://{http[1]}/api/v1/messages", timeout=10)
                      .json()["messages"])
    assert subjects == ["after the kill 0", "after the kill 1", "after the kill 2", "through the balancer"]
    for path in tmp_path.glob("*.log"):
        text = path.read_text(errors="replace")
        assert "Traceback" not in text and "change-me" not in text, text
