"""Incident counts on grid squares: the collection for what a caller may count but not see one by
one (the aggregate level), with the same suppression as the map's cells. Squares are CELL_M metres
in the partnership's metric CRS; a square's id is its column and row packed into one number, so
squares page by key like every other collection. Small counts are left out unless every incident in
the square is seen exactly, so no query (any bbox, category or month) lists a count of 1..k-1 that
rests on a sanitised or aggregate incident."""
from __future__ import annotations

from app.sharing import AGGREGATE_CELL_M as CELL_M

OFFSET = 1 << 24   # columns and rows shifted to be non-negative before packing
SHIFT = 1 << 25


def source(rows_src: str, rows_where: str, srid: int) -> str:
    """The FROM item of squares (alias t: id, geom in WGS84, count) over the rows of `rows_src` (the
    sharing function, alias t) that meet `rows_where`. :k_suppress is bound by the caller."""
    s = int(srid)
    return f"""(
        SELECT (c.ix + {OFFSET}) * {SHIFT} + (c.iy + {OFFSET}) AS id,
               ST_Transform(ST_MakeEnvelope(c.ix * {CELL_M}, c.iy * {CELL_M}, (c.ix + 1) * {CELL_M},
                                            (c.iy + 1) * {CELL_M}, {s}), 4326) AS geom,
               c.n AS count
        FROM (
            SELECT floor(ST_X(p.g) / {CELL_M})::bigint AS ix, floor(ST_Y(p.g) / {CELL_M})::bigint AS iy,
                   count(*) AS n, bool_and(p.level = 'exact') AS all_exact
            FROM (SELECT ST_Transform(t.geom, {s}) AS g, t.level FROM {rows_src} WHERE {rows_where}) AS p
            GROUP BY 1, 2
        ) AS c
        WHERE c.n >= :k_suppress OR c.all_exact
    ) AS t"""
