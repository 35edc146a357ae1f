"""Hotspot data and the kernel density surface: the incidents an analysis counts (through the
sharing rules, only the caller's partnership, the period asked for), binned in the partnership's
metric CRS, and the quartic KDE compared with an independent per-point sum."""
from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import text

from app.analysis import hotspot_data as hd
from app.analysis.hotspot_data import HotspotFilter, SystemPrincipal
from app.errors import BadRequest

LON, LAT = -2.2426, 53.4808  # Manchester
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)


async def partnership(db, slug: str, srid: int = 27700) -> int:
    pid = (await db.execute(text(
        "INSERT INTO partnership (slug, name, srid) VALUES (:s, :s, :srid) RETURNING id"),
        {"s": slug, "srid": srid})).scalar_one()
    await db.commit()
    return pid


async def dataset(db, pid: int, key: str, level: str = "exact") -> int:
    ds = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, source_key, name, sharing_level) VALUES (:p, :k, :k, :l) RETURNING id"),
        {"p": pid, "k": key, "l": level})).scalar_one()
    await db.commit()
    return ds


async def add(db, pid: int, ds: int, rows: list[tuple[float | None, float | None, str, str, int]]) -> None:
    """rows: (lon, lat, category, month 'YYYY-MM', how many); lon None = no location."""
    for lon, lat, cat, month, n in rows:
        await db.execute(text(
            "INSERT INTO incident (partnership_id, dataset_id, category, month, geom) "
            "SELECT :p, :d, :c, CAST(:m || '-01' AS date), "
            "CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL "
            "     ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END FROM generate_series(1, :n)"),
            {"p": pid, "d": ds, "c": cat, "m": month, "lon": lon, "lat": lat, "n": n})
    await db.commit()


def scattered(n: int, seed: int = 1, spread: float = 0.02) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    return [(LON + dx, LAT + dy) for dx, dy in rng.normal(0, spread, size=(n, 2)).round(6)]


# -- filters and periods (pure) ------------------------------------------------------------------------
def test_filter_from_request_parameters():
    f = hd.hotspot_filter("2024-01", "2024-03", ["Drugs,Burglary", "Drugs"], ["police-uk:gmp"])
    assert f == HotspotFilter(date(2024, 1, 1), date(2024, 3, 31), ("Burglary", "Drugs"), ("police-uk:gmp",))
    assert f.key() != hd.hotspot_filter("2024-01", "2024-04", ["Drugs,Burglary"], ["police-uk:gmp"]).key()
    assert hd.hotspot_filter(None, None, [], []) == HotspotFilter(None, None)
    for bad in (("2024-13", None), ("2024-03", "2024-01"), ("yesterday", None)):
        with pytest.raises(BadRequest):
            hd.hotspot_filter(*bad, [], [])
    with pytest.raises(BadRequest):
        hd.hotspot_filter(None, None, [f"c{i}" for i in range(51)], [])


@pytest.mark.parametrize("period, compare, expected", [
    (("2024-03-01", "2024-03-31"), "previous", ("2024-02-01", "2024-02-29")),
    (("2024-01-01", "2024-03-31"), "previous", ("2023-10-01", "2023-12-31")),
    (("2024-03-01", "2024-03-31"), "last_year", ("2023-03-01", "2023-03-31")),
    (("2024-02-01", "2024-02-29"), "last_year", ("2023-02-01", "2023-02-28")),
    (("2024-03-01", "2024-03-28"), "previous", ("2024-02-02", "2024-02-29")),  # 28 days before
])
def test_previous_period(period, compare, expected):
    flt = HotspotFilter(date.fromisoformat(period[0]), date.fromisoformat(period[1]), ("Drugs",))
    prev = hd.previous_period(flt, compare)
    assert (prev.date_from.isoformat(), prev.date_to.isoformat()) == expected
    assert prev.categories == ("Drugs",)


def test_previous_period_needs_a_period_and_a_known_comparison():
    with pytest.raises(BadRequest):
        hd.previous_period(HotspotFilter(None, None))
    with pytest.raises(BadRequest):
        hd.previous_period(HotspotFilter(date(2024, 1, 1), date(2024, 1, 31)), "last_week")


