"""The SQL behind every vector tile and TileJSON bound: one builder, driven by the validated catalog.

A statement is shaped by a `Plan`: points or cells, which request filters are given, and whether
it is for an embed (the embed's own partnership only, inside its area, never exact; cells drawn at
the cell's centre, small cells always held back). Identifiers come only from the catalog (already
checked against a strict pattern) and still go through `ident()`; every value is a bound
parameter, but for the period's dates (checked `date`s, written as literals: see Plan). Each tile
is one statement: it returns the tile, whether it holds exact locations, and the data versions it
was drawn from, read in the same snapshot, so the ETag a tile is cached under always describes
exactly the data in it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cachetools import LRUCache, cached

from app.catalog import IDENT, Layer
from app.params import date_literal
from app.sharing import FUNCTION_ARGS
from app.tiles import grid
from app.tiles.grid import Tile
from app.tiles.grid import lonlat_to_tile as lonlat_to_tile  # tests and benches import it from here

EXTENT = 4096           # tile coordinate space (ST_AsMVT's default)
BUFFER = 64             # tile units drawn beyond the edge, so symbols and outlines do not clip
AREA = "ST_MakeEnvelope(:ax0, :ay0, :ax1, :ay1, 4326)"  # an embed's area (lon/lat)


def ident(name: str) -> str:
    """Quote a catalog identifier. The catalog already enforced the pattern; this refuses anything
    else rather than escaping it, so a bad name can never reach SQL."""
    if not IDENT.match(name):
        raise ValueError(f"not a catalog identifier: {name!r}")
    return '"' + name + '"'


@dataclass(frozen=True)
class TileFilters:
    """Request filters a layer honours (from/to on its date column, categories on its category
    column). Part of the ETag and of the SQL shape."""
    date_from: date | None = None
    date_to: date | None = None
    categories: tuple[str, ...] = ()

    def key(self) -> str:
        return f"{self.date_from or ''}..{self.date_to or ''};{','.join(self.categories)}"

    def shape(self) -> tuple[date | None, date | None, bool]:
        return (self.date_from, self.date_to, bool(self.categories))

    def params(self) -> dict:
        """The bound values (the period's dates are in the statement's text: see Plan)."""
        return {"categories": list(self.categories)}


@dataclass(frozen=True)
class Plan:
    """What shapes a statement's text; one statement (and one server-side plan) per Plan."""
    cells: bool = False                                  # counts on grid cells, not one feature a row
    # The period (from, to: None when open) and whether categories are given. The dates are written
    # into the statement as literals, not bound: asyncpg prepares each statement once per
    # connection, and after five runs PostgreSQL may switch to a generic plan, which cannot know
    # how many months `month >= $n` keeps (it guesses 0.5%) and so ANDs the (dataset_id, month)
    # index, walked over the whole period, into every tile: for a 12 or 24 month period a z16 tile
    # cost 3-5x, a cells tile 1.5-2x, the plan for its own dates. One statement per period.
    filters: tuple[date | None, date | None, bool] = (None, None, False)
    embed: bool = False                                  # for an embed (see the module docstring)
    aggregate: bool = False                              # cells counted from incident_cell (see _aggregate)


VERSIONS = """
    SELECT coalesce(array_agg(source || '=' || version ORDER BY source), '{}')
    FROM data_version WHERE partnership_id = :p AND source = ANY(:tables)
"""
# A shared layer may show other partnerships' data (to a hub agency they grant): its versions are
# those of every partnership the caller can see, the caller's own unprefixed.
SHARED_VERSIONS = """
    SELECT coalesce(array_agg(CASE WHEN partnership_id = :p THEN '' ELSE partnership_id || ':' END
                              || source || '=' || version ORDER BY partnership_id, source), '{}')
    FROM data_version
    WHERE partnership_id IN (SELECT safermap_visible_partnerships(:p, CAST(:agency AS integer)))
      AND source = ANY(:tables)
"""


def versions_sql(layer: Layer, embed: bool = False) -> str:
    return SHARED_VERSIONS if layer.shared and not embed else VERSIONS


