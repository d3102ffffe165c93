"""The container image: the repository's Dockerfile built with podman on a Debian base made here, then run.

No base image can be pulled here, so the base comes from Debian's packages (debian_base.py, cached between runs)
and replaces the Dockerfile's `FROM` through its BASE build argument; conftest.py builds the image once per run.
It runs under `podman run` with the image's own entrypoint, command, user, environment and volume (podman.py says
which runtime options this sandbox needs): mail goes in over SMTP, comes out over HTTP, IMAP and POP3, the image's
HEALTHCHECK command says when it is ready (and fails where no mailnest answers), and SIGTERM to PID 1 stops it
cleanly with the mail kept in the /data volume for the next container. An app container reaching it by its
service name is test_compose.py's.
"""

from __future__ import annotations

import imaplib
import json
import poplib
import smtplib
import tomllib
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

import mailnest
from tests.container import podman as pm
from tests.container.conftest import Image

# A cold cache: debootstrap, then the first build downloads from PyPI. One xdist group: see conftest.py.
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("container")]

LISTENERS = {"MAILNEST_SMTP": 1025, "MAILNEST_HTTP": 8025, "MAILNEST_IMAP": 1143, "MAILNEST_POP3": 1110}
TEST_ONLY = ("pytest", "mypy", "hypothesis", "schemathesis", "playwright", "ruff", "pip", "setuptools")
INCLUDED = ("psycopg", "psycopg_pool")  # EXTRAS=postgres, the default: the team store


@pytest.fixture
def volume() -> Iterator[str]:
    name = pm.unique_name("data")
    pm.podman("volume", "create", name)
    yield name
    pm.podman("volume", "rm", "--force", name, check=False)


def _message(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "app@example.test"
    message["To"] = "someone@example.test"
    message["Subject"] = subject
    message.set_content("Sent into the container.\n")
    return message


def test_the_image_is_what_the_dockerfile_promises(image: Image) -> None:
    info = pm.inspect_image(image.tag)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert set(config["ExposedPorts"]) == {f"{port}/tcp" for port in LISTENERS.values()}
    assert set(config["Volumes"]) == {"/data"}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert {name: env.get(name) for name in LISTENERS} == {n: f"0.0.0.0:{p}" for n, p in LISTENERS.items()}
    assert env["MAILNEST_DB"] == "/data/mailnest.db"
    assert info["Healthcheck"]["Test"] == ["CMD", "mailnest", "readyz"]
    assert (config["Entrypoint"], config["Cmd"], config["StopSignal"]) == (["mailnest"], ["serve"], "SIGTERM")

    # What is inside: mailnest (this checkout's) and its dependencies with the team store's, run as the non-root
    # user; no test extras, no pip or build tools.
    probe = ("import hashlib, importlib.util, json, os, pathlib, mailnest; "
             "package = pathlib.Path(mailnest.__path__[0]); print(json.dumps({'uid': os.getuid(), 'found': "
             f"[m for m in {[*TEST_ONLY, *INCLUDED]!r} if importlib.util.find_spec(m)], "
             "'version': mailnest.__version__, 'code': hashlib.sha256(b''.join("
             "bytes(str(p.relative_to(package)), 'utf-8') + b'\\0' + p.read_bytes() "
             "for p in sorted(package.rglob('*.py')))).hexdigest()}))")
    result = pm.podman("run", "--rm", *image.run_options, "--entrypoint", "python3", image.tag, "-c", probe)
    inside = json.loads(result.stdout)
    assert inside["uid"] == 10001
    assert inside["found"] == list(INCLUDED)
    assert (inside["version"], inside["code"]) == (mailnest.__version__, image.code_digest)

    # The HEALTHCHECK command fails where no mailnest answers (here: a container that runs only the check).
    kind, program, *check_args = info["Healthcheck"]["Test"]
    assert kind == "CMD"
    lonely = pm.podman("run", "--rm", *image.run_options, "--entrypoint", program, image.tag, *check_args,
                       check=False)
    assert lonely.returncode == 1, lonely.stdout + lonely.stderr
    assert "http://127.0.0.1:8025/readyz" in lonely.stderr


def test_mail_in_over_smtp_out_over_http_imap_and_pop3_and_kept_in_the_volume(image: Image, volume: str) -> None:
    subject = f"into the container {uuid.uuid4().hex[:8]}"
    first = pm.Container(image.tag, image.run_options, volume=volume,
                         env={"MAILNEST_ALLOWED_HOST": "mail.example.test"})
    try:
        first.wait_healthy()
        assert first.exec("cat", "/proc/1/cmdline").stdout.split("\0")[1:3] == ["/opt/mailnest-app/bin/mailnest",
                                                                                "serve"]
        with smtplib.SMTP("127.0.0.1", first.port(1025), timeout=30) as smtp:
            smtp.send_message(_message(subject))
        api = f"http://127.0.0.1:{first.port(8025)}"
        listed = httpx.get(f"{api}/api/v1/messages", timeout=30).json()
        assert [m["Subject"] for m in listed["messages"]] == [subject]
        raw = httpx.get(f"{api}/api/v1/message/{listed['messages'][0]['ID']}/raw", timeout=30)
        assert b"Sent into the container." in raw.content

        # The Host check stays on: a name given in MAILNEST_ALLOWED_HOST is served, another is refused.
        allowed = httpx.get(f"{api}/api/v1/messages", headers={"Host": "mail.example.test"}, timeout=30)
        assert allowed.status_code == 200
        other = httpx.get(f"{api}/api/v1/messages", headers={"Host": "elsewhere.example.test"}, timeout=30)
        assert other.status_code == 400
        assert "--allowed-host elsewhere.example.test" in other.json()["Error"]

        imap = imaplib.IMAP4("127.0.0.1", first.port(1143), timeout=30)
        try:
            imap.login("someone@example.test", "any")
            assert imap.select("INBOX", readonly=True) == ("OK", [b"1"])
        finally:
            imap.logout()
        pop = poplib.POP3("127.0.0.1", first.port(1110), timeout=30)
        try:
            pop.user("someone@example.test")
            pop.pass_("any")
            assert pop.stat()[0] == 1
        finally:
            pop.quit()

        # PID 1 handles SIGTERM itself: a process without a handler there would ignore it and never exit.
        code, _seconds = first.terminate()
        assert code == 0, first.logs()[-3000:]
        assert "mailnest stopped" in first.logs()
    finally:
        first.remove()

    second = pm.Container(image.tag, image.run_options, volume=volume)
    try:
        second.wait_healthy()
        listed = httpx.get(f"http://127.0.0.1:{second.port(8025)}/api/v1/messages", timeout=30).json()
        assert [m["Subject"] for m in listed["messages"]] == [subject]
        assert second.terminate()[0] == 0
    finally:
        second.remove()


def test_an_unknown_extra_is_refused_by_name(image: Image) -> None:
    """EXTRAS picks the package's optional parts; a misspelt one stops the build with the names there are."""
    result = pm.podman("build", "--isolation", "chroot", "--build-arg", f"BASE={image.base}", "--build-arg",
                       "EXTRAS=postgress", "--tag", pm.unique_tag("mailnest-test-refused"), str(pm.REPO),
                       check=False, timeout=pm.BUILD_TIMEOUT)
    assert result.returncode != 0
    extras = sorted(tomllib.loads((pm.REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert f"EXTRAS: no extra named ['postgress']; the extras are {extras}" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
