"""Hand-made worlds that more than one test module builds: the footage scene (a small street network
in British National Grid metres with cameras beside and away from a walking path) and the tasking
world (a hotspot over a street grid, printed and shown on the tasking page). Built with the
factories; the expectations each module checks stay in that module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from pyproj import Transformer
from sqlalchemy import text

from tests.factories import TO_WGS84, Caller, agency, building, camera, dataset, person, plant, streets

# -- the footage scene ------------------------------------------------------------------------------
E0, N0 = 383_000.0, 398_000.0  # scene origin, EPSG:27700
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)
NOW = datetime.now(UTC).replace(microsecond=0)
T0 = (NOW - timedelta(days=20)).replace(second=0)  # the robbery
LONG_AGO = T0 - timedelta(days=60)                 # when the scene's cameras were registered


def ll(x: float, y: float) -> tuple[float, float]:
    """Scene metres -> (lon, lat)."""
    return TO_WGS84.transform(E0 + x, N0 + y)


# Streets (metres): A along y=0 from x=0 to 400; B up x=400 to y=100, then on to y=300 (a junction
# at (400, 100)); C along y=300 back to x=0; D down x=0; E up the middle x=200. The shortest walk
# from (0, 0) to (400, 100) is A then B (500 m; any other way is 900 m), and on to (400, 300) up B.
STREETS = {
    "A1": [(0, 0), (200, 0)], "A2": [(200, 0), (400, 0)], "B1": [(400, 0), (400, 100)],
    "B2": [(400, 100), (400, 300)], "C": [(400, 300), (0, 300)], "D": [(0, 300), (0, 0)],
    "E": [(200, 0), (200, 300)],
    "ISLAND": [(2000, 0), (2100, 0)],  # not joined to the rest
}
STOPS = [((0, 0), T0, "robbery"), ((400, 100), T0 + timedelta(minutes=10), "phone dumped"),
         ((400, 300), T0 + timedelta(minutes=30), "card used")]


def disc_entry(along_start: float, centre_along: float, offset: float, radius: float) -> float:
    """Where a straight street first enters a disc whose centre is `offset` m beside it."""
    return along_start + centre_along - math.sqrt(radius**2 - offset**2)


def disc_exit(along_start: float, centre_along: float, offset: float, radius: float) -> float:
    return along_start + centre_along + math.sqrt(radius**2 - offset**2)


# Cameras by hand: (x, y), type, bearing, fov, range, retention, status then, and what is expected.
# BESIDE-*: their coverage crosses the path; AWAY-*: near it, but their coverage does not.
CAMERAS = {
    "BESIDE-1": dict(xy=(100, -15), camera_type="ptz", range_m=30, retention_days=None, monitored=True,
                     enter=disc_entry(0, 100, 15, 30), leave=disc_exit(0, 100, 15, 30)),
    "BESIDE-0": dict(xy=(300, 20), camera_type="fixed", bearing=180, fov=60, range_m=40, retention_days=14,
                     enter=300 - 20 * math.tan(math.radians(30)), leave=300 + 20 * math.tan(math.radians(30))),
    "BESIDE-2": dict(xy=(415, 50), camera_type="dome", range_m=20, retention_days=28,
                     enter=disc_entry(400, 50, 15, 20), leave=disc_exit(400, 50, 15, 20)),
    "BESIDE-3": dict(xy=(385, 250), camera_type="ptz", range_m=20, retention_days=90,
                     enter=disc_entry(500, 150, 15, 20), leave=disc_exit(500, 150, 15, 20)),
    "AWAY-E": dict(xy=(200, 150), camera_type="ptz", range_m=30, retention_days=31),
    "AWAY-LOOKING-AWAY": dict(xy=(120, 15), camera_type="fixed", bearing=0, fov=60, range_m=50,
                              retention_days=31),
    "AWAY-FAR": dict(xy=(250, 60), camera_type="ptz", range_m=40, retention_days=31),
    "FAULTY-THEN": dict(xy=(200, -10), camera_type="ptz", range_m=20, retention_days=31, status="faulty",
                        enter=disc_entry(0, 200, 10, 20), leave=disc_exit(0, 200, 10, 20)),
    "DECOMMISSIONED": dict(xy=(350, -10), camera_type="ptz", range_m=20, retention_days=31, status="decommissioned"),
    "PLANNED": dict(xy=(60, -10), camera_type="ptz", range_m=20, retention_days=31, status="planned"),
}
LISTED = ["BESIDE-1", "BESIDE-0", "BESIDE-2", "BESIDE-3"]

async def add_camera(db, pid: int, reference: str, *, xy, camera_type="ptz", bearing=None, fov=None, range_m=None,
                     retention_days=None, status="operational", monitored=False, created_at=LONG_AGO,
                     owner="Salford City Council", **_expected) -> int:
    """A camera of the scene at (x, y) metres, owned by `owner` (a council), registered long ago."""
    return await camera(db, pid, reference, ll(*xy), name=f"{reference} camera", camera_type=camera_type,
                        bearing=bearing, fov=fov, range_m=range_m, status=status, retention_days=retention_days,
                        monitored=monitored, contact=f"cctv+{reference.lower()}@example.org",
                        owner_agency_id=await agency(db, pid, owner, "council"), created_at=created_at)


async def add_streets(db, pid: int, lines: dict) -> int:
    """Streets of the scene ('<name> Street', through points in metres) and the walking network over
    them; returns the network's edge count."""
    await streets(db, pid, {f"{name} Street": [ll(x, y) for x, y in pts] for name, pts in lines.items()})
    return (await db.execute(text("SELECT safermap_build_route_network(:p)"), {"p": pid})).scalar_one()


