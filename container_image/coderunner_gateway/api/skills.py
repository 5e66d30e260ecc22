"""``/v1/skills``: the skills, one skill's instructions and files, and a file of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..gateway import Gateway
from ..skills import MAX_SKILL_FILE_BYTES


class SkillRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/v1/skills", self.list_skills, methods=["GET"]),
            Route("/v1/skills/{name}", self.get, methods=["GET"]),
            Route("/v1/skills/{name}/files/{file:path}", self.get_file, methods=["GET"]),
        ]

    async def list_skills(self, request: Request) -> Response:
        # the folders are read afresh on every request (skills added appear at once): off the loop
        skills = await asyncio.to_thread(self.gw.skills.all_skills)
        return JSONResponse({"skills": [s.summary() for s in skills]})

    async def get(self, request: Request) -> Response:
        skill = await asyncio.to_thread(self.gw.skills.get, request.path_params["name"])
        return JSONResponse(await asyncio.to_thread(skill.detail))

    async def get_file(self, request: Request) -> Response:
        path = await asyncio.to_thread(self.gw.skills.file, request.path_params["name"], request.path_params["file"])
        if path.stat().st_size > MAX_SKILL_FILE_BYTES:
            return FileResponse(path, media_type="application/octet-stream")
        data = await asyncio.to_thread(Path.read_bytes, path)
        try:
            data.decode("utf-8")
            media = "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            media = "application/octet-stream"
        return Response(data, media_type=media)
