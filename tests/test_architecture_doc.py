"""docs/ARCHITECTURE.md describes the code as it is (issue 16 item 23): every module and package it names exists,
and every module and package of `src/mailnest` is named there, so a move or a new module that the page does not
follow fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mailnest"
PAGE = ROOT / "docs" / "ARCHITECTURE.md"
# Small helpers of the store and the shims kept for old import paths: named by the modules that use them.
UNLISTED = {"__init__.py", "store/__init__.py", "store/imap_sql.py", "store/tags_sql.py", "store/faithful.py",
            "store/sqlite_failures.py"}


def named() -> set[str]:
    """The module and package paths the page's table names (`web/`, `cli.py`, `store/codec.py`...)."""
    table = PAGE.read_text(encoding="utf-8").split("## Where things live", 1)[1].split("\n## ", 1)[0]
    found = set()
    for row in table.splitlines():
        if row.startswith("| ") and not row.startswith("| package"):
            first = row.split("|")[1]
            found.update(re.findall(r"`([\w/]+(?:\.py|/))`", first))
    return found


def test_every_name_on_the_page_exists() -> None:
    missing = [name for name in sorted(named()) if not (PACKAGE / name).exists()]
    assert not missing, missing


def test_every_module_and_package_is_on_the_page() -> None:
    names = named()
    packages = {f"{path.name}/" for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    modules = {path.name for path in PACKAGE.glob("*.py")}
    store = {f"store/{path.name}" for path in (PACKAGE / "store").glob("*.py")}
    store_packages = {f"store/{path.name}/" for path in (PACKAGE / "store").iterdir() if path.is_dir()
                      and (path / "__init__.py").exists()}
    wanted = (packages - {"store/"}) | modules | store | store_packages
    absent = sorted(wanted - names - UNLISTED)
    assert not absent, f"docs/ARCHITECTURE.md does not say where these live: {absent}"
