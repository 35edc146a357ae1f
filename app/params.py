"""Query values shared by the API, the analysis and the CLI: bbox, dates, limits. Parsing raises
BadRequest (app.errors), which the API maps to a 400; nothing here knows of HTTP."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from app.errors import BadRequest


@dataclass(frozen=True)
class BBox:
    minlon: float
    minlat: float
    maxlon: float
    maxlat: float


def parse_bbox(value: str | None) -> BBox | None:
    """`bbox=minlon,minlat,maxlon,maxlat` in WGS84 (RFC 7946 order)."""
    if value is None or value == "":
        return None
    parts = value.split(",")
    if len(parts) != 4:
        raise BadRequest("bbox must be four numbers: minlon,minlat,maxlon,maxlat.")
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
    except ValueError as e:
        raise BadRequest("bbox must be four numbers: minlon,minlat,maxlon,maxlat.") from e
    if not all(math.isfinite(v) for v in (minlon, minlat, maxlon, maxlat)):
        raise BadRequest("bbox values must be finite numbers.")
    if not (-180 <= minlon <= 180 and -180 <= maxlon <= 180 and -90 <= minlat <= 90 and -90 <= maxlat <= 90):
        raise BadRequest("bbox is outside -180..180 longitude / -90..90 latitude.")
    if minlon > maxlon or minlat > maxlat:
        raise BadRequest("bbox minimums must not exceed its maximums.")
    return BBox(minlon, minlat, maxlon, maxlat)


def parse_month_or_date(value: str | None, name: str, end: bool = False) -> date | None:
    """ISO 8601 `YYYY-MM` or `YYYY-MM-DD`. A month as an upper bound means its last day."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 7:
            y, m = int(value[:4]), int(value[5:7])
            if value[4] != "-":
                raise ValueError
            first = date(y, m, 1)
            if not end:
                return first
            nxt = date(y + (m == 12), m % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        return date.fromisoformat(value)
    except (ValueError, IndexError) as e:
        raise BadRequest(f"{name} must be an ISO 8601 date, YYYY-MM or YYYY-MM-DD.") from e
