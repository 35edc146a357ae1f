"""The one statement behind an export, built from the validated catalog, and its streaming read.

A layer's rows are its catalog fields (cast to the catalog's type, so every format gets the same
columns) plus its id; geometry comes out in the shape the format wants: WKB in the partnership's
metric CRS (GeoPackage, FlatGeobuf), a GeoJSON Feature made by PostgreSQL (GeoJSON), or lon/lat
beside easting/northing (CSV). Identifiers come only from the catalog and go through
app.tiles.sql.ident(); every value is a bound parameter.

Layers read through a sharing function are exported at the caller's level, row by row: exact and
sanitised rows one by one (the function already hands out the anonymous point and drops the
reference below exact), and rows the caller may only count as `count`s on CELL_M grid cells of the
metric CRS, each placed at its cell's centre (never where an incident is) and held back when it
holds fewer than the suppression threshold (those rows are never exact, so always suppressible).
Rows the rules give the caller no level for never leave the function.
"""
from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

from app.catalog import Layer
from app.domain_errors import InvalidValue, UnknownItem
from app.ogc.cql import compile_filter, layer_queryables
from app.params import BBox, Period, date_literal
from app.sharing import AGGREGATE_CELL_M, access_params
from app.tiles.sql import from_sql, ident

FORMATS = ("gpkg", "geojson", "csv", "fgb")
CELL_M = AGGREGATE_CELL_M  # the one grid of counts-only squares (app/sharing.py)
CHUNK = 20_000        # rows fetched per round trip (memory stays a chunk, whatever the total)
GEOMETRY_TYPES = {"point": "Point", "line": "MultiLineString", "polygon": "MultiPolygon"}
SQL_TYPES = {"string": "text", "number": "float8", "boolean": "boolean", "integer": "bigint"}
Shape = Literal["wkb", "json", "csv"]


@dataclass(frozen=True)
class ExportFilter:
    """Which rows: the layer's own date and category columns, data sets (shared layers) and a
    WGS84 box. Filters a layer does not honour are ignored, as tiles do."""
    period: Period = field(default_factory=Period)
    categories: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    bbox: BBox | None = None
    cql: str | None = None          # a CQL2 filter over the layer's queryables, as /ogc takes it
    cql_lang: str = "cql2-text"     # or cql2-json

    def detail(self) -> dict[str, Any]:
        """For the audit trail and the provenance note."""
        box = self.bbox
        return {"from": self.period.start, "to": self.period.end, "categories": list(self.categories),
                "datasets": list(self.datasets),
                "bbox": [box.minlon, box.minlat, box.maxlon, box.maxlat] if box else None,
                **({"filter": self.cql} if self.cql else {})}

    def check(self, layer: Layer) -> None:
        """Refuse a bad filter (400) before anything is read or sent."""
        _where(layer, self)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # string, number, boolean or integer


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidValue(f"Unknown export format '{fmt[:20]}': use one of {', '.join(FORMATS)}.")
    return fmt


def find_layer(layers: dict[str, Layer], layer_id: str) -> Layer:
    layer = layers.get(layer_id)
    if layer is None:
        raise UnknownItem(f"There is no layer '{layer_id[:100]}'. The layers are: {', '.join(sorted(layers))}.")
    return layer


def columns(layer: Layer) -> list[Column]:
    """The attribute columns of an export, in order: id, the catalog's fields, and for shared layers
    the row's sharing level and `count` (1 for one incident, more for a cell)."""
    cols = [Column("id", "integer")] + [Column(name, kind) for name, kind in layer.fields.items()]
    if layer.shared:
        if "level" not in layer.fields:
            cols.append(Column("level", "string"))
        cols.append(Column("count", "integer"))
    return cols


