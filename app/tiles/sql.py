"""The SQL behind vector tiles and TileJSON, built from the validated catalog.

Identifiers come only from the catalog (already checked against a strict pattern) and still go
through `ident()`; every value is a bound parameter. Each tile is one statement: it returns the
tile and the data versions it was drawn from, read in the same snapshot, so the ETag a tile is
cached under always describes exactly the data in it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from app.catalog import IDENT, Layer
from app.sharing import is_shared, source_sql

EXTENT = 4096           # tile coordinate space (ST_AsMVT's default)
BUFFER = 64             # tile units drawn beyond the edge, so symbols and outlines do not clip
HALF_WORLD = 20037508.342789244  # EPSG:3857 half width, metres


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

    def shape(self) -> tuple[bool, bool, bool]:
        return (self.date_from is not None, self.date_to is not None, bool(self.categories))

    def params(self) -> dict:
        return {"date_from": self.date_from, "date_to": self.date_to, "categories": list(self.categories)}


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


def versions_sql(layer: Layer) -> str:
    return SHARED_VERSIONS if is_shared(layer.source) else VERSIONS


def _where(layer: Layer, shape: tuple[bool, bool, bool], envelope: str | None) -> str:
    # Scope to the partnership first; filter by the envelope transformed to the column's CRS
    # (never the column to the tile's), so the GiST index on geom is used.
    # A shared source (the sharing function) is scoped by the function itself, across partnerships
    # where the rules say so.
    clauses = ["true"] if is_shared(layer.source) else ["t.partnership_id = :p"]
    if envelope:
        clauses.append(f"t.geom && ST_Transform({envelope}, 4326)")
    has_from, has_to, has_cats = shape
    if layer.filters.date and has_from:
        clauses.append(f"t.{ident(layer.filters.date)} >= :date_from")
    if layer.filters.date and has_to:
        clauses.append(f"t.{ident(layer.filters.date)} <= :date_to")
    if layer.filters.category and has_cats:
        clauses.append(f"t.{ident(layer.filters.category)} = ANY(:categories)")
    return " AND ".join(clauses)


def _features(layer: Layer, shape: tuple[bool, bool, bool]) -> str:
    """One MVT feature per row: the catalog's fields, the row id as the MVT feature id. (ST_AsMVT
    skips the rare NULL geometry ST_AsMVTGeom returns; filtering on it would draw each twice.)"""
    cols = ", ".join(f"t.{ident(f)}" for f in layer.fields)
    envelope = "ST_TileEnvelope(:z, :x, :y, margin => :margin)"
    where = _where(layer, shape, envelope)
    exact = "false"
    if is_shared(layer.source):
        # Aggregate-level rows are for counting only, never shown one by one. Whether the tile
        # holds exact locations is returned with it (the exact-view audit needs it).
        where += " AND t.level IN ('sanitised', 'exact')"
        exact = "coalesce(bool_or(f.level = 'exact'), false)"
        if "level" not in layer.fields:
            cols += ", t.level"
    return f"""
        SELECT ST_AsMVT(f, :name, {EXTENT}, 'geom', 'id') AS tile, {exact} AS exact FROM (
            SELECT ST_AsMVTGeom(ST_Transform(t.geom, 3857), ST_TileEnvelope(:z, :x, :y),
                                {EXTENT}, {BUFFER}, true) AS geom,
                   t.id, {cols}
            FROM {source_sql(layer.source)} AS t
            WHERE {where}
        ) AS f"""


def _cells(layer: Layer, shape: tuple[bool, bool, bool]) -> str:
    """Aggregates for dense zooms: points grouped into square cells of about `cell_px` tile pixels,
    one feature per occupied cell at the mean position of its members, carrying `count` (and the
    most frequent category). Cells are numbered on a world grid (n per tile side) computed from
    lon/lat alone, so a point on an edge shared by two tiles gets the same cell number in both and
    is counted in exactly one tile and one cell. The arithmetic (spherical Mercator) is cheaper
    than transforming and clipping every point, and the edge test runs per cell, not per point."""
    cat = layer.filters.category
    cat_col = f", t.{ident(cat)} AS cat" if cat else ""
    cat_group = ", cat" if cat else ""
    top = ", (array_agg(cat ORDER BY n DESC, cat))[1] AS top_category" if cat else ""
    top_out = ", top_category" if cat else ""
    # Suppression: a cell is held back when it has fewer than :k incidents and the caller does
    # not see every one of them exactly (positions of shared rows below exact are anonymous).
    ex_col = ", t.level = 'exact' AS ex" if is_shared(layer.source) else ", true AS ex"
    gx = "(ST_X(t.geom) + 180.0) / 360.0 * :gscale"
    gy = "(0.5 - ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) / (2 * pi())) * :gscale"
    return f"""
        WITH by_cat AS MATERIALIZED (  -- a fence: the cell-range test must not run per point
            SELECT floor(gx)::bigint AS cx, floor(gy)::bigint AS cy{cat_group},
                   count(*) AS n, sum(gx) AS sx, sum(gy) AS sy, bool_and(ex) AS ex
            FROM (  -- OFFSET 0 keeps this apart, so each point's position is computed once
                SELECT {gx} AS gx, {gy} AS gy{cat_col}{ex_col}
                FROM {source_sql(layer.source)} AS t
                WHERE {_where(layer, shape, "ST_TileEnvelope(:z, :x, :y)")}
                OFFSET 0
            ) AS p
            GROUP BY 1, 2{cat_group}
        ), cells AS (
            SELECT sum(n)::int AS count, sum(sx) / sum(n) - :gx0 AS mx, sum(sy) / sum(n) - :gy0 AS my{top}
            FROM by_cat WHERE cx >= :gx0 AND cx < :gx0 + :n AND cy >= :gy0 AND cy < :gy0 + :n
            GROUP BY cx, cy
            HAVING bool_and(ex) OR sum(n) >= :k
        )
        SELECT ST_AsMVT(f, :name, {EXTENT}, 'geom') AS tile, false AS exact FROM (
            SELECT ST_MakePoint(round(mx * :unit), round(my * :unit)) AS geom, count{top_out} FROM cells
        ) AS f"""


# Built statements, keyed by the layer's full definition (pydantic models are not hashable, and a
# catalog reload must never reuse a statement built for a different definition).
_BUILT: dict[tuple, str] = {}


def _memo(key: tuple, build) -> str:
    if key not in _BUILT:
        if len(_BUILT) > 512:
            _BUILT.clear()
        _BUILT[key] = build()
    return _BUILT[key]


def tile_sql(layer: Layer, clustered: bool, shape: tuple[bool, bool, bool]) -> str:
    """The whole tile statement: (tile bytes, data versions) from one snapshot."""
    def build() -> str:
        body = _cells(layer, shape) if clustered else _features(layer, shape)
        return f"SELECT b.tile, b.exact, ({versions_sql(layer)}) AS versions FROM ({body}) AS b"
    return _memo(("tile", layer.model_dump_json(), clustered, shape), build)


def tile_params(layer: Layer, partnership_id: int, z: int, x: int, y: int, filters: TileFilters,
                access: dict | None = None, suppress_below: int = 5) -> dict:
    """`access`: the sharing function's parameters for the caller (app.sharing.access_params);
    without it a shared layer is read as the partnership's admin would."""
    params = {"p": partnership_id, "z": z, "x": x, "y": y, "name": layer.id,
              "tables": list(layer.versioned_by), "margin": BUFFER / EXTENT, "k": suppress_below,
              "role": "admin", "agency": None, "level_cap": "exact"}
    params.update(access or {})
    if layer.cluster:
        n = max(1, round(256 / layer.cluster.cell_px))  # cells per tile side
        params.update(n=n, gscale=float(n << z), gx0=x * n, gy0=y * n, unit=EXTENT / n)
    params.update({k: v for k, v in filters.params().items() if v not in (None, [])})
    return params


def extent_sql(layer: Layer, shape: tuple[bool, bool, bool]) -> str:
    """Bounds of the caller's data for TileJSON, with the versions they were read at."""
    return _memo(("extent", layer.model_dump_json(), shape), lambda: _extent_sql(layer, shape))


def _extent_sql(layer: Layer, shape: tuple[bool, bool, bool]) -> str:
    where = _where(layer, shape, None)
    return f"""
        SELECT ST_XMin(e) AS minx, ST_YMin(e) AS miny, ST_XMax(e) AS maxx, ST_YMax(e) AS maxy,
               ({versions_sql(layer)}) AS versions
        FROM (SELECT ST_Extent(t.geom) AS e FROM {source_sql(layer.source)} AS t WHERE {where}) AS s"""


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The tile (x, y) holding a WGS84 point at zoom z (for tests and the benchmark)."""
    n = 1 << z
    lat = max(min(lat, 85.0511), -85.0511)
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


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
