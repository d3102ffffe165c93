"""One base and one image per test run, shared by every container test.

The Debian base comes from the cache or is made once (debian_base.py); the repository's Dockerfile is built on it
once per session, under a file lock, so that two xdist workers that both get container tests do not build it
twice at once: the second waits, and its own build is then all cache hits (a few seconds). It builds from a
snapshot of the build context (other work may change the tree meanwhile), so the tests know exactly which code
the image holds. The compose test runs this same image under compose.yaml's tag instead of building it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

import pytest

from tests.conftest import IN_CI, require_tool
from tests.container import podman as pm
from tests.container.debian_base import cache_dir, ensure_base, locked


@dataclass(frozen=True)
class Image:
    """The image the Dockerfile built for this run, and how to start containers of it here."""

    tag: str
    run_options: list[str]
    base: str
    build_seconds: float
    code_digest: str  # of the package's Python files as the build read them (a snapshot of the tree)


def _fail_or_skip(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def base_image() -> str:
    """The tag of the base image; skips without podman, debootstrap or root, except in CI."""
    podman = require_tool("podman")
    debootstrap = require_tool("debootstrap")
    if os.geteuid() != 0:
        _fail_or_skip("debootstrap and rootful podman need root (CI runs as root)")
    tag, _how = ensure_base(podman, debootstrap)
    return tag


@pytest.fixture(scope="session")
def run_options(base_image: str) -> list[str]:
    """The `podman run` options that start a container here (asked of the base: it has python3)."""
    try:
        return pm.run_options(base_image)
    except pm.PodmanError as exc:
        _fail_or_skip(f"podman cannot run a container here: {exc}")


@pytest.fixture(scope="session")
def image(base_image: str, run_options: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    tag = pm.unique_tag("mailnest-test")
    context = pm.snapshot_context(tmp_path_factory.mktemp("context"))
    with locked(cache_dir() / "build.lock"):
        seconds = pm.build(base_image, tag, context)
    try:
        yield Image(tag, run_options, base_image, seconds, pm.code_digest(context / "src" / "mailnest"))
    finally:
        # The tag only: the image stays as pm.LAST_BUILD, its layers the cache of the next build.
        pm.podman("rmi", tag, check=False)