async def scene(db, pid: int) -> dict[str, int]:
    assert await add_streets(db, pid, STREETS) == len(STREETS)
    ids = {ref: await add_camera(db, pid, ref, **spec) for ref, spec in CAMERAS.items()}
    # Became operational today: at the time of the robbery it was faulty.
    await db.execute(text("UPDATE camera SET status = 'operational' WHERE id = :id"), {"id": ids["FAULTY-THEN"]})
    await db.commit()
    return ids


# -- the tasking world ------------------------------------------------------------------------------
# A 1.5 km square of Manchester on the British National Grid.
X0, Y0, SIDE = 383_000.0, 397_000.0, 1_500.0
STREET_EVERY = 150.0
# The hotspot: 300 incidents on one snapped point, half-way between streets.
HOT = (X0 + 525.0, Y0 + 975.0)
HOT_COUNT = 300
MONTH = date(2024, 3, 1)
BEFORE = date(2024, 2, 1)


@dataclass
class World:
    admin: Caller
    viewer: Caller
    dataset: int

    @property
    def viewer_headers(self) -> dict[str, str]:
        return self.viewer.headers

    @property
    def viewer_token(self) -> str:
        return self.viewer.token


def lonlat(x: float, y: float) -> tuple[float, float]:
    return TO_WGS84.transform(x, y)


def spread(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(X0 + 5, X0 + SIDE - 5, n), rng.uniform(Y0 + 5, Y0 + SIDE - 5, n)


async def build_world(db, make_caller, client, slug: str = "print-csp", category: str = "Burglary") -> World:
    """Streets every 150 m and a few buildings; a hotspot of 300 incidents on one point in March
    2024 over a thin spread of single incidents, and fewer in February (so the hotspot rose).
    The police's data set is shown to viewers at the sanitised level."""
    admin = await make_caller(slug, "admin")
    pid = admin.partnership_id
    grid = {}
    for k in range(int(SIDE // STREET_EVERY) + 1):
        offset = k * STREET_EVERY
        grid[f"East Road {k}"] = [lonlat(X0, Y0 + offset), lonlat(X0 + SIDE, Y0 + offset)]
        grid[f"North Road {k}"] = [lonlat(X0 + offset, Y0), lonlat(X0 + offset, Y0 + SIDE)]
    await streets(db, pid, grid)
    for bx, by in ((X0 + 20, Y0 + 20), (X0 + 320, Y0 + 620), (X0 + 1020, Y0 + 170)):
        await building(db, pid, [lonlat(bx + dx, by + dy) for dx, dy in ((0, 0), (60, 0), (60, 40), (0, 40), (0, 0))],
                       name="Block")
    police = await agency(db, pid, "Police", "police")
    ds = await dataset(db, pid, "police-crime", "sanitised", agency_id=police, name="Police recorded crime",
                       kind="police_uk")
    r = await client.post("/api/sharing/refresh-anonymous-points", headers=admin.headers)
    assert r.status_code == 200, r.text

    rng = np.random.default_rng(7)
    where = "On or near Test Street"
    await plant(db, pid, ds, [HOT[0]] * HOT_COUNT, [HOT[1]] * HOT_COUNT, MONTH, category, location_text=where)
    await plant(db, pid, ds, *spread(rng, 80), MONTH, "Anti-social behaviour", location_text=where)
    await plant(db, pid, ds, [HOT[0]] * 40, [HOT[1]] * 40, BEFORE, category, location_text=where)
    await plant(db, pid, ds, *spread(rng, 80), BEFORE, "Anti-social behaviour", location_text=where)
    viewer = await person(db, pid, "viewer", name="Vera Viewer")
    return World(admin, viewer, ds)
