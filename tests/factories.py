"""Builders every test module shares: partnerships, agencies, people with tokens, data sets,
incidents, cameras, streets, buildings, and Chromium signed in as someone.

Plain async functions over an AsyncSession (the `db` fixture): each writes what it is given and
commits, so the app under test (another connection) sees it at once. Only the columns a test names
are written, so everything else keeps the schema's defaults. Test modules import from here (never
from one another); the fixtures at the end are registered for every module by tests/conftest.py.
"""
from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

LON, LAT = -2.2426, 53.4808  # Manchester, Piccadilly Gardens
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LonLat = tuple[float, float]


# -- partnerships and people ------------------------------------------------------------------------
@dataclass
class Caller:
    """Someone calling the API: their partnership, role and a bearer token."""
    partnership_id: int
    slug: str
    role: str
    token: str
    principal_id: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def partnership(db: AsyncSession, slug: str = "test-csp", srid: int = 27700, name: str | None = None) -> int:
    """The partnership with this slug, made if it is not there yet."""
    pid = (await db.execute(text(
        "INSERT INTO partnership (slug, name, srid) VALUES (:s, :n, :srid) "
        "ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug RETURNING id"),
        {"s": slug, "n": name or slug, "srid": srid})).scalar_one()
    await db.commit()
    return pid


async def agency(db: AsyncSession, pid: int, name: str = "Police", kind: str = "police") -> int:
    """The partnership's agency of this name (its kind set to `kind`), made if it is not there yet."""
    aid = (await db.execute(text(
        "INSERT INTO agency (partnership_id, name, kind) VALUES (:p, :n, :k) "
        "ON CONFLICT (partnership_id, name) DO UPDATE SET kind = EXCLUDED.kind RETURNING id"),
        {"p": pid, "n": name, "k": kind})).scalar_one()
    await db.commit()
    return aid


async def person(db: AsyncSession, pid: int, role: str = "viewer", *, agency_id: int | None = None,
                 name: str | None = None) -> Caller:
    """A new principal of the partnership with a fresh bearer token."""
    from app.auth import create_token
    row = (await db.execute(text(
        "INSERT INTO principal (partnership_id, agency_id, name, role) VALUES (:p, :a, :n, :r) "
        "RETURNING id, (SELECT slug FROM partnership WHERE id = :p) AS slug"),
        {"p": pid, "a": agency_id, "n": name or f"{role} person", "r": role})).one()
    token = await create_token(db, row.id, "test")
    await db.commit()
    return Caller(pid, row.slug, role, token, row.id)


# -- data sets and incidents ------------------------------------------------------------------------
async def dataset(db: AsyncSession, pid: int, key: str = "police-uk:test", level: str | None = None, *,
                  agency_id: int | None = None, name: str | None = None, kind: str | None = None) -> int:
    """A data set (its name defaults to the key); level and kind keep the schema's defaults unless given."""
    columns = {"partnership_id": pid, "source_key": key, "name": name or key, "agency_id": agency_id,
               "sharing_level": level, "kind": kind}
    columns = {k: v for k, v in columns.items() if v is not None}
    ds = (await db.execute(text(
        f"INSERT INTO dataset ({', '.join(columns)}) VALUES ({', '.join(':' + k for k in columns)}) "
        "ON CONFLICT (partnership_id, source_key) DO UPDATE SET name = EXCLUDED.name RETURNING id"),
        columns)).scalar_one()
    await db.commit()
    return ds


# Incident columns a test may set besides position, category and month, with their SQL array types.
INCIDENT_EXTRAS = {"location_text": "text", "lsoa_code": "text", "lsoa_name": "text", "outcome": "text",
                   "external_ref": "text", "context": "text", "import_run_id": "int4"}


def _month(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value[:7] + "-01")


