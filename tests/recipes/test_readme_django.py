"""The README's Django recipes, exactly as printed, in a minimal Django project: with pytest-django, with plain
pytest, and with `manage.py test` (issue 16 item 10: the recipe as shown failed, as it left out the settings
set-up). Each run is a separate process in a folder of its own, as a user's project would be."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.recipes.readme_blocks import between, files, run, write

# What a project made by `django-admin startproject shop` has that the recipes rely on, cut to the minimum.
SETTINGS = '''SECRET_KEY = "test-only"
INSTALLED_APPS = ["shop"]
DATABASES = {}
DEFAULT_FROM_EMAIL = "noreply@shop.example"
USE_TZ = True
'''
MANAGE = '''import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
'''


def parts() -> dict[str, dict[str, str]]:
    text = between("**Django** (`settings.py`, for development):", "**Flask / Flask-Mail")
    pytest_django = text.index("With **pytest-django**")
    plain = text.index("With **plain pytest**")
    runner = text.index("With **`manage.py test`**")
    shared = files(text[:pytest_django])
    return {"pytest-django": {**shared, **files(text[pytest_django:plain])},
            "plain pytest": {**shared, **files(text[plain:runner])},
            "manage.py test": files(text[runner:])}


def project(tmp_path: Path, blocks: dict[str, str]) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "settings.py").write_text(SETTINGS)
    (tmp_path / "manage.py").write_text(MANAGE)
    return write(tmp_path, blocks)


def test_the_readme_names_the_files_each_way_needs() -> None:
    found = parts()
    assert set(found["pytest-django"]) == {"test_password_reset.py", "pytest.ini", "conftest.py"}
    assert set(found["plain pytest"]) == {"test_password_reset.py", "conftest.py"}
    assert set(found["manage.py test"]) == {"shop/tests.py"}


@pytest.mark.parametrize(("way", "argv"), [
    ("pytest-django", ["-m", "pytest", "-p", "no:cacheprovider", "-v", "test_password_reset.py"]),
    ("plain pytest", ["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:django", "-v", "test_password_reset.py"]),
    ("manage.py test", ["manage.py", "test", "shop", "-v", "2"]),
])
def test_each_recipe_passes_as_printed(tmp_path: Path, way: str, argv: list[str]) -> None:
    folder = project(tmp_path, parts()[way])
    result = run(folder, *argv)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"test_password_reset_mail.*(PASSED|ok)", output), output
