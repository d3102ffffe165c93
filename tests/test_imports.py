"""Every module imports on its own, first: an import circle shows up only when its modules are imported in one
particular order (mailnest.store.sqlite first once failed: tags -> config -> store.select -> store.base -> tags)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mailnest

SCRIPT = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "mailnest" or m.startswith("mailnest.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
"""


def test_every_module_imports_first() -> None:
    root = Path(mailnest.__file__).parent
    names = sorted("mailnest." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
                   for p in root.rglob("*.py"))
    names = [n.removesuffix(".__init__") for n in names]
    assert len(names) > 50
    result = subprocess.run([sys.executable, "-c", SCRIPT, *names], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr
