"""Hotspot data and the kernel density surface: the incidents an analysis counts (through the
sharing rules, only the caller's partnership, the period asked for), binned in the partnership's
metric CRS, and the quartic KDE compared with an independent per-point sum."""
from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import text

from app.analysis import hotspot_data as hd
from app.analysis import kde
from app.analysis.hotspot_data import HotspotFilter, SystemPrincipal
from app.domain_errors import InvalidPeriod, InvalidValue, TooLarge
from tests.factories import LAT, LON, dataset, incidents, partnership, scattered

TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)


# -- filters and periods (pure) ------------------------------------------------------------------------
def test_filter_from_request_parameters():
    f = hd.hotspot_filter("2024-01", "2024-03", ["Drugs,Burglary", "Drugs"], ["police-uk:gmp"])
    assert f == HotspotFilter(date(2024, 1, 1), date(2024, 3, 31), ("Burglary", "Drugs"), ("police-uk:gmp",))
    assert f.key() != hd.hotspot_filter("2024-01", "2024-04", ["Drugs,Burglary"], ["police-uk:gmp"]).key()
    assert hd.hotspot_filter(None, None, [], []) == HotspotFilter(None, None)
    for bad in (("2024-13", None), ("2024-03", "2024-01"), ("yesterday", None)):
        with pytest.raises(InvalidPeriod):
            hd.hotspot_filter(*bad, [], [])
    with pytest.raises(InvalidValue):
        hd.hotspot_filter(None, None, [f"c{i}" for i in range(51)], [])



def test_period_bounds_are_written_into_the_statement_only_as_dates():
    # The dates are literals in the SQL (a plan for the real period, see FILTER_SQL): nothing but a
    # date may get there, and they are no longer bound parameters.
    f = HotspotFilter(date(2024, 1, 1), date(2024, 3, 31), ("Drugs",))
    assert f.where() == ("t.month >= DATE '2024-01-01' AND t.month <= DATE '2024-03-31' "
                         "AND t.category = ANY(:categories)")
    assert f.params() == {"categories": ["Drugs"]}
    for bad in ("2024-01-01'; DROP TABLE incident; --", 20240101):
        with pytest.raises(TypeError):
            HotspotFilter(bad, None).where()  # type: ignore[arg-type]

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
    with pytest.raises(InvalidPeriod):
        hd.previous_period(HotspotFilter(None, None))
    with pytest.raises(InvalidValue):
        hd.previous_period(HotspotFilter(date(2024, 1, 1), date(2024, 1, 31)), "last_week")


