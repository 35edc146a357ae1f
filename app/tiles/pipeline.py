"""The tile pipeline: every tile the app serves (catalog layers, embeds, hotspot cells, the hotspot
surface, and TileJSON) goes through `TilePipeline.serve`, so all share one way to name a tile, one
ETag/304 path and one cache:

    key (no database) -> data versions (one lookup) -> ETag -> 304 | cached | drawn, then cached

A job is one kind of tile for one caller: what names it, where its data versions come from and
how it is drawn. Routes only resolve their dependencies into a request and call an entry point
(`layer_tile`, `embed_tile`, ...), as tipg's tile routes call `PgCollection.get_tile`.

The data versions come from each process's memory (app/live_state.py, `Job.versions`), so a 304
or a cache hit reads nothing from the database and the request's session is never made (it is
lazy: app/db.py LazySession); while that memory cannot be trusted the versions are read from the
database, as one lookup. Exact views are audited by the background writer (app/audit.py
ExactViews), not before the answer.

Tiles are drawn a few at a time (DrawGate: about two per core); the others wait their turn,
holding no connection.

Low-zoom incident cells are counted from a per-data-version aggregate (app/sql/incident_cells.sql,
app/tiles/cells.py) whenever it is current, in the tile's own snapshot, for every partnership the
caller counts; otherwise (and for dated tiles) from every point, as before.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import audit, sharing
from app.audit import ExactViews
from app.auth import Principal
from app.catalog import Layer
from app.errors import PoolTimeout
from app.settings import Settings
from app.tiles import grid
from app.tiles.cache import Body, TileCache, VersionSource, current_versions, etag, fill_versions, matches
from app.tiles.cells import CellBuilds
from app.tiles.sql import (
    VERSIONS,
    Plan,
    TileFilters,
    aggregate_applies,
    area_params,
    extent_sql,
    tile_params,
    tile_sql,
)
from app.tiles.tilejson import tilejson_body

MVT = "application/vnd.mapbox-vector-tile"

# Embeds: incident cells stop shrinking at FINEST_GRID_ZOOM (16 per z14 tile, ~100 m in Great
# Britain) and the map zooms no further than EMBED_MAX_ZOOM, where a finest cell fills a tile.
FINEST_GRID_ZOOM = 14
EMBED_MAX_ZOOM = 18


@dataclass(frozen=True)
class NotModified:
    etag: str


Answer = Body | NotModified


@dataclass(frozen=True)
class Drawn:
    """What a job drew, and the data versions it read while drawing (in the same snapshot)."""
    data: bytes
    versions: Sequence[str]
    exact: bool = False


class Job(Protocol):
    media_type: str

    def key(self) -> tuple:
        """Everything the tile depends on except the data versions."""
        ...

    def known_empty(self) -> bool:
        """True when the tile is empty whatever the data (outside a zoom range or an area)."""
        ...

    async def versions(self, session: AsyncSession) -> Sequence[str]:
        ...

    async def draw(self, session: AsyncSession) -> Drawn:
        ...


async def conditional(if_none_match: str | None, tag: str,
                      produce: Callable[[], Awaitable[Body]]) -> Answer:
    """The one ETag/304 path: an If-None-Match naming `tag` gets 304 and nothing is produced."""
    if matches(if_none_match, tag):
        return NotModified(tag)
    return await produce()


class EmbedView(Protocol):
    """A live embed (app.api.embeds.LiveEmbed): whose, which one, its area and precision."""
    @property
    def id(self) -> int: ...
    @property
    def public_id(self) -> str: ...
    @property
    def partnership_id(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @property
    def area(self) -> tuple[float, float, float, float] | None: ...


@dataclass(frozen=True)
class TileRequest:
    """A tile of a catalog layer: the layer (already checked against the caller's role), which
    tile, and the request filters the layer honours."""
    layer: Layer
    tile: grid.Tile
    filters: TileFilters = TileFilters()


class DrawGate:
    """At most `size` tiles drawn at once by this process; the others wait their turn (first come,
    first served) holding no connection, at most `wait_s`, then the request is answered 503 with
    Retry-After as when the pool has no connection free (app/errors.py). Drawing a tile is CPU
    work in PostgreSQL: with more drawn at once than there are cores each takes as much longer,
    and the longest (dense every-point tiles) set the tail, while the server process competes
    with them for the CPU it needs to answer the others. In a queue each waits for the ones ahead
    and is then drawn at full speed."""

    def __init__(self, size: int, wait_s: float) -> None:
        self.size, self.wait_s = size, wait_s
        self._slots = asyncio.Semaphore(size)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no tile drawing slot free within {self.wait_s} s") from None
        try:
            yield
        finally:
            self._slots.release()

    async def draw(self, job: Job, session: AsyncSession) -> Drawn:
        async with self.slot():
            return await job.draw(session)


class TilePipeline:
    """One per app (app.state.tiles): the tile cache and the rules every kind of tile shares."""

    def __init__(self, cache: TileCache, suppress_below: int, catalog_fingerprint: Callable[[], str],
                 live: VersionSource | None = None, exact_views: ExactViews | None = None,
                 draws: DrawGate | None = None) -> None:
        self.cache = cache
        self.draws = draws  # None: no limit on tiles drawn at once
        self.suppress_below = suppress_below
        # The catalog's fingerprint is part of every key, so a changed catalog redraws everything.
        self._fingerprint = catalog_fingerprint
        self.live = live                # data versions in memory (None: always from the database)
        self.exact_views = exact_views  # the audit of exact views, off the answer's path
        # Low-zoom incident cells from the per-data-version aggregate (False: always every point).
        self.use_aggregate = True
        self.cell_builds = CellBuilds()

    @classmethod
    def from_settings(cls, settings: Settings, catalog_fingerprint: Callable[[], str],
                      live: VersionSource | None = None, exact_views: ExactViews | None = None) -> TilePipeline:
        return cls(TileCache(settings.tile_cache_entries, settings.tile_cache_bytes), settings.suppress_below,
                   catalog_fingerprint, live, exact_views,
                   DrawGate(settings.resolved_tile_draws(), settings.pool_timeout_s))

    @property
    def fingerprint(self) -> str:
        return self._fingerprint()

    async def serve(self, session: AsyncSession, job: Job, if_none_match: str | None = None) -> Answer:
        if job.known_empty():  # no database needed
            tag = etag(*job.key(), "known-empty", versions=())
            return await conditional(if_none_match, tag, lambda: _empty(tag, job.media_type))
        tag = etag(*job.key(), versions=await job.versions(session))
        return await conditional(if_none_match, tag, lambda: self._cached_or_drawn(session, job, tag))

    async def _cached_or_drawn(self, session: AsyncSession, job: Job, tag: str) -> Body:
        body = self.cache.get(tag)
        if body is None:
            drawn = await (job.draw(session) if self.draws is None else self.draws.draw(job, session))
            # The versions read with the tile (same snapshot) name it, even if data changed meanwhile.
            body = Body(drawn.data, etag(*job.key(), versions=drawn.versions), job.media_type, drawn.exact)
            self.cache.put(body)
        return body

    # -- entry points ----------------------------------------------------------------------------

    async def layer_tile(self, session: AsyncSession, principal: Principal, req: TileRequest,
                         if_none_match: str | None = None, ip: str | None = None,
                         after: Callable[[asyncio.Future[bool]], None] | None = None) -> Answer:
        """A vector tile of a catalog layer for a signed-in caller. Tiles holding exact incident
        locations are audited (from the cache too): queued to the background writer, and handed to
        `after` (app.writer.after_answer: the request waits for it once the answer has gone)."""
        answer = await self.serve(session, self._layer_job(principal, req), if_none_match)
        if isinstance(answer, Body) and answer.exact:
            if self.exact_views is not None and self.exact_views.running:
                self._exact_view_seen(principal, req, ip, after)
            else:  # no background writer (an app run without its lifespan): before the answer, as before
                await audit_exact_view(session, principal, req, ip)
        return answer

    async def layer_tile_from_memory(self, principal: Principal, req: TileRequest, if_none_match: str | None = None,
                                     ip: str | None = None,
                                     after: Callable[[asyncio.Future[bool]], None] | None = None) -> Answer | None:
        """`layer_tile` when memory alone has the answer (versions held, then a 304 or a cached tile),
        else None (and nothing done): the caller then asks `layer_tile`. For app/api/hot_tiles.py."""
        if self.exact_views is None or not self.exact_views.running or self.live is None:
            return None
        job = self._layer_job(principal, req)
        if job.known_empty():
            tag = etag(*job.key(), "known-empty", versions=())
            return await conditional(if_none_match, tag, lambda: _empty(tag, job.media_type))
        held = await self.live.versions(principal.partnership_id, req.layer.versioned_by, principal.agency_id,
                                        shared=req.layer.shared)
        if held is None:
            return None
        tag = etag(*job.key(), versions=fill_versions(held, req.layer.versioned_by))
        if matches(if_none_match, tag):
            return NotModified(tag)
        body = self.cache.peek(tag)
        if body is not None and body.exact:
            self._exact_view_seen(principal, req, ip, after)
        return body

    def _layer_job(self, principal: Principal, req: TileRequest) -> LayerJob:
        return LayerJob(req, principal, self.suppress_below, self.fingerprint, self.live,
                        self.cell_builds if self.use_aggregate else None)

    def _exact_view_seen(self, principal: Principal, req: TileRequest, ip: str | None,
                         after: Callable[[asyncio.Future[bool]], None] | None) -> None:
        assert self.exact_views is not None
        done = self.exact_views.seen(principal, *exact_view(req), ip)
        if done is not None and after is not None:
            after(done)

    async def embed_tile(self, session: AsyncSession, embed: EmbedView, layer: Layer, tile: grid.Tile,
                         if_none_match: str | None = None) -> Answer:
        """A vector tile of an embed's layer: incidents only as cells of at least `suppress_below`."""
        return await self.serve(session, EmbedJob(embed, layer, tile, self.suppress_below, self.fingerprint,
                                                  self.live), if_none_match)

    async def embed_tile_from_memory(self, embed: EmbedView, layer: Layer, tile: grid.Tile,
                                     if_none_match: str | None = None) -> Answer | None:
        """`embed_tile` when memory alone has the answer (versions held, then a 304 or a cached
        tile), else None (and nothing done). For app/api/hot_tiles.py."""
        if self.live is None:
            return None
        job = EmbedJob(embed, layer, tile, self.suppress_below, self.fingerprint, self.live)
        if job.known_empty():
            tag = etag(*job.key(), "known-empty", versions=())
            return await conditional(if_none_match, tag, lambda: _empty(tag, job.media_type))
        held = await self.live.versions(embed.partnership_id, layer.versioned_by, None, shared=False)
        if held is None:
            return None
        tag = etag(*job.key(), versions=fill_versions(held, layer.versioned_by))
        if matches(if_none_match, tag):
            return NotModified(tag)
        return self.cache.peek(tag)

    async def tilejson(self, session: AsyncSession, principal: Principal, layer: Layer, filters: TileFilters,
                       base_url: str, if_none_match: str | None = None) -> Answer:
        """TileJSON 3.0.0 for a layer, with the bounds of the caller's data (filtered)."""
        return await self.serve(session, TileJsonJob(layer, filters, principal, base_url, self.fingerprint,
                                                     self.live), if_none_match)


async def _empty(tag: str, media_type: str) -> Body:
    return Body(b"", tag, media_type)


# -- catalog layers -------------------------------------------------------------------------------

class LayerJob:
    media_type = MVT

    def __init__(self, req: TileRequest, principal: Principal, k: int, fingerprint: str,
                 live: VersionSource | None = None, cell_builds: CellBuilds | None = None) -> None:
        self.req, self.principal, self.k, self.fingerprint, self.live = req, principal, k, fingerprint, live
        self.cell_builds = cell_builds  # None: never from the aggregate

    def key(self) -> tuple:
        # Two callers of one role but different agencies may see different tiles: the sharing
        # access (partnership, role, agency, cap) is part of the key.
        layer, t = self.req.layer, self.req.tile
        return (layer.id, t.z, t.x, t.y, self.req.filters.key(), *sharing.access_key(self.principal),
                self.fingerprint, self.k)

    def known_empty(self) -> bool:
        return not self.req.layer.minzoom <= self.req.tile.z <= self.req.layer.maxzoom

    async def versions(self, session: AsyncSession) -> Sequence[str]:
        return await current_versions(session, self.req.layer, self.principal, self.live)

    async def draw(self, session: AsyncSession) -> Drawn:
        layer, tile, filters = self.req.layer, self.req.tile, self.req.filters
        clustered = layer.cluster is not None and tile.z <= layer.cluster.max_zoom
        cells = max(1, round(256 / layer.cluster.cell_px)) if clustered and layer.cluster else None
        params = tile_params(layer, tile, sharing.access_params(self.principal), filters=filters, k=self.k,
                             cells=cells)
        if self.cell_builds is not None and clustered and aggregate_applies(layer, tile.z, cells, filters):
            row = (await session.execute(
                text(tile_sql(layer, Plan(cells=True, filters=filters.shape(), aggregate=True))), params)).one()
            if not row.stale:  # current for every partnership counted, in this very snapshot
                return Drawn(bytes(row.tile or b""), fill_versions(row.versions, layer.versioned_by), False)
            # Missing or older than the incidents: rebuilt off the answer's path, and this tile
            # drawn from every point meanwhile (never from a stale aggregate).
            if isinstance(session.bind, AsyncEngine):
                self.cell_builds.start(session.bind, row.stale)
        row = (await session.execute(
            text(tile_sql(layer, Plan(cells=clustered, filters=filters.shape()))), params)).one()
        return Drawn(bytes(row.tile or b""), fill_versions(row.versions, layer.versioned_by), bool(row.exact))


def exact_view(req: TileRequest) -> tuple[str, dict[str, Any]]:
    """What an exact view of a tile is recorded as: the layer, and the tile that started it."""
    t = req.tile
    return f"tiles/{req.layer.id}", {"layer": req.layer.id, "tile": f"{t.z}/{t.x}/{t.y}",
                                     "bbox": grid.lonlat_bounds(t)}


# One 'view.exact' per caller and layer per minute: a map pans through many tiles.
RECENT_EXACT_VIEW = text("""
    SELECT EXISTS (SELECT 1 FROM audit_event WHERE action = 'view.exact' AND principal_id = :pid
                   AND target = :target AND at > now() - interval '1 minute')
""")


async def audit_exact_view(session: AsyncSession, principal: Principal, req: TileRequest, ip: str | None) -> None:
    """Record who looked at exact incident locations and where (the tile that started it), at
    most once a minute per caller and layer, so the trail stays readable. Checked in the database,
    so every worker agrees."""
    target, detail = exact_view(req)
    if (await session.execute(RECENT_EXACT_VIEW, {"pid": principal.id, "target": target})).scalar_one():
        return
    await audit.record(session, "view.exact", principal=principal, target=target, detail=detail, ip=ip)
    await session.commit()


# -- TileJSON ------------------------------------------------------------------------------------

class TileJsonJob:
    media_type = "application/json"

    def __init__(self, layer: Layer, filters: TileFilters, principal: Principal, base_url: str, fingerprint: str,
                 live: VersionSource | None = None) -> None:
        self.layer, self.filters, self.principal = layer, filters, principal
        self.base_url, self.fingerprint, self.live = base_url, fingerprint, live

    def key(self) -> tuple:
        return ("tilejson", self.layer.id, self.filters.key(), *sharing.access_key(self.principal),
                self.fingerprint, self.base_url)

    def known_empty(self) -> bool:
        return False

    async def versions(self, session: AsyncSession) -> Sequence[str]:
        return await current_versions(session, self.layer, self.principal, self.live)

    async def draw(self, session: AsyncSession) -> Drawn:
        layer, filters = self.layer, self.filters
        row = (await session.execute(text(extent_sql(layer, Plan(filters=filters.shape()))), {
            "tables": list(layer.versioned_by), **sharing.access_params(self.principal),
            **{k: v for k, v in filters.params().items() if v not in (None, [])}})).one()
        bounds = None if row.minx is None else [row.minx, row.miny, row.maxx, row.maxy]
        body = tilejson_body(layer, filters, bounds, self.base_url)
        return Drawn(json.dumps(body).encode(), fill_versions(row.versions, layer.versioned_by))


# -- embeds ---------------------------------------------------------------------------------------

def embed_access(embed: EmbedView) -> dict[str, Any]:
    """The sharing function's arguments for an embed: the role 'embed', no agency, capped at the
    embed's precision (so never exact)."""
    return {"p": embed.partnership_id, "role": "embed", "agency": None, "level_cap": embed.precision}


def aggregated(layer: Layer) -> bool:
    """Incident data: never shipped point by point in an embed."""
    return layer.cluster is not None or "incident" in layer.versioned_by


class EmbedJob:
    media_type = MVT

    def __init__(self, embed: EmbedView, layer: Layer, tile: grid.Tile, k: int, fingerprint: str,
                 live: VersionSource | None = None) -> None:
        self.embed, self.layer, self.tile, self.k, self.fingerprint = embed, layer, tile, k, fingerprint
        self.live = live

    def key(self) -> tuple:
        e, t = self.embed, self.tile
        return ("embed", e.id, e.public_id, e.precision, self.layer.id, t.z, t.x, t.y, self.fingerprint, self.k)

    def known_empty(self) -> bool:
        return (not self.layer.minzoom <= self.tile.z <= min(self.layer.maxzoom, EMBED_MAX_ZOOM)
                or not grid.touches(self.embed.area, self.tile))

    async def versions(self, session: AsyncSession) -> Sequence[str]:
        if self.live is not None:
            held = await self.live.versions(self.embed.partnership_id, self.layer.versioned_by, None, shared=False)
            if held is not None:
                return fill_versions(held, self.layer.versioned_by)
        found = (await session.execute(text(VERSIONS), {"p": self.embed.partnership_id,
                                                        "tables": list(self.layer.versioned_by)})).scalar_one()
        return fill_versions(found, self.layer.versioned_by)

    async def draw(self, session: AsyncSession) -> Drawn:
        cells = aggregated(self.layer)
        n = 16 >> max(0, self.tile.z - FINEST_GRID_ZOOM) if cells else None
        row = (await session.execute(
            text(tile_sql(self.layer, Plan(cells=cells, embed=True))),
            tile_params(self.layer, self.tile, embed_access(self.embed), k=self.k, cells=n,
                        area=self.embed.area))).one()
        return Drawn(bytes(row.tile or b""), fill_versions(row.versions, self.layer.versioned_by))


async def embed_bounds(session: AsyncSession, embed: EmbedView, layers: Sequence[Layer]) -> list[float] | None:
    """[west, south, east, north] of the embed's data in its layers (None when there is none)."""
    boxes = []
    for layer in layers:
        row = (await session.execute(text(extent_sql(layer, Plan(embed=True))), {
            **embed_access(embed), **area_params(embed.area), "tables": list(layer.versioned_by)})).one()
        if row.minx is not None:
            boxes.append((row.minx, row.miny, row.maxx, row.maxy))
    if not boxes:
        return None
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
