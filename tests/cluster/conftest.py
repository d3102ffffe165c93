from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pgcluster import postgres_server  # noqa: F401  (the throwaway PostgreSQL server)

from .nodes import Node


@pytest.fixture
def database(postgres_server) -> str:  # noqa: F811
    return str(postgres_server.create_database())


@pytest.fixture
def start_node(database: str, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start a `mailnest serve` node on the test's database; every node is stopped at the end."""
    started: list[Node] = []

    def start(*args: str, db: str | None = None) -> Node:
        node = Node.start(f"node{len(started) + 1}", db or database, tmp_path / f"node{len(started) + 1}", *args)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()