# -- reading incidents ---------------------------------------------------------------------------------
async def test_bins_match_an_independent_binning_in_the_metric_crs(db):
    pid = await partnership(db, "csp-bins")
    ds = await dataset(db, pid, "police-uk:test")
    points = scattered(200)
    await incidents(db, pid, ds, [(lon, lat, "Burglary", "2024-01", 1 + i % 3) for i, (lon, lat) in enumerate(points)])
    await incidents(db, pid, ds, [(LON, LAT, "Drugs", "2024-01", 2500),          # thousands on one snapped point
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
    await incidents(db, pid, police, [(LON, LAT, "Burglary", "2024-01", 3), (LON, LAT, "Drugs", "2024-02", 5),
                                (LON + 0.01, LAT, "Burglary", "2024-03", 7)])
    await incidents(db, pid, council, [(LON, LAT, "Anti-social behaviour", "2024-03", 11)])
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
    await incidents(db, pid, exact, [(LON, LAT, "Burglary", "2024-01", 4)])
    await incidents(db, pid, sanitised, [(LON + 0.0031, LAT + 0.0017, "Anti-social behaviour", "2024-01", 6)])
    await incidents(db, pid, counts_only, [(LON - 0.01, LAT, "Arson", "2024-01", 9)])
    await incidents(db, pid, hidden, [(LON, LAT - 0.01, "Assault", "2024-02", 13)])
    await incidents(db, other, await dataset(db, other, "police-uk:test"), [(LON, LAT, "Burglary", "2024-01", 1000)])

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
    # The latest month with data the caller may see: February's incidents are hidden from viewers.
    assert (await hd.resolve_period(db, admin, HotspotFilter(None, None))).date_from == date(2024, 2, 1)
    assert (await hd.resolve_period(db, viewer, HotspotFilter(None, None))).date_from == date(2024, 1, 1)


async def test_version_key_changes_with_the_data(db):
    pid = await partnership(db, "csp-version")
    ds = await dataset(db, pid, "police-uk:test")
    await incidents(db, pid, ds, [(LON, LAT, "Burglary", "2024-01", 2)])
    who = SystemPrincipal(pid)
    extent = await hd.study_extent(db, who)
    before = await hd.load_bins(db, who, HotspotFilter(None, None), 100.0, extent)
    assert (await hd.data_context(db, who)).version_key == before.version_key
    await incidents(db, pid, ds, [(LON + 0.05, LAT, "Burglary", "2024-02", 1)])
    after = await hd.data_context(db, who)
    assert after.version_key != before.version_key
    wider = await hd.study_extent(db, who)  # the cached extent is not reused for new data
    assert wider[2] > extent[2] + 3000


async def test_no_data_and_oversized_grids(db):
    pid = await partnership(db, "csp-empty")
    who = SystemPrincipal(pid)
    assert await hd.study_extent(db, who) is None
    assert await hd.resolve_period(db, who, HotspotFilter(None, None)) == HotspotFilter(None, None)
    with pytest.raises(TooLarge):
        await hd.load_bins(db, who, HotspotFilter(None, None), 1.0, (0.0, 0.0, 50_000.0, 50_000.0))
    with pytest.raises(InvalidValue):
        await hd.load_bins(db, who, HotspotFilter(None, None), -5.0, (0.0, 0.0, 500.0, 500.0))


# -- the kernel density surface ------------------------------------------------------------------------
def direct_kde(xs: np.ndarray, ys: np.ndarray, weights: np.ndarray, cx: np.ndarray, cy: np.ndarray,
               h: float) -> np.ndarray:
    """The textbook estimate, independently: the quartic kernel of every point summed at every cell
    centre (incidents per km²)."""
    gx, gy = np.meshgrid(cx, cy)
    out = np.zeros_like(gx)
    for x, y, w in zip(xs, ys, weights):
        d2 = ((gx - x) ** 2 + (gy - y) ** 2) / (h * h)
        out += w * np.where(d2 < 1, 3 / (math.pi * h * h) * (1 - d2) ** 2, 0.0)
    return out * 1e6


@pytest.mark.parametrize("h_cells", [0.7, 1.0, 1.5, 2.0, 5.0, 12.5, 40.0])
def test_kernel_keeps_each_incidents_whole_weight(h_cells):
    k = kde.quartic_kernel(100.0, 100.0 * h_cells)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert (k >= 0).all() and k.shape[0] == k.shape[1] == 2 * math.ceil(h_cells) + 1
    np.testing.assert_allclose(k, k[::-1, ::-1])
    np.testing.assert_allclose(k, k.T)
    c = k.shape[0] // 2
    assert k[c, c] == k.max()


def test_kernel_cells_hold_the_integral_of_the_kernel_over_them():
    # h = 1.5 cells: the centre cell holds the kernel's integral over it (computed here on a much
    # finer midpoint grid), not the value at its centre times its area.
    h, fine = 1.5, 601
    t = (np.arange(fine) + 0.5) / fine - 0.5
    gx, gy = np.meshgrid(t, t)
    d2 = (gx ** 2 + gy ** 2) / h ** 2
    centre = (3 / (math.pi * h * h) * (1 - d2) ** 2).mean()
    k = kde.quartic_kernel(10.0, 15.0)
    assert k[2, 2] == pytest.approx(centre, rel=2e-3)
    assert k[2, 2] < 3 / (math.pi * h * h)


def test_kde_matches_an_independent_estimate_and_keeps_the_mass():
    rng = np.random.default_rng(7)
    cell, h = 100.0, 500.0
    # 300 scattered points and 3000 incidents on one snapped point.
    xs = np.concatenate([rng.normal(5000, 900, 300), [5012.3]])
    ys = np.concatenate([rng.normal(5000, 700, 300), [4987.6]])
    w = np.concatenate([np.ones(300), [3000.0]])
    n = 100
    counts = np.zeros((n, n))  # linear binning, as load_bins(linear=True) does in SQL
    fx, fy = xs / cell - 0.5, ys / cell - 0.5
    i0, j0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
    for di, wx in ((0, 1 - (fx - i0)), (1, fx - i0)):
        for dj, wy in ((0, 1 - (fy - j0)), (1, fy - j0)):
            np.add.at(counts, (j0 + dj, i0 + di), w * wx * wy)
    density = kde.quartic_kde(counts, cell, h)
    centres = (np.arange(n) + 0.5) * cell
    expected = direct_kde(xs, ys, w, centres, centres, h)
    assert density.sum() * (cell / 1000) ** 2 == pytest.approx(3300, rel=1e-9)  # every incident, once
    assert np.abs(density - expected).max() < 0.05 * expected.max()
    assert np.corrcoef(density.ravel(), expected.ravel())[0, 1] > 0.999
    assert np.unravel_index(density.argmax(), density.shape) == np.unravel_index(expected.argmax(), expected.shape)
    # No weight (and no FFT round-off) further than the kernel, plus the binning's one cell, reaches.
    near = direct_kde(xs, ys, w, centres, centres, h + 1.5 * cell) > 0
    assert (density[~near] == 0).all() and (~near).sum() > 1000


def test_default_cell_and_bandwidth_follow_the_guidance():
    # A county: 56 km x 40 km -> 40 km / 150 = 267 m, rounded to 270 m; bandwidth five cells.
    assert kde.default_cell_and_bandwidth((350_000, 381_000, 406_000, 421_000)) == (270.0, 1350.0)
    assert kde.default_cell_and_bandwidth((0, 0, 3000, 2000)) == (13.0, 65.0)
    assert kde.default_cell_and_bandwidth((5, 5, 5, 5)) == (50.0, 250.0)  # one point: no extent


async def test_surface_of_the_database_matches_an_independent_kde(db):
    pid = await partnership(db, "csp-surface")
    ds = await dataset(db, pid, "police-uk:test")
    points = scattered(250, seed=11, spread=0.01)
    await incidents(db, pid, ds, [(lon, lat, "Burglary", "2024-05", 1) for lon, lat in points]
              + [(LON, LAT, "Burglary", "2024-05", 2000), (None, None, "Burglary", "2024-05", 9),
                 (LON + 0.2, LAT, "Burglary", "2024-04", 50)])  # another month: only widens the extent
    who = SystemPrincipal(pid)
    surface = await kde.hotspot_surface(db, who, HotspotFilter(None, None), cell_m=100, bandwidth_m=600)
    assert (surface.period.date_from, surface.period.date_to) == (date(2024, 5, 1), date(2024, 5, 31))
    assert (surface.count, surface.unplaced, surface.cell_m, surface.bandwidth_m) == (2250, 9, 100, 600)
    ny, nx = surface.density.shape
    assert surface.density.sum() * 0.01 == pytest.approx(2250, rel=1e-6)  # 100 m cells: 0.01 km² each

    x, y = TO_BNG.transform([p[0] for p in points] + [LON], [p[1] for p in points] + [LAT])
    cx = surface.x0 + (np.arange(nx) + 0.5) * 100
    cy = surface.y0 + (np.arange(ny) + 0.5) * 100
    expected = direct_kde(np.array(x), np.array(y), np.array([1.0] * 250 + [2000.0]), cx, cy, 600.0)
    assert np.abs(surface.density - expected).max() < 0.05 * expected.max()
    assert np.corrcoef(surface.density.ravel(), expected.ravel())[0, 1] > 0.999
    # Classes: increasing lower bounds, one colour and label each, the darkest at the top.
    assert surface.breaks == sorted(surface.breaks) and len(surface.colours) == len(surface.breaks)
    assert surface.colours[-1] == "#bd0026" and surface.labels[0] == "Mean to +1 SD"
    # Cached by parameters and data version: the same object until the data changes.
    assert await kde.hotspot_surface(db, who, HotspotFilter(None, None), cell_m=100, bandwidth_m=600) is surface
    await incidents(db, pid, ds, [(LON, LAT, "Burglary", "2024-05", 1)])
    fresh = await kde.hotspot_surface(db, who, HotspotFilter(None, None), cell_m=100, bandwidth_m=600)
    assert fresh is not surface and fresh.count == 2251


def test_small_cache_is_bounded_by_entries_and_bytes():
    cache = hd.SmallCache(3, max_bytes=1000, weigh=len)
    for k in range(5):
        cache.put(k, b"x" * 100)
    assert list(cache) == [2, 3, 4]
    cache.put("big", b"x" * 950)
    assert list(cache) == ["big"] and cache.get(2) is None


async def test_concurrent_requests_for_one_surface_compute_it_once(app, db, monkeypatch):
    import asyncio
    pid = await partnership(db, "csp-herd")
    ds = await dataset(db, pid, "police-uk:test")
    await incidents(db, pid, ds, [(lon, lat, "Burglary", "2024-05", 2) for lon, lat in scattered(50, seed=5)])
    calls = []
    real = kde.load_bins

    async def counted(*args, **kwargs):
        calls.append(args[2].key())
        return await real(*args, **kwargs)
    monkeypatch.setattr(kde, "load_bins", counted)

    async def one() -> kde.Surface:
        async with app.state.read_sessionmaker() as session:
            return await kde.hotspot_surface(session, SystemPrincipal(pid), HotspotFilter(None, None))
    surfaces = await asyncio.gather(*(one() for _ in range(8)))
    assert len(calls) == 1
    assert all(s.count == 100 for s in surfaces)
    assert all(s.density is surfaces[0].density for s in surfaces)


async def test_requests_waiting_for_a_surface_hold_no_database_connection(app, db, monkeypatch):
    import asyncio
    pid = await partnership(db, "csp-herd-pool")
    ds = await dataset(db, pid, "police-uk:test")
    await incidents(db, pid, ds, [(lon, lat, "Burglary", "2024-05") for lon, lat in scattered(20, seed=6)])
    pool = app.state.engine.sync_engine.pool
    held: list[int] = []
    real = kde.load_bins

    async def slow(*args, **kwargs):
        # until all five other requests queue behind this computation (a busy machine may take a
        # while to bring the last of them there)
        while sum(len(lock._waiters or ()) for lock in kde._LOCKS.values()) < 5:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        held.append(pool.checkedout())
        return await real(*args, **kwargs)
    monkeypatch.setattr(kde, "load_bins", slow)

    async def one() -> kde.Surface:
        async with app.state.read_sessionmaker() as session:
            return await kde.hotspot_surface(session, SystemPrincipal(pid), HotspotFilter(None, None))
    before = pool.checkedout()
    surfaces = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(6))), 60)
    assert all(s.count == 20 for s in surfaces)
    assert held == [before + 1]  # only the computing request's connection, not the five waiting
