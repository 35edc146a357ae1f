"""Bulk loading into PostGIS with COPY: geometries as EWKB, pandas' missing values as NULL.
Shared by the demo loader and the OpenStreetMap import."""
from __future__ import annotations

import asyncpg
import numpy as np
import shapely

STREET_COLUMNS = ["partnership_id", "osm_id", "name", "highway", "lit", "geom"]
BUILDING_COLUMNS = ["partnership_id", "osm_id", "name", "height_m", "levels", "geom"]


def ewkb(geoms: np.ndarray) -> list[bytes]:
    """WGS84 geometries as EWKB, which PostGIS's binary input takes straight into a COPY."""
    return list(shapely.to_wkb(shapely.set_srid(geoms, 4326), include_srid=True))


def values(column) -> list:
    """A column's values with pandas' missing markers (NaN, NA) as None, for COPY."""
    return [None if v is None or v != v else v for v in column.astype(object).tolist()]


async def geometry_as_bytes(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("geometry", schema="public", format="binary",
                              encoder=bytes, decoder=bytes)


async def copy_rows(conn: asyncpg.Connection, table: str, columns: list[str], records: list[tuple]) -> None:
    if records:
        await conn.copy_records_to_table(table, columns=columns, records=records)