def from_sql(layer: Layer) -> str:
    """The FROM item the catalog names: a view, or a sharing function called with the caller."""
    return f"{ident(layer.source)}{FUNCTION_ARGS}" if layer.shared else ident(layer.source)


def _where(layer: Layer, plan: Plan, envelope: str | None) -> str:
    # Scope to the partnership first; filter by the envelope transformed to the column's CRS
    # (never the column to the tile's), so the GiST index on geom is used. A sharing function
    # scopes itself, across partnerships where the rules say so; an embed shows its own only.
    clauses = ["t.partnership_id = :p"] if plan.embed or not layer.shared else ["true"]
    if envelope:
        clauses.append(f"t.geom && ST_Transform({envelope}, 4326)")
    if plan.embed:
        clauses.append(f"t.geom && {AREA}")
    date_from, date_to, has_cats = plan.filters
    if layer.filters.date and date_from is not None:
        clauses.append(f"t.{ident(layer.filters.date)} >= {date_literal(date_from)}")
    if layer.filters.date and date_to is not None:
        clauses.append(f"t.{ident(layer.filters.date)} <= {date_literal(date_to)}")
    if layer.filters.category and has_cats:
        clauses.append(f"t.{ident(layer.filters.category)} = ANY(:categories)")
    return " AND ".join(clauses)


def _features(layer: Layer, plan: Plan) -> str:
    """One MVT feature per row: the catalog's fields, the row id as the MVT feature id. (ST_AsMVT
    skips the rare NULL geometry ST_AsMVTGeom returns; filtering on it would draw each twice.)"""
    cols = ", ".join(f"t.{ident(f)}" for f in layer.fields)
    where = _where(layer, plan, "ST_TileEnvelope(:z, :x, :y, margin => :margin)")
    # In an embed, lines and polygons stop at the area's edge.
    geom = f"ST_ClipByBox2D(t.geom, {AREA})" if plan.embed and layer.geometry != "point" else "t.geom"
    exact = "false"
    if layer.shared:
        # Aggregate-level rows are for counting only, never shown one by one. Whether the tile
        # holds exact locations is returned with it (the exact-view audit needs it).
        where += " AND t.level IN ('sanitised', 'exact')"
        exact = "coalesce(bool_or(f.level = 'exact'), false)"
        if "level" not in layer.fields:
            cols += ", t.level"
    return f"""
        SELECT ST_AsMVT(f, :name, {EXTENT}, 'geom', 'id') AS tile, {exact} AS exact FROM (
            SELECT ST_AsMVTGeom(ST_Transform({geom}, 3857), ST_TileEnvelope(:z, :x, :y),
                                {EXTENT}, {BUFFER}, true) AS geom,
                   t.id, {cols}
            FROM {from_sql(layer)} AS t
            WHERE {where}
        ) AS f"""


