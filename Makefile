# Two commands on a fresh machine:
#   make serve   start mailnest (SMTP 127.0.0.1:1025, HTTP http://127.0.0.1:8025)
#   make test    run the whole test suite
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# `make serve` installs the package alone (what the server needs); `make test` adds the test toolchain.
SERVE_STAMP := $(VENV)/.installed-serve
STAMP       := $(VENV)/.installed-test

.PHONY: serve test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(SERVE_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(SERVE_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/mailnest serve $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/smtp_ingest.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
