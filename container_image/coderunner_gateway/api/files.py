"""``/v1/files``: read, list, write and delete files of the workspace (confined to it)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .. import files
from ..errors import NotFound, PayloadTooLarge
from ..gateway import Gateway


class FileRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self.file, methods=["GET"]),
            Route("/v1/files/{path:path}", self.file, methods=["GET", "PUT", "DELETE"]),
        ]

    async def file(self, request: Request) -> Response:
        workspace = self.gw.settings.workspace
        rel = request.path_params.get("path", "")
        root = files.resolve(workspace, "")
        if request.method == "DELETE":  # the entry itself: a link goes, not what it points to
            await asyncio.to_thread(files.remove, files.resolve_entry(workspace, rel), root)
            return JSONResponse({"deleted": rel})
        path = files.resolve(workspace, rel)
        if request.method == "GET":
            if path.is_dir():
                return JSONResponse(await asyncio.to_thread(files.listing, path, root))
            if not path.is_file():
                raise NotFound(f"no file {rel!r} in the workspace", code="file_not_found")
            # streamed from disk in chunks: a file of any size costs no memory
            response = FileResponse(path, media_type="application/octet-stream")
            response.chunk_size = 1 << 20
            return response
        limit = self.gw.settings.max_request_bytes  # PUT
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"file is over the gateway's limit of {limit} bytes")
        size = await asyncio.to_thread(files.write, self.gw.settings.workspace, path, bytes(body))
        return JSONResponse({"path": rel, "size": size}, status_code=201)