def _cells(layer: Layer, plan: Plan) -> str:
    """Counts for dense zooms: points grouped into square cells (:n per tile side), one feature per
    occupied cell carrying `count` (and the most frequent category). Cells are numbered on a world
    grid computed from lon/lat alone, so a point on an edge shared by two tiles gets the same cell
    number in both and is counted in exactly one tile and one cell. The arithmetic (spherical
    Mercator) is cheaper than transforming and clipping every point, and the edge test runs per
    cell, not per point. A cell is drawn at the mean position of its members, or, in an embed, at
    its centre (never where its incidents are)."""
    cat = None if plan.embed else layer.filters.category
    cat_col = f", t.{ident(cat)} AS cat" if cat else ""
    cat_group = ", cat" if cat else ""
    top = ", (array_agg(cat ORDER BY n DESC, cat))[1] AS top_category" if cat else ""
    top_out = ", top_category" if cat else ""
    # Suppression: a cell is held back when it has fewer than :k incidents and the caller does
    # not see every one of them exactly (positions of shared rows below exact are anonymous; an
    # embed is never exact).
    ex_col = ", false AS ex" if plan.embed else ", t.level = 'exact' AS ex" if layer.shared else ", true AS ex"
    if plan.embed:
        position = "cx - :gx0 + 0.5 AS mx, cy - :gy0 + 0.5 AS my"
    else:
        position = "sum(sx) / sum(n) - :gx0 AS mx, sum(sy) / sum(n) - :gy0 AS my"
    gx = "(ST_X(t.geom) + 180.0) / 360.0 * :gscale"
    gy = "(0.5 - ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) / (2 * pi())) * :gscale"
    return f"""
        WITH by_cat AS MATERIALIZED (  -- a fence: the cell-range test must not run per point
            SELECT floor(gx)::bigint AS cx, floor(gy)::bigint AS cy{cat_group},
                   count(*) AS n, sum(gx) AS sx, sum(gy) AS sy, bool_and(ex) AS ex
            FROM (  -- OFFSET 0 keeps this apart, so each point's position is computed once
                SELECT {gx} AS gx, {gy} AS gy{cat_col}{ex_col}
                FROM {from_sql(layer)} AS t
                WHERE {_where(layer, plan, "ST_TileEnvelope(:z, :x, :y)")}
                OFFSET 0
            ) AS p
            GROUP BY 1, 2{cat_group}
        ), cells AS (
            SELECT sum(n)::int AS count, {position}{top}
            FROM by_cat WHERE cx >= :gx0 AND cx < :gx0 + :n AND cy >= :gy0 AND cy < :gy0 + :n
            GROUP BY cx, cy
            HAVING bool_and(ex) OR sum(n) >= :k
        )
        SELECT ST_AsMVT(f, :name, {EXTENT}, 'geom') AS tile, false AS exact FROM (
            SELECT ST_MakePoint(round(mx * :unit), round(my * :unit)) AS geom, count{top_out} FROM cells
        ) AS f"""


# The aggregate's grid (app/sql/incident_cells.sql): 16 cells a tile side, tile zooms 0..15.
AGGREGATE_CELLS = 16
AGGREGATE_MAX_ZOOM = 15
AGGREGATE_SOURCE = "safermap_visible_incidents"
CELL_ARGS = "(:p, CAST(:role AS text), CAST(:agency AS integer), CAST(:level_cap AS text), :z, :x, :y)"


def aggregate_applies(layer: Layer, z: int, cells: int | None, filters: TileFilters) -> bool:
    """Whether a tile's cells can be counted from the per-data-version aggregate: the incidents'
    sharing function drawn as cells of the aggregate's grid, and no date filter (the aggregate
    has no months; a dated tile is counted from every point, as before)."""
    return (layer.shared and layer.source == AGGREGATE_SOURCE and cells == AGGREGATE_CELLS
            and z <= AGGREGATE_MAX_ZOOM and filters.date_from is None and filters.date_to is None
            and layer.filters.category in (None, "category"))


def _aggregate(layer: Layer, plan: Plan) -> str:
    """`_cells` for the incidents, from the aggregate instead of every point: the tile's cells the
    caller may count (safermap_visible_incident_cells: the sharing rules, applied to the aggregate),
    summed per cell and category, then exactly the same suppression, position and top category as
    `_cells`. The caller's stale partnerships are returned with it: a tile drawn while any is
    stale is thrown away (app/tiles/pipeline.py draws it from every point instead)."""
    top = ", (array_agg(cat ORDER BY n DESC, cat))[1] AS top_category" if layer.filters.category else ""
    top_out = ", top_category" if layer.filters.category else ""
    cats = " WHERE c.category = ANY(:categories)" if plan.filters[2] else ""
    return f"""
        WITH by_cat AS (
            SELECT c.cx, c.cy, c.category AS cat, sum(c.n) AS n, sum(c.sx) AS sx, sum(c.sy) AS sy,
                   bool_and(c.level = 'exact') AS ex
            FROM safermap_visible_incident_cells{CELL_ARGS} AS c{cats}
            GROUP BY 1, 2, 3
        ), cells AS (
            SELECT sum(n)::int AS count, sum(sx) / sum(n) - :gx0 AS mx, sum(sy) / sum(n) - :gy0 AS my{top}
            FROM by_cat
            GROUP BY cx, cy
            HAVING bool_and(ex) OR sum(n) >= :k
        )
        SELECT ST_AsMVT(f, :name, {EXTENT}, 'geom') AS tile, false AS exact FROM (
            SELECT ST_MakePoint(round(mx * :unit), round(my * :unit)) AS geom, count{top_out} FROM cells
        ) AS f"""