# -- reading incidents ---------------------------------------------------------------------------------
async def test_bins_match_an_independent_binning_in_the_metric_crs(db):
    pid = await partnership(db, "csp-bins")
    ds = await dataset(db, pid, "police-uk:test")
    points = scattered(200)
    await add(db, pid, ds, [(lon, lat, "Burglary", "2024-01", 1 + i % 3) for i, (lon, lat) in enumerate(points)])
    await add(db, pid, ds, [(LON, LAT, "Drugs", "2024-01", 2500),          # thousands on one snapped point
                            (None, None, "Drugs", "2024-01", 7)])           # no location: counted, not placed
    who = SystemPrincipal(pid)
    extent = await hd.study_extent(db, who, HotspotFilter(None, None))
    bins = await hd.load_bins(db, who, HotspotFilter(None, None), 250.0, extent)

    x, y = TO_BNG.transform([p[0] for p in points] + [LON], [p[1] for p in points] + [LAT])
    weights = [1 + i % 3 for i in range(len(points))] + [2500]
    # The extent covers every point, a little loosely (a lon/lat box transformed, not a tight fit).
    assert extent[0] <= min(x) and extent[1] <= min(y) and extent[2] >= max(x) and extent[3] >= max(y)
    assert extent == pytest.approx((min(x), min(y), max(x), max(y)), abs=100.0)
    assert bins.srid == 27700 and bins.cell_m == 250.0
    assert bins.x0 % 250 == 0 and bins.y0 % 250 == 0 and bins.x0 <= min(x) and bins.y0 <= min(y)
    ny, nx = bins.counts.shape
    expected, _, _ = np.histogram2d(y, x, bins=[ny, nx], weights=weights,
                                    range=[[bins.y0, bins.y0 + ny * 250], [bins.x0, bins.x0 + nx * 250]])
    np.testing.assert_array_equal(bins.counts, expected)
    assert bins.total == sum(weights) and bins.unplaced == 7 and bins.all_exact
    iy, ix = np.unravel_index(bins.counts.argmax(), bins.counts.shape)
    assert bins.counts[iy, ix] >= 2500
    cx, cy = bins.cell_centres()
    assert abs(cx[ix] - x[-1]) <= 125 and abs(cy[iy] - y[-1]) <= 125


async def test_bins_follow_the_period_categories_and_datasets(db):
    pid = await partnership(db, "csp-filter")
    police = await dataset(db, pid, "police-uk:test")
    council = await dataset(db, pid, "council:asb")
    await add(db, pid, police, [(LON, LAT, "Burglary", "2024-01", 3), (LON, LAT, "Drugs", "2024-02", 5),
                                (LON + 0.01, LAT, "Burglary", "2024-03", 7)])
    await add(db, pid, council, [(LON, LAT, "Anti-social behaviour", "2024-03", 11)])
    who = SystemPrincipal(pid)
    extent = await hd.study_extent(db, who)

    async def total(flt: HotspotFilter) -> int:
        return (await hd.load_bins(db, who, flt, 200.0, extent)).total

    assert await total(HotspotFilter(None, None)) == 26
    assert await total(hd.hotspot_filter("2024-02", "2024-03", [], [])) == 23
    assert await total(hd.hotspot_filter(None, "2024-01", [], [])) == 3
    assert await total(hd.hotspot_filter(None, None, ["Burglary"], [])) == 10
    assert await total(hd.hotspot_filter(None, None, [], ["council:asb"])) == 11
    assert await total(hd.hotspot_filter("2024-03", "2024-03", ["Burglary", "Drugs"], ["police-uk:test"])) == 7
    # The default period is the latest month with data; from alone runs to it, to alone is its month.
    latest = await hd.resolve_period(db, who, HotspotFilter(None, None))
    assert (latest.date_from, latest.date_to) == (date(2024, 3, 1), date(2024, 3, 31))
    drugs = await hd.resolve_period(db, who, hd.hotspot_filter(None, None, ["Drugs"], []))
    assert (drugs.date_from, drugs.date_to) == (date(2024, 2, 1), date(2024, 2, 29))
    since = await hd.resolve_period(db, who, hd.hotspot_filter("2024-01", None, [], []))
    assert (since.date_from, since.date_to) == (date(2024, 1, 1), date(2024, 3, 31))
    only = await hd.resolve_period(db, who, hd.hotspot_filter(None, "2024-02", [], []))
    assert (only.date_from, only.date_to) == (date(2024, 2, 1), date(2024, 2, 29))


