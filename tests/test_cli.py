"""The `mailnest` command, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

MAILNEST = [sys.executable, "-m", "mailnest.cli"]


@contextmanager
def serving(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, dict]]:
    ports_file = tmp_path / f"ports-{time.monotonic_ns()}.json"
    proc = subprocess.Popen([*MAILNEST, "serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0",
                             "--imap", "127.0.0.1:0", "--pop3", "127.0.0.1:0", "--ports-file", str(ports_file), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 20
        while not (ports_file.exists() and ports_file.read_text().endswith("\n")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start: {proc.communicate(timeout=5)}")
            time.sleep(0.02)
        yield proc, json.loads(ports_file.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    return proc.returncode, out, err


def run_send(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MAILNEST, "send", "--smtp", f"127.0.0.1:{port}", *args], capture_output=True, text=True,
                          timeout=30)


def test_serve_send_and_stop_cleanly_on_sigterm(tmp_path: Path) -> None:
    with serving(tmp_path) as (proc, ports):
        attachment = tmp_path / "note.txt"
        attachment.write_text("attached words")
        result = run_send(ports["smtp"], "--to", "dev@example.com", "--subject", "cli check", "--body", "hi",
                          "--attach", str(attachment))
        assert result.returncode == 0, result.stderr
        message = httpx.get(f"http://127.0.0.1:{ports['http']}/api/v1/message/latest").json()
        assert message["Subject"] == "cli check"
        assert message["Attachments"][0]["FileName"] == "note.txt"
        headers = httpx.get(f"http://127.0.0.1:{ports['http']}/api/v1/message/latest/headers").json()
        assert headers["Date"] and headers["Message-Id"], headers  # RFC 5322 asks for both (Go's spelling)
        code, _, err = stop(proc)
    assert code == 0
    assert "mailnest stopped" in err
    assert "dev@example.com" in err  # the one-line delivery log
    assert "ready" in err


def test_ctrl_c_exits_zero(tmp_path: Path) -> None:
    with serving(tmp_path) as (proc, _):
        code, _, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err


def test_db_keeps_messages_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    with serving(tmp_path, "--db", str(db)) as (proc, ports):
        assert run_send(ports["smtp"], "--to", "keep@example.com", "--subject", "persisted").returncode == 0
        first = httpx.get(f"http://127.0.0.1:{ports['http']}/api/v1/messages").json()
        stop(proc)
    with serving(tmp_path, "--db", str(db)) as (proc, ports):
        again = httpx.get(f"http://127.0.0.1:{ports['http']}/api/v1/messages").json()
        assert again["total"] == 1
        assert again["messages"][0]["ID"] == first["messages"][0]["ID"]
        assert again["messages"][0]["Subject"] == "persisted"
        stop(proc)


def test_environment_variables_configure_serve(tmp_path: Path) -> None:
    with serving(tmp_path, env={"MAILNEST_MAX_RECIPIENTS": "1", "LOG_LEVEL": "WARNING"}) as (proc, ports):
        result = run_send(ports["smtp"], "--to", "a@example.com", "--to", "b@example.com")
        assert result.returncode == 1
        assert "452" in result.stderr or "Too many" in result.stderr
        code, _, err = stop(proc)
    assert code == 0
    assert "INFO" not in err


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*MAILNEST, "serve", "--smtp", f"127.0.0.1:{port}", "--http", "127.0.0.1:0",
                                 "--imap", "off", "--pop3", "off"],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen for SMTP on 127.0.0.1:{port}" in result.stderr
    assert "port 0" in result.stderr


def test_help_explains_every_option() -> None:
    out = subprocess.run([*MAILNEST, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--smtp", "--http", "--db", "--max-messages", "--max-age", "--max-message-size",
                   "--max-recipients", "--print", "--ports-file", "--log-level", "MAILNEST_"):
        assert option in out
    top = subprocess.run([*MAILNEST, "--help"], capture_output=True, text=True, check=True).stdout
    assert "serve" in top and "send" in top


def test_bad_values_are_explained() -> None:
    result = subprocess.run([*MAILNEST, "serve", "--smtp", "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr or "port" in result.stderr
    result = subprocess.run([*MAILNEST, "serve", "--max-age", "7 days"], capture_output=True, text=True)
    assert result.returncode == 2 and "7d" in result.stderr
    result = subprocess.run([*MAILNEST, "serve"], capture_output=True, text=True,
                            env={**os.environ, "MAILNEST_SMTP": "bad"})
    assert result.returncode == 2 and "MAILNEST_" in result.stderr


def test_send_to_nothing_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_send(port, "--to", "x@example.com")
    assert result.returncode == 1
    assert "mailnest serve" in result.stderr


def test_require_tls_needs_a_certificate_from_any_tls_option() -> None:
    from mailnest.cli import build_parser, config_from_args
    from mailnest.config import ConfigError

    parser = build_parser()
    for implied in (["--tls"], ["--http-tls"], ["--smtps", "127.0.0.1:0"], ["--imaps", "127.0.0.1:0"]):
        assert config_from_args(parser.parse_args(["serve", "--require-tls", *implied])).require_tls, implied
    with pytest.raises(ConfigError, match="--require-tls needs TLS"):
        config_from_args(parser.parse_args(["serve", "--require-tls"]))


def test_limits_options_are_parsed_and_bad_ones_explained() -> None:
    from mailnest.cli import build_parser, config_from_args

    args = build_parser().parse_args([
        "serve", "--max-connections", "40", "--max-connections-per-client", "7", "--command-timeout", "2s",
        "--data-timeout", "1m", "--smtp-timeout", "30", "--idle-timeout", "5m", "--max-event-queue", "9",
        "--allowed-host", "mail.test", "--allowed-host", "staging.test"])
    config = config_from_args(args)
    assert (config.max_connections, config.max_connections_per_client, config.max_event_queue) == (40, 7, 9)
    assert (config.command_timeout, config.data_timeout, config.smtp_timeout, config.idle_timeout) == (
        2.0, 60.0, 30.0, 300.0)
    assert config.allowed_hosts == ("mail.test", "staging.test")
    for bad, hint in ((["--command-timeout", "0"], "more than 0"), (["--data-timeout", "soon"], "duration"),
                      (["--max-connections", "0"], "at least 1"), (["--max-event-queue", "x"], "whole number")):
        result = subprocess.run([*MAILNEST, "serve", *bad], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (bad, result.stderr)
        assert hint in result.stderr and "Traceback" not in result.stderr, (bad, result.stderr)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/limits")
def test_serve_raises_a_low_open_file_limit(tmp_path: Path) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256
    if hard != resource.RLIM_INFINITY and hard <= low:
        pytest.fail(f"the hard open-file limit {hard} leaves nothing to raise to")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    ports_file = tmp_path / "ports.json"
    proc = subprocess.Popen([*MAILNEST, "serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--imap", "off",
                             "--pop3", "off", "--ports-file", str(ports_file)], preexec_fn=lower,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (ports_file.exists() and ports_file.read_text().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
            time.sleep(0.02)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert int(line.split()[3]) > low, line
    finally:
        proc.kill()
        proc.wait()


def test_db_takes_a_postgresql_url_and_tenant_names_are_checked() -> None:
    from mailnest.cli import build_parser, config_from_args

    parser = build_parser()
    config = config_from_args(parser.parse_args(
        ["serve", "--db", "postgresql://team:secret@db.internal:5432/mail", "--tenant", "billing_2"]))
    assert config.db == "postgresql://team:secret@db.internal:5432/mail" and config.tenant == "billing_2"
    assert config_from_args(parser.parse_args(["serve", "--db", "mail.db"])).db == Path("mail.db")
    for bad, hint in ((["--tenant", "billing"], "needs a PostgreSQL --db"),
                      (["--db", "postgresql://h/mail", "--tenant", "Billing; DROP"], "lower-case letters")):
        result = subprocess.run([*MAILNEST, "serve", *bad], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (bad, result.stderr)
        assert hint in result.stderr and "Traceback" not in result.stderr, (bad, result.stderr)
    result = subprocess.run([*MAILNEST, "serve"], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "MAILNEST_DB": "postgresql://h/mail", "MAILNEST_TENANT": "-x"})
    # The variable the user set is named, not the flag they did not use.
    assert result.returncode == 2 and "MAILNEST_TENANT '-x'" in result.stderr, result.stderr


def test_a_database_url_is_shown_without_its_password() -> None:
    from mailnest.store.select import shown

    assert shown("postgresql://team:s3cret@db:5432/mail") == "postgresql://team:***@db:5432/mail"
    assert shown("postgres://db/mail") == "postgres://db/mail"
    assert shown(Path("mail.db")) == "mail.db" and shown(None) == ""


def test_a_tenant_name_with_a_trailing_newline_is_refused() -> None:
    """`$` in a pattern also matches before a final newline: the check is a full match, so "abc\\n" is refused
    before anything connects (it used to create a schema whose name broke every pooled connection)."""
    from mailnest.config import Config, ConfigError

    with pytest.raises(ConfigError, match="lower-case letters"):
        Config(db="postgresql://h/mail", tenant="abc\n")
