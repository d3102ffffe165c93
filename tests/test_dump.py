"""`mailnest dump DIR`: every message as ID.eml, byte for byte, from a database file or over HTTP; safe file names
whatever IDs a server sends; exit 2 with one line for what cannot be used."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.conftest import send
from tests.test_cli import MAILNEST


def dump(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILNEST, "dump", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[ServerThread, Path, dict[str, bytes]]]:
    """A server on a database file holding three messages, and each message's raw bytes by ID."""
    db = tmp_path / "mail.db"
    with ServerThread(Config(db=db)) as server:
        for number, subject in enumerate(["one", "two", "Ünïcode three"]):
            send(server, subject=subject, to=[f"r{number}@example.com"])
        with httpx.Client(base_url=server.http_url) as api:
            ids = [m["ID"] for m in api.get("/api/v1/messages").json()["messages"]]
            raws = {message_id: api.get(f"/api/v1/message/{message_id}/raw").content for message_id in ids}
        yield server, db, raws


def dumped(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_dump_from_the_database_file(filled: tuple[ServerThread, Path, dict[str, bytes]], tmp_path: Path) -> None:
    _, db, raws = filled
    out = tmp_path / "out"
    result = dump(str(out), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert dumped(out) == {f"{message_id}.eml": raw for message_id, raw in raws.items()}
    assert f"3 messages from {db} into {out}" in result.stdout
    again = dump(str(out), "--db", str(db))  # a second run overwrites, it does not add copies
    assert again.returncode == 0 and len(dumped(out)) == 3


def test_dump_over_http(filled: tuple[ServerThread, Path, dict[str, bytes]], tmp_path: Path) -> None:
    server, _, raws = filled
    out = tmp_path / "over-http"
    result = dump(str(out), "--url", server.http_url)
    assert result.returncode == 0, result.stderr
    assert dumped(out) == {f"{message_id}.eml": raw for message_id, raw in raws.items()}
    host, port = urlsplit(server.http_url).hostname, urlsplit(server.http_url).port
    by_env = dump(str(tmp_path / "by-env"), env={"MAILNEST_HTTP": f"{host}:{port}", "PATH": "/usr/bin:/bin"})
    assert by_env.returncode == 0, by_env.stderr
    assert len(dumped(tmp_path / "by-env")) == 3


class _HostileAPI(BaseHTTPRequestHandler):
    """A server that answers the list call with IDs meant to escape the folder."""

    ids = ["../../escaped", "/etc/passwd-x", ".hidden", "a/b\\c", "", "same", "SAME", "ok-1"]

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/messages"):
            body = json.dumps({"total": len(self.ids), "messages": [{"ID": i} for i in self.ids]}).encode()
        else:
            body = b"Subject: from " + self.path.encode() + b"\r\n\r\nx\r\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_file_names_stay_inside_the_folder_whatever_the_ids(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HostileAPI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        out = tmp_path / "deep" / "out"
        (tmp_path / "deep").mkdir()
        result = dump(str(out), "--url", f"http://127.0.0.1:{httpd.server_address[1]}/")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 0, result.stderr
    names = sorted(path.name for path in out.iterdir())
    assert len(names) == len(_HostileAPI.ids)
    assert all(name.endswith(".eml") and not name.startswith(".") and "/" not in name and "\\" not in name
               for name in names), names
    assert len({name.lower() for name in names}) == len(names)  # "same" and "SAME" on a case-blind file system
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]  # nothing written beside the folder
    assert not (tmp_path / "escaped.eml").exists() and not Path("/etc/passwd-x.eml").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_what_cannot_be_used_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    cases = [
        ([str(tmp_path / "no" / "such" / "out"), "--db", str(tmp_path / "a-file")], "is not a SQLite database"),
        ([str(tmp_path / "no" / "such" / "out"), "--url", "http://127.0.0.1:1/"], "does not exist; create it first"),
        ([str(tmp_path / "a-file"), "--url", "http://127.0.0.1:1/"], "is a file, not a folder"),
        ([str(tmp_path / "out"), "--url", "ftp://example.com/"], "--url: 'ftp://example.com/' is not the base URL"),
        ([str(tmp_path / "out"), "--url", "http://:80/"], "is not the base URL"),
        ([str(tmp_path / "out"), "--url", f"http://127.0.0.1:{_free_port()}/"], "cannot reach"),
        ([str(tmp_path / "out"), "--db", str(tmp_path / "missing.db")], "no such database file"),
    ]
    for args, hint in cases:
        result = dump(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mailnest dump: error: ") and hint in lines[0], (args, lines)
    assert not (tmp_path / "missing.db").exists()  # dumping does not create an empty database
