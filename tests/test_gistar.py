"""Significant hotspots: Getis-Ord Gi* with a false discovery rate correction, on arrays and
through GET /api/hotspots/gistar against real PostGIS."""
from __future__ import annotations

from datetime import date

import esda
import numpy as np

from app.analysis.gistar import gi_star
from tests.factories import X0, Y0, cell_of, plant, police_partnership, uniform


def reference_gi_star(counts: np.ndarray) -> np.ndarray:
    """Getis & Ord (1992) / Ord & Getis (1995) Gi* z-scores with binary weights of a cell and its
    eight neighbours, written out from the formula: an independent check of the library call."""
    ny, nx = counts.shape
    x = counts.ravel().astype(float)
    n = x.size
    mean, s = x.mean(), np.sqrt((x ** 2).mean() - x.mean() ** 2)
    z = np.empty(n)
    for i in range(ny):
        for j in range(nx):
            rows, cols = slice(max(i - 1, 0), i + 2), slice(max(j - 1, 0), j + 2)
            w = counts[rows, cols].size
            lag = counts[rows, cols].sum()
            z[i * nx + j] = (lag - mean * w) / (s * np.sqrt((n * w - w ** 2) / (n - 1)))
    return z.reshape(ny, nx)


# -- on arrays ----------------------------------------------------------------------------------------

def test_a_planted_cluster_is_hot_at_99_percent_after_fdr():
    rng = np.random.default_rng(7)
    counts = rng.poisson(2.0, (40, 50)).astype(float)
    counts[20, 30] += 60  # one very busy cell
    gi = gi_star(counts, alpha=0.05)
    assert gi.confidence[20, 30] == 99 and gi.z[20, 30] > 0
    assert gi.hot()[19:22, 29:32].all()  # its neighbourhood shares the cluster
    # Nothing far from it is hot: the rest is noise.
    far = np.ones_like(counts, dtype=bool)
    far[17:24, 27:34] = False
    assert gi.hot()[far].sum() <= 2
    np.testing.assert_allclose(gi.z, reference_gi_star(counts), rtol=1e-9, atol=1e-9)


def test_uniform_noise_gives_no_or_very_few_significant_cells():
    rng = np.random.default_rng(11)
    for trial in range(5):
        gi = gi_star(rng.poisson(3.0, (50, 50)).astype(float), alpha=0.10)
        # Without correction about 10% (250 cells) would pass p < 0.1; the FDR holds it near none.
        assert (gi.confidence > 0).sum() <= 5, trial
        assert (gi.p < 0.10).sum() > 100  # ... which is what the correction is for


def test_q_values_and_confidence_agree_with_esda_fdr():
    rng = np.random.default_rng(3)
    counts = rng.poisson(2.0, (30, 30)).astype(float)
    counts[5:8, 5:8] += 12
    counts[22:25, 20:23] = 0
    gi = gi_star(counts, alpha=0.10)
    p = gi.p.ravel()
    for level, alpha in ((99, 0.01), (95, 0.05), (90, 0.10)):
        significant = p <= esda.fdr(p, alpha)
        assert np.array_equal(significant, gi.q.ravel() <= alpha)
        assert np.array_equal(significant, gi.confidence.ravel() >= level)
    assert gi.hot()[6, 6] and gi.confidence[6, 6] == 99
    # A stricter alpha shows only the stronger levels.
    strict = gi_star(counts, alpha=0.01)
    assert set(np.unique(strict.confidence)) <= {0, 99}


def test_narrow_grids_get_the_same_neighbours():
    """A study area one or two cells wide (a long street) is a grid too."""
    rng = np.random.default_rng(8)
    for shape in ((12, 1), (12, 2), (1, 12), (2, 12), (4, 3)):
        counts = rng.poisson(3.0, shape).astype(float)
        counts.flat[0] += 5  # never flat
        np.testing.assert_allclose(gi_star(counts).z, reference_gi_star(counts), rtol=1e-9, atol=1e-9)
    # In a 2 x 2 grid every neighbourhood is the whole grid: Gi* is undefined, and nothing is hot.
    tiny = gi_star(np.array([[9.0, 1.0], [0.0, 2.0]]))
    assert np.isfinite(tiny.z).all() and not tiny.hot().any()


def test_a_flat_or_empty_grid_has_no_hotspots():
    for counts in (np.zeros((10, 10)), np.full((10, 10), 4.0), np.ones((1, 1))):
        gi = gi_star(counts)
        assert not gi.hot().any() and not gi.cold().any() and np.isfinite(gi.z).all()


# -- through the API --------------------------------------------------------------------------------

