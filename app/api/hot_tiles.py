"""The hot path of catalog tiles: `GET /tiles/{layer}/{z}/{x}/{y}.mvt` answered from memory alone.

A map asks for dozens of tiles a second, nearly all of them a 304 or a tile already in the cache.
FastAPI's dependency solving for the tile route (caller, role, layer, tile, filters: a dozen nodes)
cost about five times what the bare framework spends on a whole answer, so this pure ASGI
middleware, inside the security middleware (rate limits and headers still apply), answers those
requests itself: a caller known to the process's memory (app/live_state.py), a layer their role may
see, the data versions held in memory, then a 304 or a cached tile. It calls the same functions
the route's dependencies are (app/api/deps.py) and the same pipeline step (TilePipeline), and writes
the same answer (app/tiles/http.py respond), audit and "last used" included (waited for after the
answer by app.writer.SettleWrites, outside this).

A tile to draw for a caller known to memory is drawn here too, through the same pipeline call the
route makes (`TilePipeline.layer_tile`, with the same lazy read session): once the tile SQL itself
is cheap (low zooms counted from the aggregate), solving the route's dependencies again cost about
as much as drawing the tile. A draw that cannot get a database connection (or its turn to draw:
app/tiles/pipeline.py DrawGate) in time is answered 503 with Retry-After here, as the route would:
handing it on would make the refused request wait for the pool a second time, exactly when the
server is busiest. Should drawing fail for any other reason,
nothing has been answered and the route takes the request over, and answers it or its problem.

An embedded map's tiles (`GET /embed/{id}/tiles/...?key=`) are answered here the same way when
the embed behind the key is known to memory; drawing those is left to the route.

Anything else goes on to the route, untouched: an unknown, expired or refused caller, a bad value,
memory that cannot be trusted right now. The route stays the one definition of the endpoint
(documented, validated, its refusals problem+json); this only skips the machinery when the caller
and the tile are already known. tests/test_hot_path.py checks the two give the same answers.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import embeds
from app.api.deps import layer_filters, tile_params, visible_layer
from app.auth import SESSION_COOKIE, Principal
from app.db import LazySession
from app.domain_errors import DomainError
from app.errors import BUSY, PoolTimeout, busy, problem
from app.live_state import LiveState
from app.tiles.http import respond
from app.tiles.pipeline import Answer, TilePipeline, TileRequest
from app.writer import after_answer

# The route's path; anything odd (a sign, a leading '+', a long number) is left to the route.
log = logging.getLogger("safermap.tiles")

TILE_PATH = re.compile(r"/tiles/([A-Za-z0-9_.-]{1,100})/(\d{1,2})/(\d{1,9})/(\d{1,9})\.mvt")
# An embedded map's tiles (app/api/embeds.py embed_tile): the embed behind the key, from memory too.
EMBED_TILE_PATH = re.compile(r"/embed/([A-Za-z0-9_-]{8,64})/tiles/([A-Za-z0-9_.-]{1,100})/(\d{1,2})/(\d{1,9})/(\d{1,9})\.mvt")


class HotTiles:
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: live, tiles, catalog, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = None
            if (found := TILE_PATH.fullmatch(scope["path"])) is not None:
                answer = await self._from_memory(Request(scope), found)
            elif (found := EMBED_TILE_PATH.fullmatch(scope["path"])) is not None:
                answer = await self._embed_from_memory(Request(scope), found)
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _caller(self, request: Request, live: LiveState) -> Principal | None:
        """As deps.get_principal, from memory only (None: let the route find out)."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            return live.known_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            return live.known_session(self.state.sessions.decode(cookie))
        except DomainError:
            return None

    async def _from_memory(self, request: Request, found: re.Match[str]) -> Any:
        live: LiveState = self.state.live
        principal = self._caller(request, live)
        if principal is None:
            return None
        layer_id, z, x, y = found.groups()
        query = request.query_params
        try:
            principal.require("viewer")  # the route's Viewer
            layer = await visible_layer(layer_id, principal, self.state.catalog)
            tile = await tile_params(int(z), int(x), int(y))
            filters = await layer_filters(layer, query.get("from"), query.get("to"), query.getlist("category") or None)
        except DomainError:  # a refusal or a bad value: the route answers it, as a problem
            return None
        tiles: TilePipeline = self.state.tiles
        ip = request.client.host if request.client else None
        req = TileRequest(layer, tile, filters)
        if_none_match = request.headers.get("if-none-match")
        after = partial(after_answer, request.scope)
        answer: Answer | Response | None = await tiles.layer_tile_from_memory(principal, req, if_none_match, ip,
                                                                              after=after)
        if answer is None:
            answer = await self._draw(request, tiles, principal, req, if_none_match, ip, after)
        if answer is None or isinstance(answer, Response):
            return answer
        if request.headers.get("authorization") and (touched := live.touch(principal)) is not None:
            after_answer(request.scope, touched)
        return respond(answer)

    async def _embed_from_memory(self, request: Request, found: re.Match[str]) -> Response | None:
        """As the route embeds.embed_tile: an embed known to memory, one of its layers, then a 304,
        a cached tile or a known-empty one; anything else (drawing included) is the route's."""
        public_id, layer_id, z, x, y = found.groups()
        key = request.query_params.get("key")
        if not key or len(key) > 200:
            return None
        embed = self.state.live.known_embed(public_id, embeds.digest(key))
        layer = self.state.catalog.get(layer_id)
        if embed is None or layer is None or layer_id not in embed.layers:
            return None
        try:
            embeds.refuse_browser_misuse(request)
            tile = await tile_params(int(z), int(x), int(y))
        except DomainError:
            return None
        tiles: TilePipeline = self.state.tiles
        answer = await tiles.embed_tile_from_memory(embed, layer, tile, request.headers.get("if-none-match"))
        return None if answer is None else respond(answer, embeds.TILE_HEADERS)

    async def _draw(self, request: Request, tiles: TilePipeline, principal: Principal, req: TileRequest,
                    if_none_match: str | None, ip: str | None,
                    after: Callable[[asyncio.Future[bool]], None]) -> Answer | Response | None:
        """The route's `tiles.layer_tile` call, with the route's kind of session: the answer, the
        route's 503 when no connection came in time, or None on any other failure (the route then
        takes over: it draws again, or answers the problem)."""
        session = LazySession(self.state.read_sessionmaker)
        try:
            return await tiles.layer_tile(cast(AsyncSession, session), principal, req, if_none_match, ip, after=after)
        except PoolTimeout:
            log.warning("no database connection (or tile drawing slot) free: %s answered 503", request.url.path)
            return busy(problem(request, 503, "Busy", BUSY))
        except Exception as exc:  # noqa: BLE001 - handed to the route, which answers it properly
            log.debug("drawing %s in the hot path failed (%r); the route takes over", req.layer.id, exc)
            return None
        finally:
            await session.aclose()
