"""Coordinate reference systems by reference (OGC API – Features Part 2).

Geometries are stored in WGS84 (SRID 4326, longitude first). A caller may ask for them, or give its
bbox, in CRS84 (the default: longitude, latitude), EPSG:4326 (latitude, longitude: the axis order
the EPSG register defines, which Part 2 requires), EPSG:27700 (British National Grid, metres) or the
partnership's own metric CRS. The transformation happens in PostGIS (ST_Transform, backed by PROJ);
pyproj only checks, before any query, that a CRS we would offer is known.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pyproj import CRS as ProjCRS
from pyproj.exceptions import CRSError

from app.domain_errors import InvalidValue

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
STORAGE_CRS = CRS84  # geometries are stored as WGS84 longitude, latitude
_EPSG = re.compile(r"^(?:https?://www\.opengis\.net/def/crs/EPSG/0/|EPSG:|\[EPSG:)(\d{4,6})\]?$")
_CRS84 = re.compile(r"^(?:https?://www\.opengis\.net/def/crs/OGC/1\.3/CRS84|OGC:CRS84|\[OGC:CRS84\]|CRS84)$")
BRITISH_NATIONAL_GRID = 27700


@dataclass(frozen=True)
class Crs:
    uri: str
    srid: int          # the PostGIS SRID coordinates are transformed to
    lat_first: bool    # EPSG:4326 (and other geographic EPSG CRSs) list latitude first
    decimals: int      # digits kept: about a centimetre in either unit

    @property
    def header(self) -> str:
        """The Content-Crs header value (a URI in angle brackets)."""
        return f"<{self.uri}>"


WGS84_LONLAT = Crs(CRS84, 4326, False, 7)


@lru_cache(maxsize=32)
def _known(code: int) -> tuple[bool, bool]:
    """(exists, geographic with latitude first) for an EPSG code, from PROJ's database."""
    try:
        crs = ProjCRS.from_epsg(code)
    except CRSError:
        return False, False
    axes = crs.axis_info
    return True, bool(crs.is_geographic and axes and axes[0].direction.lower() == "north")


def supported_srids(partnership_srid: int) -> list[int]:
    """EPSG codes offered besides CRS84: 4326, 27700 and the partnership's metric CRS."""
    codes = [4326, BRITISH_NATIONAL_GRID]
    if partnership_srid not in codes and _known(partnership_srid)[0]:
        codes.append(partnership_srid)
    return codes


def supported_uris(partnership_srid: int) -> list[str]:
    return [CRS84] + [EPSG_URI.format(code=c) for c in supported_srids(partnership_srid)]


def parse_crs(value: str | None, partnership_srid: int, name: str = "crs") -> Crs:
    """A CRS the caller names (URI, safe CURIE or EPSG:n), or a 400 listing what is offered."""
    if value is None or value.strip() == "":
        return WGS84_LONLAT
    v = value.strip()
    if _CRS84.match(v):
        return WGS84_LONLAT
    m = _EPSG.match(v)
    if m and int(m.group(1)) in supported_srids(partnership_srid):
        code = int(m.group(1))
        _, lat_first = _known(code)
        return Crs(EPSG_URI.format(code=code), code, lat_first, 7 if code == 4326 or lat_first else 2)
    raise InvalidValue(f"{name} {v[:120]!r} is not offered; use one of: "
                       + ", ".join(supported_uris(partnership_srid)) + ".")
