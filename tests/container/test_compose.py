"""compose.yaml, run by podman-compose: mailnest starts, the app container sends one message to it by its service
name, and the message is there to read over HTTP.

The file is run as printed but for three things, each checked to be there before it is changed: the published
ports become ports podman picks (a test binds no fixed port), the build context is the repository's absolute path
(the copy lives in a temporary directory), and the image tag is one of the test's own (not the user's
`mailnest`). That tag names the image conftest.py built, so `up` (which builds only a missing image) starts it
without a second build; what compose would build is checked instead, from `--dry-run build`: this repository's
Dockerfile and context with the file's BASE. BASE and APP_IMAGE, the file's own variables, point at the Debian
base made here, and the runtime settings this sandbox needs come in through podman's own CONTAINERS_CONF.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_tool
from tests.container import podman as pm
from tests.container.conftest import Image

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("container")]

COMPOSE = pm.REPO / "compose.yaml"


def _runnable_copy(text: str, image_tag: str) -> str:
    ports = re.compile(r'"127\.0\.0\.1:(\d+):(\d+)"')
    assert [m.group(1, 2) for m in ports.finditer(text)] == [(p, p) for p in ("1025", "8025", "1143", "1110")]
    text = ports.sub(lambda m: f'"127.0.0.1::{m.group(2)}"', text)
    assert text.count("context: .\n") == 1 and text.count("image: mailnest\n") == 1
    return text.replace("context: .\n", f"context: {pm.REPO}\n").replace("image: mailnest\n",
                                                                           f"image: {image_tag}\n")


def _containers(project: str, service: str) -> list[str]:
    names = pm.podman("ps", "--all", "--filter", f"label=com.docker.compose.project={project}", "--filter",
                      f"label=com.docker.compose.service={service}", "--format", "{{.Names}}").stdout
    return names.split()


def test_the_compose_example_delivers_the_apps_message(image: Image, tmp_path: Path) -> None:
    compose = require_tool("podman-compose")
    project = f"mailnesttest{os.getpid()}{uuid.uuid4().hex[:6]}"
    image_tag = pm.unique_tag("mailnest-test-compose")
    (tmp_path / "compose.yaml").write_text(_runnable_copy(COMPOSE.read_text(), image_tag))
    env = {**os.environ, "BASE": image.base, "APP_IMAGE": image.base}
    conf = pm.containers_conf(image.run_options)
    if conf is not None:
        (tmp_path / "containers.conf").write_text(conf)
        env["CONTAINERS_CONF"] = str(tmp_path / "containers.conf")

    def run(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([compose, "--project-name", project, "--file", str(tmp_path / "compose.yaml"), *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    # What compose would build: the image conftest.py built (this Dockerfile, this context, the same BASE).
    dry = run("--dry-run", "build")
    [build] = [shlex.split(line) for line in dry.stdout.splitlines() if line.split()[1:2] == ["build"]]
    assert build[2:] == ["-t", image_tag, "-f", str(pm.REPO / "Dockerfile"), "--build-arg", f"BASE={image.base}",
                         str(pm.REPO)], dry.stdout

    pm.podman("tag", image.tag, image_tag)
    try:
        up = run("up", "--detach")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "podman build" not in up.stdout, up.stdout
        [app] = _containers(project, "app")
        [mailnest] = _containers(project, "mailnest")
        waited = pm.podman("wait", app, timeout=120).stdout.strip()
        app_logs = pm.podman("logs", app).stdout
        assert waited == "0", app_logs
        assert "sent: Hello from the app container" in app_logs

        port = pm.podman("port", mailnest, "8025/tcp").stdout.strip().rpartition(":")[2]
        api = f"http://127.0.0.1:{port}/api/v1/messages"
        deadline = time.monotonic() + 30
        while True:  # the app's 250 came after the commit; the listing is there at once, this only allows slack
            listed = httpx.get(api, timeout=30).json()
            if listed["total"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [(m["Subject"], m["To"][0]["Address"]) for m in listed["messages"]] == [
            ("Hello from the app container", "someone@example.test")]
        # The web UI answers to the service name (it is also mailnest's --hostname), not to the container's
        # other names unless MAILNEST_ALLOWED_HOST names them.
        assert httpx.get(api, headers={"Host": "mailnest:8025"}, timeout=30).status_code == 200
        assert httpx.get(api, headers={"Host": f"{mailnest}:8025"}, timeout=30).status_code == 400
        health = pm.podman("healthcheck", "run", mailnest, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        inspect = json.loads(pm.podman("container", "inspect", mailnest).stdout)[0]
        assert [m["Destination"] for m in inspect["Mounts"]] == ["/data"]
        assert inspect["Config"]["Env"] and "MAILNEST_MAX_MESSAGES=5000" in inspect["Config"]["Env"]
    finally:
        run("down", "--volumes", timeout=180)
        pm.podman("network", "rm", "--force", f"{project}_default", check=False)
        pm.podman("volume", "rm", "--force", f"{project}_mailnest-data", check=False)
        pm.podman("rmi", image_tag, check=False)
