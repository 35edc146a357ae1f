"""A camera's plain coverage rule, for pages that draw it before the database does (the PCSO capture
page's live preview): the default field of view of each camera type, the metres of range per metre
of mounting height, the EN 62676-4 pixel densities and the rest.

The rule is defined once, in SQL (app/sql/coverage.sql: safermap_camera_rule for the numbers,
safermap_plain_coverage for how they combine), and used there by the camera trigger and the footage
lookups. This module only reads it back, so a page can never draw by other numbers than the trigger;
`plain_coverage` asks the database for the exact wedge of values not yet saved.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

RULE = text("SELECT safermap_camera_rule()::text")
PLAIN = text("""
    SELECT ST_AsGeoJSON(pc.geom) AS geojson, pc.fov, pc.range_m, pc.bands::text AS bands, pc.assumed
    FROM safermap_plain_coverage(ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326),
                                 CAST(:srid AS integer), CAST(:camera_type AS text), CAST(:bearing AS float8),
                                 CAST(:fov AS float8), CAST(:range_m AS float8), CAST(:height_m AS float8),
                                 CAST(:resolution_px AS integer), CAST(:purpose AS text)) AS pc
""")


@dataclass(frozen=True)
class CameraRule:
    """The numbers of the rule, named as safermap_camera_rule() names them."""
    fov_deg_by_type: dict[str, float]      # 360 is a disc; a camera of unknown bearing is a disc too
    range_m_per_height_m: float            # range from mounting height when nothing better is known
    assumed_height_m: float                # the mounting height when none (or 0) is given
    density_px_per_m: dict[str, float]     # EN 62676-4, by purpose: W / (D * 2 * tan(f/2))
    purpose_when_unknown: str              # the band whose distance is the range when no purpose is given
    fisheye_from_fov_deg: float            # from this angle on, W / (D * f) instead
    max_range_m: float                     # no range or band distance beyond this

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> CameraRule:
        return cls(**value)

    def as_json(self) -> dict[str, Any]:
        """For a page: the same object safermap_camera_rule() returns."""
        return asdict(self)


@dataclass(frozen=True)
class PlainCoverage:
    geojson: str                 # the wedge or disc, WGS84
    fov: float
    range_m: float
    bands: dict[str, float]      # band -> distance in metres (only with a resolution)
    assumed: bool                # any value came from the defaults


async def camera_rule(session: AsyncSession) -> CameraRule:
    """The rule as the database holds it."""
    return CameraRule.from_json(json.loads((await session.execute(RULE)).scalar_one()))


async def plain_coverage(session: AsyncSession, *, lon: float, lat: float, srid: int, camera_type: str,
                         bearing: float | None = None, fov: float | None = None, range_m: float | None = None,
                         height_m: float | None = None, resolution_px: int | None = None,
                         purpose: str | None = None) -> PlainCoverage:
    """The plain coverage the trigger would store for a camera with these values."""
    row = (await session.execute(PLAIN, {
        "lon": lon, "lat": lat, "srid": srid, "camera_type": camera_type, "bearing": bearing, "fov": fov,
        "range_m": range_m, "height_m": height_m, "resolution_px": resolution_px, "purpose": purpose})).one()
    return PlainCoverage(row.geojson, row.fov, row.range_m, json.loads(row.bands), row.assumed)
