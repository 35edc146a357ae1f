"""Reading the values people and OpenStreetMap write for cameras: directions, heights, types,
statuses, yes/no. Shared by the register import and the OSM extract, so both read alike."""
from __future__ import annotations

import re

COMPASS = {name: i * 22.5 for i, name in enumerate(
    "N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split())}
COMPASS.update({"NORTH": 0.0, "EAST": 90.0, "SOUTH": 180.0, "WEST": 270.0})

NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?)\s*([a-z°]*)\s*$", re.IGNORECASE)

CAMERA_TYPES = {
    "fixed": "fixed", "static": "fixed", "bullet": "fixed", "box": "fixed",
    "ptz": "ptz", "pan tilt zoom": "ptz", "pan/tilt/zoom": "ptz", "pan-tilt-zoom": "ptz",
    "panning": "ptz", "revolving": "ptz",
    "dome": "dome",
    "anpr": "anpr", "lpr": "anpr", "alpr": "anpr",
    "redeployable": "redeployable", "rdc": "redeployable", "re-deployable": "redeployable",
    "mobile": "redeployable", "temporary": "redeployable",
}

STATUSES = {
    "operational": "operational", "working": "operational", "live": "operational",
    "active": "operational", "ok": "operational", "in service": "operational", "online": "operational",
    "faulty": "faulty", "fault": "faulty", "broken": "faulty", "not working": "faulty",
    "defective": "faulty", "offline": "faulty", "out of service": "faulty", "awaiting repair": "faulty",
    "decommissioned": "decommissioned", "removed": "decommissioned", "gone": "decommissioned",
    "disused": "decommissioned", "retired": "decommissioned", "inactive": "decommissioned",
    "planned": "planned", "proposed": "planned", "pending": "planned", "future": "planned",
    "to be installed": "planned",
}

YES = {"yes", "y", "true", "t", "1", "monitored"}
NO = {"no", "n", "false", "f", "0", "unmonitored", "not monitored"}


def _key(value: str) -> str:
    return re.sub(r"\s+", " ", value.strip().lower().replace("_", " "))


def parse_number(value: str, units: tuple[str, ...] = ()) -> float:
    """A number, optionally followed by one of `units` ('12.5 m', '31 days', '90°')."""
    m = NUMBER.match(value)
    if not m or (m.group(2) and m.group(2).lower() not in units):
        raise ValueError(f"{value!r} is not a number")
    return float(m.group(1).replace(",", "."))


def parse_direction(value: str) -> float:
    """A bearing in degrees clockwise from north, from '135', '135°' or a compass point 'SE'.
    OSM allows several directions ('90;270'); the first is the camera's main one."""
    first = value.split(";")[0].strip()
    if first.upper() in COMPASS:
        return COMPASS[first.upper()]
    deg = parse_number(first, ("°", "deg", "degrees"))
    if not -360 <= deg <= 720:
        raise ValueError(f"direction {value!r} is not between 0 and 360 degrees")
    return deg % 360


def parse_camera_type(value: str) -> str:
    try:
        return CAMERA_TYPES[_key(value)]
    except KeyError:
        raise ValueError(f"unknown camera type {value!r} (fixed, PTZ, dome, ANPR or redeployable)") from None


def parse_status(value: str) -> str:
    try:
        return STATUSES[_key(value)]
    except KeyError:
        raise ValueError(
            f"unknown status {value!r} (operational, faulty, decommissioned or planned)") from None


def parse_bool(value: str) -> bool:
    key = _key(value)
    if key in YES:
        return True
    if key in NO:
        return False
    raise ValueError(f"{value!r} is not yes or no")
