"""The ASGI application: the routes table of the HTTP listener."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from ..search import QueryError
from .api import Api, ApiError, handle_api_error, handle_query_error

if TYPE_CHECKING:
    from ..runtime import MailServer

log = logging.getLogger("mailnest.http")


def create_app(server: MailServer) -> Starlette:
    routes: list[BaseRoute] = [*Api(server.store).routes()]
    return Starlette(
        routes=routes,
        exception_handlers={ApiError: handle_api_error, QueryError: handle_query_error},
    )