# Built statements, keyed by the layer's whole definition (pydantic models are not hashable, and a
# catalog reload must never reuse a statement built for a different definition).
@cached(LRUCache(maxsize=512), key=lambda layer, plan: (layer.model_dump_json(), plan))
def tile_sql(layer: Layer, plan: Plan) -> str:
    """The whole tile statement: (tile bytes, exact, data versions) from one snapshot."""
    if plan.aggregate:
        return (f"SELECT b.tile, b.exact, ({versions_sql(layer)}) AS versions, "
                f"safermap_stale_incident_cells{FUNCTION_ARGS} AS stale FROM ({_aggregate(layer, plan)}) AS b")
    body = _cells(layer, plan) if plan.cells else _features(layer, plan)
    return f"SELECT b.tile, b.exact, ({versions_sql(layer, plan.embed)}) AS versions FROM ({body}) AS b"


@cached(LRUCache(maxsize=512), key=lambda layer, plan: (layer.model_dump_json(), plan))
def extent_sql(layer: Layer, plan: Plan) -> str:
    """Bounds of the caller's data (TileJSON, an embed's opening view), with the versions they were
    read at. Through the sharing function too: below exact they are anonymous points' bounds."""
    return f"""
        SELECT ST_XMin(e) AS minx, ST_YMin(e) AS miny, ST_XMax(e) AS maxx, ST_YMax(e) AS maxy,
               ({versions_sql(layer, plan.embed)}) AS versions
        FROM (SELECT ST_Extent(t.geom) AS e FROM {from_sql(layer)} AS t
              WHERE {_where(layer, plan, None)}) AS s"""


def tile_params(layer: Layer, tile: Tile, access: dict[str, Any], *, filters: TileFilters = TileFilters(),
                k: int = 5, cells: int | None = None,
                area: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
    """The bound values of a tile statement. `access`: the sharing function's parameters for the
    caller (app.sharing.access_params); `k`: the suppression threshold; `cells`: cells per tile
    side when drawing cells; `area`: an embed's area."""
    params: dict[str, Any] = {**access, "z": tile.z, "x": tile.x, "y": tile.y, "name": layer.id,
                              "tables": list(layer.versioned_by), "margin": BUFFER / EXTENT, "k": k}
    if cells:
        params.update(n=cells, gscale=float(cells * grid.tiles_across(tile.z)), gx0=tile.x * cells, gy0=tile.y * cells,
                      unit=EXTENT / cells)
    params.update(area_params(area))
    params.update({name: v for name, v in filters.params().items() if v not in (None, [])})
    return params


def area_params(area: tuple[float, float, float, float] | None) -> dict[str, float]:
    x0, y0, x1, y1 = area or (-180.0, -90.0, 180.0, 90.0)
    return {"ax0": x0, "ay0": y0, "ax1": x1, "ay1": y1}


# Cells arrive as arrays of lower-left corners (metric CRS) and counts; PostGIS makes the squares,
# projects them and encodes the tile.
HOTSPOT_CELL_TILE_SQL = f"""
    SELECT ST_AsMVT(f, 'hotspot_cells', {EXTENT}, 'geom') FROM (
        SELECT ST_AsMVTGeom(ST_Transform(ST_MakeEnvelope(c.x, c.y, c.x + :size, c.y + :size, CAST(:srid AS integer)),
                                         3857),
                            ST_TileEnvelope(:z, :x, :y), {EXTENT}, {BUFFER}, true) AS geom,
               c.n AS count, 'E' || round(c.x) || 'N' || round(c.y) AS id, CAST(:size AS float8) AS cell_m
        FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]), CAST(:ns AS integer[])) AS c(x, y, n)
    ) AS f"""
