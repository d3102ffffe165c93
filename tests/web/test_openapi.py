"""The OpenAPI document: it lists exactly the application's routes, and schemathesis, driving a live server with
requests generated from it, finds every answer conforming (status codes, content types, response schemas)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Mount, Route, WebSocketRoute

from mailnest import Config, ServerThread
from mailnest.web.app import create_app
from mailnest.web.openapi import document
from tests.conftest import send

_PARAM = re.compile(r"\{[^}]*\}")


def normal(path: str) -> str:
    return _PARAM.sub("{}", path)


def test_every_route_is_documented_and_nothing_else(server: ServerThread) -> None:
    app = create_app(server.server)
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            continue  # static files of the UI
        if isinstance(route, WebSocketRoute):
            served.add(("get", normal(route.path)))
        elif isinstance(route, Route):
            served |= {(m.lower(), normal(route.path)) for m in route.methods or () if m != "HEAD"}
    documented = {(method, normal(path)) for path, ops in document()["paths"].items() for method in ops}
    assert served == documented


def test_document_is_served_where_mailpit_serves_its_own(server: ServerThread, api: httpx.Client) -> None:
    for path in ("/api/v1/openapi.json", "/api/v1/swagger.json"):
        doc = api.get(path).json()
        assert doc["openapi"] == "3.0.3" and "/api/v1/messages" in doc["paths"]


@pytest.fixture(scope="module")
def live() -> Iterator[ServerThread]:
    with ServerThread(Config(chaos="on")) as server:
        for i in range(3):
            send(server, subject=f"seed {i}", X_Tags="Seed")
        yield server


# Built from the document in this process; the live test below checks that the server serves the same one.
schema = schemathesis.openapi.from_dict(document()).exclude(
    # Streams and websockets never end by themselves; they have their own tests (test_events.py).
    func=lambda ctx: bool(ctx.operation.definition.raw.get("x-mailnest-stream")))


def test_the_served_document_is_this_one(live: ServerThread) -> None:
    assert httpx.get(f"{live.http_url}/api/v1/openapi.json").json() == document()


def _beyond_json_schema(case: schemathesis.Case) -> bool:
    """Operations whose valid input the document cannot fully state, so a schema-valid request may be refused:
    - whether a search query is valid is the search language's business (a generated query with an unbalanced
      quote is rightly a 400; tests/test_search.py covers the language);
    - the send API's header names follow RFC 5322 (`propertyNames` says so, but OpenAPI 3.0 tools ignore it);
    - renaming or deleting a tag no message carries is Mailpit's 400 (test_tags.py covers it);
    - a DELETE /api/v1/messages body whose every field is unknown is refused rather than read as "delete
      everything", which an empty body means (test_api.py covers it)."""
    operation = case.operation
    takes_query = any(p["name"] == "query" for p in operation.definition.raw.get("parameters", ()))
    return takes_query or (operation.method.upper(), operation.path) == ("POST", "/api/v1/send") \
        or operation.path == "/api/v1/tags/{Tag}" or (operation.method.upper(), operation.path) == (
            "DELETE", "/api/v1/messages")


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_api_conforms_to_its_document(case: schemathesis.Case, live: ServerThread) -> None:
    excluded = [positive_data_acceptance] if _beyond_json_schema(case) else []
    case.call_and_validate(base_url=live.http_url, timeout=10, excluded_checks=excluded)