async def incidents(db: AsyncSession, pid: int, ds: int,
                    rows: Iterable[tuple[float | None, float | None, str, str | date] |
                                    tuple[float | None, float | None, str, str | date, int]],
                    **extra: Any) -> list[int]:
    """Incidents from rows of (lon, lat, category, month[, how many]): lon None means no location,
    month is 'YYYY-MM', 'YYYY-MM-DD' or a date. Each keyword of INCIDENT_EXTRAS is one value for
    every row, or a list with one per row. One statement; returns the new ids in row order."""
    rows = list(rows)
    if not rows:
        return []
    unknown = set(extra) - set(INCIDENT_EXTRAS)
    assert not unknown, f"not an incident column: {unknown}"
    cols = {"lon": ("float8", [r[0] for r in rows]), "lat": ("float8", [r[1] for r in rows]),
            "category": ("text", [r[2] for r in rows]), "month": ("date", [_month(r[3]) for r in rows]),
            "n": ("int4", [r[4] if len(r) > 4 else 1 for r in rows])}
    for name, value in extra.items():
        values = list(value) if isinstance(value, list | tuple) else [value] * len(rows)
        assert len(values) == len(rows), f"{name}: one value per row"
        cols[name] = (INCIDENT_EXTRAS[name], values)
    names = list(extra)
    ids = (await db.execute(text(f"""
        INSERT INTO incident (partnership_id, dataset_id, category, month, geom{''.join(', ' + c for c in names)})
        SELECT :p, :d, r.category, r.month,
               CASE WHEN r.lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) END
               {''.join(', r.' + c for c in names)}
        FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, (t, _) in cols.items())})
             WITH ORDINALITY AS r({', '.join(cols)}, ord)
        CROSS JOIN LATERAL generate_series(1, r.n) AS copy
        ORDER BY r.ord, copy
        RETURNING id"""), {"p": pid, "d": ds, **{c: v for c, (_, v) in cols.items()}})).scalars().all()
    await db.commit()
    return sorted(ids)


def scattered(n: int, seed: int = 1, spread: float = 0.02, around: LonLat = (LON, LAT)) -> list[LonLat]:
    """n points normally scattered about `around` (degrees, rounded to 6 places), the same for a seed."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return [(around[0] + dx, around[1] + dy) for dx, dy in rng.normal(0, spread, size=(n, 2)).round(6)]


# -- incidents placed in metres: a square of Manchester on the British National Grid ------------------
TO_WGS84 = Transformer.from_crs(27700, 4326, always_xy=True)
X0, Y0, SIDE = 383_000.0, 397_000.0, 3_000.0  # 3 km, on 100 m cell boundaries


async def plant(db: AsyncSession, pid: int, ds: int, xs: Any, ys: Any, month: str | date,
                category: str = "Burglary", **extra: Any) -> list[int]:
    """Incidents at these British National Grid positions (metres), stored in WGS84."""
    import numpy as np
    lon, lat = TO_WGS84.transform(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    return await incidents(db, pid, ds, [(float(x), float(y), category, month)
                                         for x, y in zip(np.atleast_1d(lon), np.atleast_1d(lat), strict=True)],
                           **extra)


def uniform(rng: Any, n: int) -> tuple[Any, Any]:
    """n positions spread evenly over the square (1 m in from its edges)."""
    return rng.uniform(X0 + 1, X0 + SIDE - 1, n), rng.uniform(Y0 + 1, Y0 + SIDE - 1, n)


def cell_of(x: float, y: float, cell: float = 100.0) -> str:
    """The id the hotspot statistics give the cell holding (x, y): its lower-left corner."""
    import numpy as np
    return f"E{np.floor(x / cell) * cell:.0f}N{np.floor(y / cell) * cell:.0f}"


@dataclass
class Partnership:
    """A partnership with its police force's data set, and someone to call the API as."""
    caller: Caller
    dataset: int

    @property
    def ids(self) -> tuple[int, int]:
        return self.caller.partnership_id, self.dataset


async def police_partnership(db: AsyncSession, make_caller: Any, slug: str = "hot-csp", role: str = "admin",
                             sharing_level: str = "exact") -> Partnership:
    """`make_caller`'s caller and a 'police-crime' data set owned by the partnership's police."""
    caller = await make_caller(slug, role)
    police = await agency(db, caller.partnership_id, "Police", "police")
    ds = await dataset(db, caller.partnership_id, "police-crime", sharing_level, agency_id=police, name="Police crime")
    return Partnership(caller, ds)


# -- cameras ----------------------------------------------------------------------------------------
CAMERA_COLUMNS = ("owner_agency_id", "name", "bearing", "fov", "range_m", "height_m", "camera_type", "status",
                  "monitored", "retention_days", "contact", "notes", "source", "created_at", "resolution_px",
                  "purpose")


async def camera(db: AsyncSession, pid: int, reference: str, lonlat: LonLat = (LON, LAT), **columns: Any) -> int:
    """A camera written straight to the table (as an import does); its coverage follows by trigger."""
    unknown = set(columns) - set(CAMERA_COLUMNS)
    assert not unknown, f"not a camera column: {unknown}"
    names = list(columns)
    cid = (await db.execute(text(
        f"INSERT INTO camera (partnership_id, reference, geom{''.join(', ' + c for c in names)}) "
        f"VALUES (:p, :reference, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326){''.join(', :' + c for c in names)}) "
        "RETURNING id"), {"p": pid, "reference": reference, "lon": lonlat[0], "lat": lonlat[1], **columns})).scalar_one()
    await db.commit()
    return cid


