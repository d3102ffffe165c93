"""Mailpit's tag routes: list (`GET /api/v1/tags`), set on messages (`PUT /api/v1/tags`), rename
(`PUT /api/v1/tags/{Tag}`) and delete (`DELETE /api/v1/tags/{Tag}`). Names are cleaned as Mailpit cleans them
(see `mailnest.tags`); renaming or deleting a tag no message carries is a successful no-op, as in Mailpit."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import tags
from .api import ApiError, Context, fields, json_body, ok, string_list


class Tagging:
    def __init__(self, context: Context) -> None:
        self.store = context.store

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/tags", self.list_tags, methods=["GET"]),
            Route("/api/v1/tags", self.set_tags, methods=["PUT"]),
            Route("/api/v1/tags/{tag}", self.rename_tag, methods=["PUT"]),
            Route("/api/v1/tags/{tag}", self.delete_tag, methods=["DELETE"]),
        ]

    async def _existing(self) -> list[str]:
        return list(await self.store.tag_counts())

    async def _known(self, name: str) -> None:
        """Mailpit's 400 for renaming or deleting a tag no message carries (names compare without case)."""
        if name.casefold() not in {existing.casefold() for existing in await self._existing()}:
            raise ApiError(400, f"tag not found: {name}")

    async def list_tags(self, request: Request) -> Response:
        return JSONResponse(await self._existing())

    async def set_tags(self, request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            raise ApiError(400, 'expected a JSON object such as {"IDs": ["..."], "Tags": ["billing"]}')
        values = fields(body, ["IDs", "Tags"], example='{"IDs": ["..."], "Tags": ["billing"]}')
        ids = string_list(values.get("IDs", []), "IDs")
        names = string_list(values.get("Tags", []), "Tags")
        if ids:
            await self.store.set_tags(ids, tags.unique(names, await self._existing()))
        return ok(request)

    async def rename_tag(self, request: Request) -> Response:
        old = str(request.path_params["tag"])
        values = fields(await json_body(request), ["Name"], example='{"Name": "new name"}')
        name = values.get("Name")
        if not isinstance(name, str):
            raise ApiError(400, 'expected a JSON object such as {"Name": "new name"}')
        new = tags.clean(name)
        if not new:
            raise ApiError(400, f"{name!r} is not a tag name: use letters, digits, '-', '.', '_' and spaces")
        if not tags.clean(old):
            raise ApiError(400, f"{old!r} is not a tag name")
        await self._known(old)
        await self.store.rename_tag(old, new)
        return ok(request)

    async def delete_tag(self, request: Request) -> Response:
        name = str(request.path_params["tag"])
        if not tags.clean(name):
            raise ApiError(400, f"{name!r} is not a tag name")
        await self._known(name)
        await self.store.delete_tag(name)
        return ok(request)