async def test_the_gistar_layer_finds_the_planted_cluster(client, db, make_caller):
    where = await police_partnership(db, make_caller)
    rng = np.random.default_rng(1)
    await plant(db, *where.ids, *uniform(rng, 1800), date(2024, 7, 1))
    hx, hy = 384_250.0, 398_650.0  # the centre of one 100 m cell
    await plant(db, *where.ids, hx + rng.uniform(-40, 40, 150), hy + rng.uniform(-40, 40, 150), date(2024, 7, 1))
    await plant(db, *where.ids, *uniform(rng, 300), date(2024, 6, 1))  # another month: not counted

    r = await client.get("/api/hotspots/gistar", params={"cell_m": 100}, headers=where.caller.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert body["period"] == {"from": "2024-07-01", "to": "2024-07-31"}  # the latest month by default
    assert body["count"] == 1950 and body["cell_m"] == 100
    by_id = {f["id"]: f["properties"] for f in body["features"]}
    assert sum(p["count"] for p in by_id.values()) == 1950
    hot = by_id[cell_of(hx, hy)]
    assert hot["class"] == "hot" and hot["confidence"] == 99 and hot["q"] < 0.01 and hot["count"] >= 150
    hot_ids = {i for i, p in by_id.items() if p["class"] == "hot"}
    neighbours = {cell_of(hx + dx, hy + dy) for dx in (-100, 0, 100) for dy in (-100, 0, 100)}
    assert hot_ids <= neighbours | {cell_of(hx, hy)}  # nothing hot away from the cluster
    # Cells are 100 m squares in lon/lat, and each feature's numbers hang together.
    ring = next(f for f in body["features"] if f["id"] == cell_of(hx, hy))["geometry"]["coordinates"][0]
    assert len(ring) == 5 and ring[0] == ring[-1]
    assert all(p["confidence"] is None for p in by_id.values() if p["class"] == "not significant")
    assert all(p["q"] >= p["p"] for p in by_id.values())

    # The earlier month alone is uniform: nothing hot.
    r = await client.get("/api/hotspots/gistar", params={"from": "2024-06", "to": "2024-06", "cell_m": 100},
                         headers=where.caller.headers)
    june = r.json()
    assert june["count"] == 300 and june["hot"] == 0


async def test_category_filter_and_another_partnership_sees_nothing(client, db, make_caller):
    where = await police_partnership(db, make_caller)
    rng = np.random.default_rng(2)
    await plant(db, *where.ids, *uniform(rng, 200), date(2024, 7, 1), category="Burglary")
    await plant(db, *where.ids, *uniform(rng, 50), date(2024, 7, 1), category="Robbery")
    r = await client.get("/api/hotspots/gistar", params={"category": "Robbery"}, headers=where.caller.headers)
    assert r.json()["count"] == 50
    other = await make_caller("other-csp", "admin")
    r = await client.get("/api/hotspots/gistar", headers=other.headers)
    assert r.status_code == 200 and r.json()["features"] == [] and r.json()["count"] == 0


async def test_counts_below_the_threshold_are_held_back_from_sanitised_viewers(client, db, make_caller):
    where = await police_partnership(db, make_caller, sharing_level="sanitised")
    viewer = await make_caller("hot-csp", "viewer")
    rng = np.random.default_rng(4)
    await plant(db, *where.ids, *uniform(rng, 400), date(2024, 7, 1))
    body = (await client.get("/api/hotspots/gistar", params={"cell_m": 250}, headers=viewer.headers)).json()
    counts = [f["properties"]["count"] for f in body["features"]]
    assert body["sanitised"] is True and None in counts
    assert all(c is None or c >= 5 for c in counts)
    # The partnership's admin sees every incident exactly, so every count.
    admin = (await client.get("/api/hotspots/gistar", params={"cell_m": 250}, headers=where.caller.headers)).json()
    assert all(f["properties"]["count"] >= 1 for f in admin["features"] if f["properties"]["count"] is not None)
    assert admin["sanitised"] is False and None not in [f["properties"]["count"] for f in admin["features"]]


async def test_bad_parameters_are_clear_problems(client, db, make_caller):
    where = await police_partnership(db, make_caller)
    await plant(db, *where.ids, *uniform(np.random.default_rng(5), 20), date(2024, 7, 1))
    for params in ({"alpha": "0.2"}, {"alpha": "x"}, {"cell_m": "1"}, {"cell_m": "99999"}, {"from": "July"},
                   {"from": "2024-08", "to": "2024-07"}):
        r = await client.get("/api/hotspots/gistar", params=params, headers=where.caller.headers)
        assert r.status_code in (400, 422), (params, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["detail"]


async def test_a_grid_too_fine_for_the_area_is_refused_with_advice(client, db, make_caller):
    where = await police_partnership(db, make_caller)
    await plant(db, *where.ids, [X0 + 5, X0 + 8_000], [Y0 + 5, Y0 + 8_000], date(2024, 7, 1))
    r = await client.get("/api/hotspots/gistar", params={"cell_m": 10}, headers=where.caller.headers)
    assert r.status_code == 400 and "larger cell_m" in r.json()["detail"]
    assert (await client.get("/api/hotspots/gistar", params={"cell_m": 100},
                             headers=where.caller.headers)).status_code == 200


async def test_no_incidents_is_an_empty_layer_not_an_error(client, make_caller):
    caller = await make_caller("empty-csp", "viewer")
    r = await client.get("/api/hotspots/gistar", headers=caller.headers)
    assert r.status_code == 200 and r.json()["features"] == []
