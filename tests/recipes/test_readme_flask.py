"""The README's Flask-Mail recipe, its two files exactly as printed (issue 16 item 10: the old one-line recipe let
a test's mail go to the development server when the settings changed after `Mail(app)`)."""

from __future__ import annotations

from pathlib import Path

from tests.recipes.readme_blocks import between, files, run, write


def test_the_app_factory_recipe_passes_as_printed(tmp_path: Path) -> None:
    blocks = files(between("**Flask / Flask-Mail.**", "**FastAPI and asyncio.**"))
    assert set(blocks) == {"app.py", "test_welcome.py"}
    result = run(write(tmp_path, blocks), "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:django", "-v")
    assert result.returncode == 0 and "test_welcome_mail PASSED" in result.stdout, result.stdout + result.stderr