def _where(layer: Layer, flt: ExportFilter) -> tuple[list[str], dict[str, Any]]:
    # A sharing function scopes itself (across partnerships where the rules say so); a view is
    # scoped to the caller's partnership first. The box is given in the column's CRS (4326), so
    # the GiST index is used.
    clauses = ["true" if layer.shared else "t.partnership_id = :p", "t.geom IS NOT NULL"]
    params: dict[str, Any] = {}
    if flt.bbox:
        clauses.append("t.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=flt.bbox.minlon, y0=flt.bbox.minlat, x1=flt.bbox.maxlon, y1=flt.bbox.maxlat)
    # Dates as literals, so a plan is made for them (app.params.date_literal); incidents are dated
    # by month: a month matches when it overlaps the period.
    date_col = layer.filters.date
    start = flt.period.first_month if date_col == "month" else flt.period.start
    if date_col and start is not None:
        clauses.append(f"t.{ident(date_col)} >= {date_literal(start)}")
    if date_col and flt.period.end:
        clauses.append(f"t.{ident(date_col)} <= {date_literal(flt.period.end)}")
    if layer.filters.category and flt.categories:
        clauses.append(f"t.{ident(layer.filters.category)} = ANY(:categories)")
        params["categories"] = list(flt.categories)
    if layer.shared and flt.datasets:
        clauses.append("t.dataset = ANY(:datasets)")
        params["datasets"] = list(flt.datasets)
    if flt.cql:  # the OGC API's compiler: names from the layer's queryables, every value bound
        compiled = compile_filter(flt.cql, layer_queryables(layer), prefix="cql", lang=flt.cql_lang)
        clauses.append(compiled.sql)
        params.update(compiled.params)
    return clauses, params


def _rows_sql(layer: Layer, flt: ExportFilter) -> tuple[str, dict[str, Any]]:
    """Every exported row with its geometry (WGS84) under the name `geom`."""
    clauses, params = _where(layer, flt)
    cols = columns(layer)
    attrs = ", ".join(f"CAST(t.{ident(c.name)} AS {SQL_TYPES[c.kind]}) AS {ident(c.name)}"
                      for c in cols if c.name != "count")
    if not layer.shared:
        return f"SELECT {attrs}, t.geom FROM {from_sql(layer)} AS t WHERE {' AND '.join(clauses)}", params
    where = " AND ".join(clauses)
    nulls = ", ".join(("'aggregate'" if c.name == "level" else f"CAST(NULL AS {SQL_TYPES[c.kind]})")
                      + f" AS {ident(c.name)}" for c in cols if c.name != "count")
    srid = "CAST(:srid AS integer)"
    sql = f"""
        SELECT {attrs}, 1 AS count, t.geom FROM {from_sql(layer)} AS t
        WHERE {where} AND t.level IN ('sanitised', 'exact')
        UNION ALL
        SELECT {nulls}, c.n AS count,
               ST_Transform(ST_SetSRID(ST_MakePoint((c.cx + 0.5) * :cell, (c.cy + 0.5) * :cell), {srid}), 4326)
        FROM (SELECT floor(ST_X(m.g) / :cell) AS cx, floor(ST_Y(m.g) / :cell) AS cy, count(*) AS n
              FROM (SELECT ST_Transform(t.geom, {srid}) AS g FROM {from_sql(layer)} AS t
                    WHERE {where} AND t.level = 'aggregate') AS m
              GROUP BY 1, 2 HAVING count(*) >= :k) AS c"""
    return sql, params


def export_sql(layer: Layer, flt: ExportFilter, shape: Shape) -> tuple[str, dict[str, Any]]:
    """The statement for one export and its filter parameters (add access_params, srid, k, cell)."""
    rows, params = _rows_sql(layer, flt)
    names = [ident(c.name) for c in columns(layer)]
    srid = "CAST(:srid AS integer)"
    if shape == "wkb":
        geom = "r.geom" if layer.geometry == "point" else "ST_Multi(r.geom)"
        select = f"{', '.join('r.' + n for n in names)}, ST_AsBinary(ST_Transform({geom}, {srid}))"
    elif shape == "json":
        props = ", ".join(f"'{c.name}', r.{ident(c.name)}" for c in columns(layer) if c.name != "id")
        body = ("'geometry', CAST(ST_AsGeoJSON(r.geom, 7) AS json), "
                f"'properties', json_build_object({props})")
        # RFC 7946: an id is a string or a number, so a cell (no id) has none
        select = (f"CAST(CASE WHEN r.id IS NULL THEN json_build_object('type', 'Feature', {body}) "
                  f"ELSE json_build_object('type', 'Feature', 'id', r.id, {body}) END AS text)")
    else:
        at = "q.geom" if layer.geometry == "point" else "ST_PointOnSurface(q.geom)"
        select = (f"{', '.join('r.' + n for n in names)}, ST_X(r.at) AS lon, ST_Y(r.at) AS lat, "
                  f"ST_X(ST_Transform(r.at, {srid})) AS easting, ST_Y(ST_Transform(r.at, {srid})) AS northing")
        if layer.geometry != "point":
            select += ", ST_AsText(r.geom) AS wkt"
        return f"SELECT {select} FROM (SELECT *, {at} AS at FROM ({rows}) AS q) AS r", params
    return f"SELECT {select} FROM ({rows}) AS r", params


def csv_header(layer: Layer) -> list[str]:
    extra = ["lon", "lat", "easting", "northing"] + ([] if layer.geometry == "point" else ["wkt"])
    return [c.name for c in columns(layer)] + extra


def bind(caller: Any, srid: int, k: int) -> dict[str, Any]:
    """The parameters every export statement takes besides its filters."""
    return {**access_params(caller), "srid": srid, "k": k, "cell": CELL_M}


NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def positional(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """asyncpg's $n placeholders for :name ones (each name numbered once), with the values in order.
    Only names present in `sql` are bound; the SQL here uses CAST(), never `::`."""
    order: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        name = m[1]
        if name not in order:
            order[name] = len(order) + 1
        return f"${order[name]}"

    out = NAMED.sub(number, sql)
    missing = set(order) - set(params)
    if missing:
        raise KeyError(f"unbound export parameters: {sorted(missing)}")
    return out, [params[name] for name in order]


async def stream(conn: Any, sql: str, params: dict[str, Any], chunk: int | None = None) -> AsyncGenerator[list[Any], None]:
    """The rows of `sql` in chunks, through a server-side cursor on a plain asyncpg connection,
    inside one read-only transaction (one snapshot for the whole export)."""
    text, args = positional(sql, params)
    transaction = conn.transaction(readonly=True)
    await transaction.start()
    try:
        cursor = await conn.cursor(text, *args)
        while rows := await cursor.fetch(chunk or CHUNK):  # CHUNK read when called: tests shrink it
            yield rows
    except BaseException:
        # Not `async with conn.transaction()`: on a connection the server has dropped, its exit
        # raises "connection is closed" in place of the error that says why (e.g. a terminated
        # backend), which is the one to log.
        if not conn.is_closed():
            await transaction.rollback()
        raise
    await transaction.commit()
