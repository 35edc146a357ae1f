"""Embed tiles: the MVT SQL of a read-only embed, kept with the rest of the tile SQL. Points of
non-incident layers inside the tile and the embed's area; incidents only as counts on a fixed grid,
through the sharing function as the role 'embed'."""
from __future__ import annotations

from app import sharing
from app.catalog import Layer
from app.tiles.sql import BUFFER, EXTENT, VERSIONS, ident


def features_sql(layer: Layer) -> str:
    """One feature per row of a non-incident layer, inside the tile and the embed's area (lines and
    polygons clipped to it)."""
    cols = ", ".join(f"t.{ident(f)}" for f in layer.fields)
    geom = "t.geom" if layer.geometry == "point" else "ST_ClipByBox2D(t.geom, a.env)"
    return f"""
        SELECT (
            SELECT ST_AsMVT(f, :name, {EXTENT}, 'geom', 'id') FROM (
                SELECT ST_AsMVTGeom(ST_Transform({geom}, 3857), ST_TileEnvelope(:z, :x, :y),
                                    {EXTENT}, {BUFFER}, true) AS geom, t.id, {cols}
                FROM {ident(layer.source)} AS t,
                     (SELECT ST_MakeEnvelope(:ax0, :ay0, :ax1, :ay1, 4326) AS env) AS a
                WHERE t.partnership_id = :p
                  AND t.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326)
                  AND t.geom && a.env
            ) AS f
        ) AS tile, ({VERSIONS}) AS versions"""


def cells_sql(layer: Layer) -> str:
    """Counts on a fixed grid: n cells per tile side (16, halving past FINEST_GRID_ZOOM, so a cell
    is never finer than a z14 one). A cell is drawn at its centre, never at its members' mean, and
    only when it holds at least :min_count incidents of data sets shared at all. Cell numbers come
    from lon/lat alone and points outside 0..n-1 are dropped, so a point on a shared tile edge is
    counted once."""
    # Incidents come through the sharing rules' one function, as the role 'embed' capped at the
    # embed's precision: anonymous points only, sensitive categories held back.
    shared = layer.source in sharing.FUNCTION_SOURCES
    source = sharing.source_sql(layer.source) if shared else ident(layer.source)
    unshared = "" if shared else """
                  AND NOT EXISTS (SELECT 1 FROM dataset d
                                  WHERE d.id = t.dataset_id AND d.sharing_level = 'none')"""
    gx = "((ST_X(t.geom) + 180.0) / 360.0 * :ntiles - :tx) * :n"
    gy = "((0.5 - ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) / (2 * pi())) * :ntiles - :ty) * :n"
    return f"""
        SELECT (
            WITH pts AS (
                SELECT floor({gx})::int AS cx, floor({gy})::int AS cy
                FROM {source} AS t
                WHERE t.partnership_id = :p
                  AND t.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326)
                  AND t.geom && ST_MakeEnvelope(:ax0, :ay0, :ax1, :ay1, 4326){unshared}
            ), cells AS (
                SELECT cx, cy, count(*)::int AS count FROM pts
                WHERE cx >= 0 AND cx < :n AND cy >= 0 AND cy < :n
                GROUP BY cx, cy HAVING count(*) >= :min_count
            )
            SELECT ST_AsMVT(f, :name, {EXTENT}, 'geom') FROM (
                SELECT ST_MakePoint((cx + 0.5) * :unit, (cy + 0.5) * :unit) AS geom, count FROM cells
            ) AS f
        ) AS tile, ({VERSIONS}) AS versions"""