def camera_feature(reference: str = "MCC-001", lonlat: LonLat = (LON, LAT), **props: Any) -> dict:
    """A camera as the API takes it (POST /api/cameras): a GeoJSON Point Feature."""
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(lonlat)},
            "properties": {"reference": reference, **props}}


# -- streets and buildings --------------------------------------------------------------------------
def line_wkt(points: Sequence[LonLat]) -> str:
    return "LINESTRING(" + ", ".join(f"{lon!r} {lat!r}" for lon, lat in points) + ")"


async def streets(db: AsyncSession, pid: int, lines: Mapping[str, Sequence[LonLat]] | Iterable[tuple[str, Sequence[LonLat]]],
                  highway: str = "residential") -> int:
    """Streets by name, each a line through lon/lat points; returns how many were added."""
    items = list(lines.items()) if isinstance(lines, Mapping) else list(lines)
    for name, points in items:
        await db.execute(text("INSERT INTO street (partnership_id, name, highway, geom) "
                              "VALUES (:p, :n, :h, ST_GeomFromText(:w, 4326))"),
                         {"p": pid, "n": name, "h": highway, "w": line_wkt(points)})
    await db.commit()
    return len(items)


async def building(db: AsyncSession, pid: int, ring: Sequence[LonLat], name: str | None = None,
                   height_m: float | None = None) -> int:
    """A building outlined by a closed lon/lat ring."""
    wkt = "MULTIPOLYGON(((" + ", ".join(f"{lon!r} {lat!r}" for lon, lat in ring) + ")))"
    bid = (await db.execute(text(
        "INSERT INTO building (partnership_id, name, height_m, geom) VALUES (:p, :n, :h, ST_GeomFromText(:w, 4326)) "
        "RETURNING id"), {"p": pid, "n": name, "h": height_m, "w": wkt})).scalar_one()
    await db.commit()
    return bid


# -- pages ------------------------------------------------------------------------------------------
def config_of(html: str) -> dict:
    """The configuration a map page embeds for its script."""
    m = re.search(r'<script type="application/json" id="safermap-config">(.*?)</script>', html, re.S)
    assert m, "the page embeds its configuration"
    return json.loads(m.group(1))


XSS_NAME = "<img src=x onerror=alert(1)>"  # a name that must show as text, never run


async def add_incidents(db: AsyncSession, partnership_id: int, name: str, source_key: str,
                        points: list[tuple[float, float, str, str]]) -> None:
    """A police.uk data set of these (lon, lat, category, month) incidents."""
    ds = await dataset(db, partnership_id, source_key, name=name, kind="police_uk")
    await incidents(db, partnership_id, ds, points, location_text="On or near High Street")


# -- Chromium ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it")
    return CHROMIUM


@dataclass
class Watched:
    """A page and what it did: every URL it asked for, console errors and warnings, page errors
    (`problems`), and the dialogs it opened (each dismissed)."""
    page: Any
    context: Any
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def page_errors(self) -> list[str]:
        return [p for p in self.problems if p.startswith("page error")]

    def elsewhere(self, host: str = "127.0.0.1") -> list[str]:
        """Requests to anywhere but `host` (data: URLs are the page's own)."""
        return [u for u in self.requests if not u.startswith("data:") and urlsplit(u).hostname != host]


@asynccontextmanager
async def browser_page(live_server: str, caller: Caller | None = None, *, chromium_path: str = CHROMIUM,
                       **context_options: Any) -> AsyncIterator[Watched]:
    """A fresh Chromium page, signed in as `caller` the way the sign-in page does it (the bearer
    token exchanged for the session cookie), or not signed in at all. The browser closes on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(**context_options)
            if caller is not None:
                r = await context.request.post(f"{live_server}/auth/session", headers=caller.headers)
                assert r.status == 204
            watched = Watched(await context.new_page(), context)
            page = watched.page
            page.on("request", lambda req: watched.requests.append(req.url))
            page.on("console", lambda msg: watched.problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type in ("error", "warning") else None)
            page.on("pageerror", lambda err: watched.problems.append(f"page error: {err}"))

            async def dismiss(dialog: Any) -> None:
                watched.dialogs.append(dialog.message)
                await dialog.dismiss()
            page.on("dialog", dismiss)
            yield watched
        finally:
            await browser.close()
