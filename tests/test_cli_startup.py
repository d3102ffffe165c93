"""Starting `mailnest serve` wrong: every error is one line in one style, naming the option as the user spelt it,
exit 2 (1 for a port in use), never a traceback; switches in the environment say on or off; unknown MAILNEST_*
names and misspelt flags get a "did you mean"; the ports file goes away at exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import MAILNEST, serving, stop

QUIET = ["--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--imap", "off", "--pop3", "off"]


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`mailnest serve ARGS` that is expected to stop by itself (an error)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILNEST_") and k != "LOG_LEVEL"}
    return subprocess.run([*MAILNEST, "serve", *args], capture_output=True, text=True, timeout=30,
                          env={**environment, **(env or {})})


def one_clear_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailnest serve: error: "), result.stderr
    return lines[0]


def _unwritable_folder(tmp_path: Path) -> tuple[str, str]:
    """A database path in a folder this user cannot create files in, and what the error says about it. Root may
    write into any folder of its own, but not into /proc."""
    if os.geteuid() == 0:
        return "/proc/mailnest-test.db", "cannot open the database"
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    return str(folder / "mail.db"), "no write permission"


@pytest.mark.parametrize(("db", "hint"), [
    ("missing/folder/mail.db", "does not exist; create it first"),
    (".", "is a folder: name a database file in it"),
    ("notes.txt", "is not a SQLite database"),
    ("/proc/mailnest-test.db", "cannot open the database"),  # found only when SQLite tries, whoever runs it
    ("unwritable", ""),
])
def test_an_unusable_db_is_one_line_and_exit_2(tmp_path: Path, db: str, hint: str) -> None:
    (tmp_path / "notes.txt").write_text("just some notes\n")
    if db == "unwritable":
        path, hint = _unwritable_folder(tmp_path)
    else:
        path = db if db.startswith("/") else str(tmp_path / db)
    line = one_clear_line(serve(*QUIET, "--db", path))
    assert hint in line and "--db" in line, line
    line = one_clear_line(serve(*QUIET, env={"MAILNEST_DB": path}))
    assert "MAILNEST_DB" in line, line  # the user's own spelling


@pytest.mark.parametrize(("env", "named"), [
    ({"MAILNEST_LOG_LEVEL": "verbose"}, "MAILNEST_LOG_LEVEL: 'verbose' is not one of DEBUG, INFO, WARNING, ERROR"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL: 'verbose'"),
    ({"MAILNEST_SMTPS": "bad"}, "MAILNEST_SMTPS: 'bad' needs a port"),
    ({"MAILNEST_MAX_CONNECTIONS": "0"}, "MAILNEST_MAX_CONNECTIONS and --max-connections-per-client must be at "
                                        "least 1"),
    ({"MAILNEST_WEBROOT": "/a/../b"}, "MAILNEST_WEBROOT: '/a/../b' may not contain '..'"),
    ({"MAILNEST_SMTP_ALLOWED_RECIPIENTS": "(unclosed"}, "MAILNEST_SMTP_ALLOWED_RECIPIENTS: '(unclosed' is not a "
                                                         "regular expression"),
])
def test_errors_name_the_variable_the_user_set(env: dict[str, str], named: str) -> None:
    assert named in one_clear_line(serve(*QUIET, env=env))


@pytest.mark.parametrize(("args", "named"), [
    (["--smtp", "bad"], "mailnest serve: error: --smtp: 'bad' needs a port"),
    (["--max-connections", "0"], "--max-connections and --max-connections-per-client must be at least 1"),
    (["--webroot", "/mail//x"], "--webroot: '/mail//x' has an empty segment"),
    (["--webroot", "/mail/?x=1"], "no query or fragment"),
    (["--smtp-allowed-recipients", "x["], "--smtp-allowed-recipients: 'x[' is not a regular expression"),
    (["--smtp-ignore-rejected-recipients"], "needs --smtp-allowed-recipients"),
    (["--cors", "ftp://example.com"], "--cors: 'ftp://example.com' is not a host name or an origin"),
    (["--label", "two\nlines"], "--label: 'two\\nlines' must be one line"),
])
def test_errors_name_the_flag_the_user_gave(args: list[str], named: str) -> None:
    assert named in one_clear_line(serve(*QUIET, *args))


@pytest.mark.parametrize("variable", ["MAILNEST_REQUIRE_AUTH", "MAILNEST_TLS", "MAILNEST_PRINT"])
@pytest.mark.parametrize("value", ["enabled", "maybe", "2"])
def test_a_switch_that_is_neither_on_nor_off_is_refused(variable: str, value: str) -> None:
    """It used to be taken for off: MAILNEST_REQUIRE_AUTH=enabled started without requiring auth."""
    line = one_clear_line(serve(*QUIET, env={variable: value}))
    assert f"{variable}={value!r} is neither on nor off" in line, line


def test_switches_in_the_environment_take_on_and_off_words() -> None:
    from mailnest.cli import build_parser, config_from_args

    args = build_parser().parse_args(["serve"])
    for on in ("1", "true", "YES", " on "):
        assert config_from_args(args, {"MAILNEST_REQUIRE_AUTH": on}).require_auth
    for off in ("0", "false", "No", "off", ""):
        assert not config_from_args(args, {"MAILNEST_REQUIRE_AUTH": off}).require_auth
    assert not config_from_args(build_parser().parse_args(["serve"]), {}).require_auth


def test_an_unknown_variable_is_named_with_the_nearest_known_one(tmp_path: Path) -> None:
    env = {"MAILNEST_SMPT": "127.0.0.1:2525", "MAILNEST_NOT_A_THING": "1",
           "MAILNEST_MAX_RECIPIENTS": "5", "MAILNEST_ALLOWED_HOSTS": "a.test"}  # the last two are known
    with serving(tmp_path, env=env) as (proc, _):
        _, _, err = stop(proc)
    assert "MAILNEST_SMPT is not a mailnest setting, ignored; did you mean MAILNEST_SMTP?" in err, err
    assert "MAILNEST_NOT_A_THING is not a mailnest setting, ignored; `mailnest serve --help` lists" in err, err
    assert err.count("not a mailnest setting") == 2, err


@pytest.mark.parametrize(("command", "typo", "meant"), [
    (["serve"], "--smpt", "--smtp"), (["serve"], "--max-mesages", "--max-messages"),
    (["send", "--to", "a@example.com"], "--subjet", "--subject"), (["dump", "out"], "--ulr", "--url"),
])
def test_a_misspelt_flag_gets_the_subcommands_usage_and_a_suggestion(command: list[str], typo: str,
                                                                      meant: str) -> None:
    result = subprocess.run([*MAILNEST, *command, typo, "x"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: mailnest {command[0]} "), result.stderr
    assert f"mailnest {command[0]}: error: unrecognized arguments: {typo} x ({typo}: did you mean {meant}?)" in \
        result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_ports_file_is_removed_at_exit(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with serving(tmp_path) as (proc, ports):
            files = list(tmp_path.glob("ports-*.json"))
            assert len(files) == 1 and ports["smtp"] > 0
            code, _, err = stop(proc, sig)
        assert code == 0, err
        assert list(tmp_path.glob("ports-*.json")) == [], f"left behind after {sig!r}"


def _taken_port() -> socket.socket:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken


def test_a_port_in_use_names_the_flag_or_the_variable_to_change() -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        by_flag = serve("--smtp", f"127.0.0.1:{port}", "--http", "127.0.0.1:0", "--imap", "off", "--pop3", "off")
        by_env = serve("--http", "127.0.0.1:0", "--imap", "off", "--pop3", "off",
                       env={"MAILNEST_SMTP": f"127.0.0.1:{port}"})
        by_env_http = serve("--smtp", "127.0.0.1:0", "--imap", "off", "--pop3", "off",
                            env={"MAILNEST_HTTP": f"127.0.0.1:{port}"})
    line = one_clear_line(by_flag, 1)
    assert f"cannot listen for SMTP on 127.0.0.1:{port}" in line and "pick another with --smtp HOST:PORT" in line
    line = one_clear_line(by_env, 1)
    assert "pick another with MAILNEST_SMTP=HOST:PORT" in line and "--smtp" not in line, line
    line = one_clear_line(by_env_http, 1)
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in line and "MAILNEST_HTTP=HOST:PORT" in line, line


def test_a_default_port_in_use_says_how_to_move_every_listener() -> None:
    """The usual cause is a second mailnest: the message says both spellings and that all four ports move."""
    from mailnest.cli import _bind_hint, build_parser, resolve_serve

    resolved = resolve_serve(build_parser().parse_args(["serve"]), {})
    message = ("cannot listen for SMTP on 127.0.0.1:1025: address already in use (another program is using it; "
               "pick another with --smtp HOST:PORT, or port 0 for any free port)")
    hinted = _bind_hint(message, resolved)
    assert "MAILNEST_SMTP=HOST:PORT" in hinted and "--smtp :0 --http :0 --imap :0 --pop3 :0" in hinted
    chosen = resolve_serve(build_parser().parse_args(["serve", "--smtp", "127.0.0.1:1025"]), {})
    assert _bind_hint(message, chosen) == message  # the user chose the address: the flag they gave is named
