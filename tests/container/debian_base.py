"""A Debian base image for the Dockerfile's `BASE`, made here from Debian's packages (no registry pull).

`debootstrap --variant=minbase` installs bookworm with python3 and its venv module from the machine's apt mirror,
trimmed of apt's caches and documentation, and the result is imported into podman as
`localhost/mailnest-test-base:<key>`. The key is a hash of everything that goes into it (the recipe, the mirror,
the packages and the machine's CA bundle), and the tarball is kept under a cache directory outside the
repository (`$XDG_CACHE_HOME/mailnest-tests`, else `~/.cache/mailnest-tests`): a warm run only checks that the
image exists, a machine whose podman storage was emptied imports the tarball again (a few seconds), and only a
cold cache pays for debootstrap (about 70 s on this 2-core machine under load: fetching some 120 packages one
after another, then dpkg installing them). A file lock keeps two test runs, or two xdist
workers, from making it at once.

The machine's CA bundle is copied in and named in the base's /etc/pip.conf: a network that reaches PyPI
through a TLS-inspecting proxy (as this one does) needs it for `pip install` during the build. A company's base
image carries its CA the same way; the published Dockerfile needs nothing for it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "bookworm"  # Python 3.11, the oldest mailnest supports
PACKAGES = ("python3", "python3-venv")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
REPOSITORY = "localhost/mailnest-test-base"
RECIPE = "2"  # bump when the steps below change what the image holds
CA_IN_IMAGE = "/usr/local/share/mailnest-test/ca-bundle.pem"
_TRIMMED = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
            "usr/share/locale")
DEBOOTSTRAP_TIMEOUT = 900.0


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "mailnest-tests"


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The first Debian archive the machine's apt is configured with (deb822 .sources or sources.list lines)."""
    texts = [p.read_text(errors="replace") for p in sorted((sources / "sources.list.d").glob("*.sources"))]
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(r"^Suites:.*\bbookworm\b", stanza, re.M | re.I):
                match = re.search(r"^URIs:\s*(\S+)", stanza, re.M | re.I)
                if match:
                    return match.group(1)
    lists = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*.list"))]
    for path in lists:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                match = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if match:
                    return match.group(1)
    return FALLBACK_MIRROR


def ca_bundle() -> Path | None:
    """The CA bundle this machine's pip and Python trust."""
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    default = Path("/etc/ssl/certs/ca-certificates.crt")
    return default if default.is_file() else None


def base_key(mirror: str, ca: Path | None) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE, SUITE, mirror, " ".join(PACKAGES), " ".join(_TRIMMED), CA_IN_IMAGE):
        digest.update(part.encode() + b"\0")
    digest.update(ca.read_bytes() if ca else b"no CA bundle")
    return digest.hexdigest()[:16]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (made if needed): one test run at a time past this point."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _image_exists(podman: str, tag: str) -> bool:
    return subprocess.run([podman, "image", "exists", tag], capture_output=True).returncode == 0


def _debootstrap(debootstrap: str, mirror: str, ca: Path | None, root: Path, tarball: Path) -> None:
    """Make the root file system and pack it into `tarball` (written aside, then renamed: never half a file)."""
    shutil.rmtree(root, ignore_errors=True)
    # In two stages, so that dpkg can be told not to fsync every file it unpacks before the second stage runs
    # it: the same system in about two thirds of the time here (66 s instead of 99 s). The setting goes before
    # the tarball is made.
    stages = ([debootstrap, "--foreign", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root),
               mirror], ["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"])
    unsafe_io = root / "etc/dpkg/dpkg.cfg.d/mailnest-test-unsafe-io"
    for stage, command in enumerate(stages, 1):
        result = subprocess.run(command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT)
        if result.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.exists() else result.stderr[-3000:]
            raise RuntimeError(f"debootstrap {SUITE} from {mirror} failed in stage {stage} "
                               f"({result.returncode}):\n{detail}")
        if stage == 1:
            unsafe_io.write_text("force-unsafe-io\n")
    unsafe_io.unlink()
    for trimmed in _TRIMMED:
        target = root / trimmed
        if target.exists():
            shutil.rmtree(target)
            target.mkdir()
    if ca is not None:
        (root / CA_IN_IMAGE.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca, root / CA_IN_IMAGE.lstrip("/"))
        (root / "etc/pip.conf").write_text(f"[global]\ncert = {CA_IN_IMAGE}\n")
    partial = tarball.with_suffix(".partial")
    subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True,
                   capture_output=True, timeout=600)
    partial.rename(tarball)
    shutil.rmtree(root, ignore_errors=True)


def _forget_older(podman: str, cache: Path, key: str) -> None:
    """Remove base images and tarballs of earlier keys: they are never used again."""
    for old in cache.glob("base-*.tar"):
        if old.name != f"base-{key}.tar":
            old.unlink(missing_ok=True)
    listed = subprocess.run([podman, "images", "--format", "{{.Repository}}:{{.Tag}}", REPOSITORY],
                            capture_output=True, text=True)
    for tag in listed.stdout.split():
        if tag.startswith(REPOSITORY + ":") and tag != f"{REPOSITORY}:{key}":
            subprocess.run([podman, "rmi", tag], capture_output=True)


def ensure_base(podman: str, debootstrap: str) -> tuple[str, str]:
    """The tag of the base image, made or imported if needed, and how it was had: "cached", "imported" or
    "debootstrapped"."""
    mirror, ca = apt_mirror(), ca_bundle()
    key = base_key(mirror, ca)
    tag = f"{REPOSITORY}:{key}"
    cache = cache_dir()
    with locked(cache / "base.lock"):
        if _image_exists(podman, tag):
            return tag, "cached"
        tarball = cache / f"base-{key}.tar"
        how = "imported"
        if not tarball.exists():
            _debootstrap(debootstrap, mirror, ca, cache / f"root-{key}", tarball)
            how = "debootstrapped"
        subprocess.run([podman, "import", str(tarball), tag], check=True, capture_output=True, timeout=600)
        _forget_older(podman, cache, key)
        return tag, how