async def test_bins_read_through_the_sharing_rules_and_only_the_own_partnership(db):
    pid = await partnership(db, "csp-own")
    other = await partnership(db, "csp-other")
    exact = await dataset(db, pid, "police-uk:test", "exact")
    sanitised = await dataset(db, pid, "council:asb", "sanitised")
    counts_only = await dataset(db, pid, "fire:deliberate", "aggregate")
    hidden = await dataset(db, pid, "health:assaults", "none")
    await add(db, pid, exact, [(LON, LAT, "Burglary", "2024-01", 4)])
    await add(db, pid, sanitised, [(LON + 0.0031, LAT + 0.0017, "Anti-social behaviour", "2024-01", 6)])
    await add(db, pid, counts_only, [(LON - 0.01, LAT, "Arson", "2024-01", 9)])
    await add(db, pid, hidden, [(LON, LAT - 0.01, "Assault", "2024-01", 13)])
    await add(db, other, await dataset(db, other, "police-uk:test"), [(LON, LAT, "Burglary", "2024-01", 1000)])

    admin, viewer = SystemPrincipal(pid), SystemPrincipal(pid, "viewer")
    extent = await hd.study_extent(db, admin)
    everything = await hd.load_bins(db, admin, HotspotFilter(None, None), 100.0, extent)
    assert (everything.total, everything.unplaced, everything.all_exact) == (4 + 6 + 9 + 13, 0, True)

    seen = await hd.load_bins(db, viewer, HotspotFilter(None, None), 100.0, extent)
    assert seen.total == 4 + 6          # exact and sanitised rows are placed
    assert seen.unplaced == 9           # aggregate rows only count; 'none' rows do not exist
    assert not seen.all_exact
    assert seen.version_key != everything.version_key
    # The sanitised incidents sit at their anonymous point (the centre of their 100 m cell here).
    anon = (await db.execute(text(
        "SELECT ST_X(ST_Transform(geom_anon, 27700)), ST_Y(ST_Transform(geom_anon, 27700)) "
        "FROM incident WHERE dataset_id = :d LIMIT 1"), {"d": sanitised})).one()
    ix, iy = int((anon[0] - seen.x0) // 100), int((anon[1] - seen.y0) // 100)
    assert seen.counts[iy, ix] == 6


async def test_version_key_changes_with_the_data(db):
    pid = await partnership(db, "csp-version")
    ds = await dataset(db, pid, "police-uk:test")
    await add(db, pid, ds, [(LON, LAT, "Burglary", "2024-01", 2)])
    who = SystemPrincipal(pid)
    extent = await hd.study_extent(db, who)
    before = await hd.load_bins(db, who, HotspotFilter(None, None), 100.0, extent)
    assert (await hd.data_context(db, who)).version_key == before.version_key
    await add(db, pid, ds, [(LON + 0.05, LAT, "Burglary", "2024-02", 1)])
    after = await hd.data_context(db, who)
    assert after.version_key != before.version_key
    wider = await hd.study_extent(db, who)  # the cached extent is not reused for new data
    assert wider[2] > extent[2] + 3000


async def test_no_data_and_oversized_grids(db):
    pid = await partnership(db, "csp-empty")
    who = SystemPrincipal(pid)
    assert await hd.study_extent(db, who) is None
    assert await hd.resolve_period(db, who, HotspotFilter(None, None)) == HotspotFilter(None, None)
    with pytest.raises(BadRequest):
        await hd.load_bins(db, who, HotspotFilter(None, None), 1.0, (0.0, 0.0, 50_000.0, 50_000.0))
    with pytest.raises(BadRequest):
        await hd.load_bins(db, who, HotspotFilter(None, None), -5.0, (0.0, 0.0, 500.0, 500.0))
