"""Change over time and the top hotspots list, against real PostGIS: planted rises and falls come
out on top with their exact counts; the top list's counts, categories, cameras and coverage share
match an independent count of what was planted."""
from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
import pytest

from tests.factories import TO_WGS84, camera, cell_of, plant, police_partnership, streets, uniform

JUNE, JULY = date(2024, 6, 1), date(2024, 7, 1)
RISE = (384_150.0, 398_250.0)    # cell centres, away from each other
FALL = (385_550.0, 397_450.0)
SMALL_RISE = (383_350.0, 399_650.0)


@pytest.fixture
async def planted(db, make_caller):
    """The same background in June and July (no change), plus a rise of 30 and one of 12, and a
    fall of 25."""
    where = await police_partnership(db, make_caller)
    rng = np.random.default_rng(21)
    xs, ys = uniform(rng, 900)
    for month in (JUNE, JULY):
        await plant(db, *where.ids, xs, ys, month)
    await plant(db, *where.ids, [RISE[0]] * 20, [RISE[1]] * 20, JULY, category="Robbery")
    await plant(db, *where.ids, [RISE[0] + 40] * 10, [RISE[1] - 40] * 10, JULY, category="Vehicle crime")
    await plant(db, *where.ids, [SMALL_RISE[0]] * 12, [SMALL_RISE[1]] * 12, JULY)
    await plant(db, *where.ids, [FALL[0]] * 25, [FALL[1]] * 25, JUNE)
    background = Counter(cell_of(x, y) for x, y in zip(xs, ys))
    return where, background, (xs, ys)


async def get(client, caller, path: str, **params):
    r = await client.get(path, params={"cell_m": 100, **params}, headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_planted_rises_and_falls_top_the_ranked_lists_with_exact_counts(client, planted):
    where, background, _ = planted
    body = await get(client, where.caller, "/api/hotspots/change", n=5)
    assert body["period"] == {"from": "2024-07-01", "to": "2024-07-31"}
    assert body["previous_period"] == {"from": "2024-06-01", "to": "2024-06-30"}
    rose, fell = body["rose"], body["fell"]
    assert [a["id"] for a in rose] == [cell_of(*RISE), cell_of(*SMALL_RISE)]  # nothing else moved
    assert [a["id"] for a in fell] == [cell_of(*FALL)]
    top = rose[0]
    base = background[cell_of(*RISE)]
    assert (top["current"], top["previous"], top["change"]) == (base + 30, base, 30)
    assert top["change_pct"] == (round(100 * 30 / base, 1) if base else None)
    assert fell[0]["change"] == -25 and fell[0]["current"] == background[cell_of(*FALL)]
    assert rose[1]["change"] == 12
    assert all(a["label"] and len(a["centroid"]) == 2 for a in rose + fell)

    # The change layer holds every cell with incidents in either period, unchanged ones at 0.
    layer = {f["id"]: f["properties"] for f in body["areas"]["features"]}
    assert set(layer) == set(background) | {cell_of(*RISE), cell_of(*FALL), cell_of(*SMALL_RISE)}
    assert sum(p["current"] for p in layer.values()) == 900 + 42
    assert sum(p["previous"] for p in layer.values()) == 900 + 25
    assert all(p["change"] == 0 for i, p in layer.items()
               if i not in {cell_of(*RISE), cell_of(*FALL), cell_of(*SMALL_RISE)})


async def test_compare_with_the_same_month_last_year(client, db, planted):
    where, background, (xs, ys) = planted
    await plant(db, *where.ids, xs[:100], ys[:100], date(2023, 7, 1))
    body = await get(client, where.caller, "/api/hotspots/change", compare="last_year", n=3)
    assert body["previous_period"] == {"from": "2023-07-01", "to": "2023-07-31"}
    layer = {f["id"]: f["properties"] for f in body["areas"]["features"]}
    assert sum(p["previous"] for p in layer.values()) == 100
    assert body["rose"][0]["id"] == cell_of(*RISE)  # the planted rise is still the biggest


async def test_top_hotspots_match_an_independent_count(client, db, planted):
    where, background, _ = planted
    pid = where.caller.partnership_id
    # An operational dome camera on the robbery point sees 30 m around it; a faulty one that would
    # see the vehicle crimes too does not count, nor does the camera itself.
    lon, lat = TO_WGS84.transform(*RISE)
    for ref, status, range_m in (("CAM-1", "operational", 30), ("CAM-2", "faulty", 80)):
        await camera(db, pid, ref, (lon, lat), camera_type="dome", fov=360, range_m=range_m, status=status)
    # Just across the cell's east edge: inside its lon/lat box, but in the next cell.
    across = (RISE[0] + 50.5, RISE[1] + 10)
    await plant(db, *where.ids, [across[0]] * 7, [across[1]] * 7, JULY, category="Drugs")

    body = await get(client, where.caller, "/api/hotspots/top", n=3)
    areas = body["areas"]
    assert [a["rank"] for a in areas] == [1, 2, 3]
    # Independently: the cell counts of what was planted in July.
    july = background + Counter({cell_of(*RISE): 30, cell_of(*SMALL_RISE): 12, cell_of(*across): 7})
    expected = sorted(july.values(), reverse=True)[:3]
    assert [a["count"] for a in areas] == expected
    first = next(a for a in areas if a["id"] == cell_of(*RISE))
    base = background[cell_of(*RISE)]
    assert first["count"] == base + 30 and first["previous_count"] == base and first["change"] == 30
    cats = {c["category"]: c["count"] for c in first["top_categories"]}
    assert cats["Robbery"] == 20 and cats["Vehicle crime"] == 10 and cats.get("Burglary", 0) == base
    assert "Drugs" not in cats and sum(cats.values()) == first["count"]
    assert first["cameras_inside"] == 1
    # Inside coverage: the 20 robberies, plus any background incident within the 30 m disc.
    centre = np.array(RISE)
    _, _, (xs, ys) = planted
    near = sum(1 for x, y in zip(xs, ys) if np.hypot(x - centre[0], y - centre[1]) < 29.5)
    assert first["share_in_coverage"] == pytest.approx((20 + near) / (base + 30), abs=1e-4)
    assert first["label"].startswith("Cell ") or first["label"].startswith("Near ")
    assert first["geometry"]["type"] == "Polygon" and len(first["centroid"]) == 2
    lon_c, lat_c = TO_WGS84.transform(*RISE)
    assert first["centroid"] == pytest.approx([lon_c, lat_c], abs=1e-5)


async def test_a_cell_is_labelled_with_the_street_through_it(client, db, planted):
    where, _, _ = planted
    ends = [TO_WGS84.transform(RISE[0] - 45, RISE[1]), TO_WGS84.transform(RISE[0] + 45, RISE[1] + 10)]
    await streets(db, where.caller.partnership_id, {"Market Street": ends}, highway="primary")
    body = await get(client, where.caller, "/api/hotspots/top", n=1)
    assert body["areas"][0]["label"] == "Near Market Street"


async def test_small_counts_and_changes_are_held_back_from_sanitised_viewers(client, db, make_caller):
    where = await police_partnership(db, make_caller, sharing_level="sanitised")
    viewer = await make_caller("hot-csp", "viewer")
    await plant(db, *where.ids, [RISE[0]] * 3, [RISE[1]] * 3, JUNE)
    await plant(db, *where.ids, [RISE[0]] * 40, [RISE[1]] * 40, JULY)
    await plant(db, *where.ids, [FALL[0]] * 2, [FALL[1]] * 2, JULY)
    body = await get(client, viewer, "/api/hotspots/change", cell_m=500)
    assert body["sanitised"] is True
    for f in body["areas"]["features"]:
        p = f["properties"]
        assert p["current"] is None or p["current"] == 0 or p["current"] >= 5
        assert p["previous"] is None or p["previous"] == 0 or p["previous"] >= 5
        if p["current"] is None or p["previous"] is None:
            assert p["change"] is None and p["change_pct"] is None
    assert all(a["change"] is not None for a in body["rose"] + body["fell"])
    top = await get(client, viewer, "/api/hotspots/top", cell_m=500)
    assert top["areas"][0]["count"] == 40 and top["areas"][0]["previous_count"] is None
    assert top["areas"][0]["change"] is None


async def test_bad_parameters_and_empty_partnerships(client, planted, make_caller):
    where, _, _ = planted
    for path in ("/api/hotspots/change", "/api/hotspots/top"):
        for params in ({"compare": "yesterday"}, {"n": 0}, {"n": 101}, {"cell_m": "-5"}, {"to": "2024-13"}):
            r = await client.get(path, params=params, headers=where.caller.headers)
            assert r.status_code in (400, 422), (path, params, r.status_code)
            assert r.headers["content-type"].startswith("application/problem+json")
    empty = await make_caller("empty-csp", "viewer")
    assert (await get(client, empty, "/api/hotspots/top"))["areas"] == []
    change = await get(client, empty, "/api/hotspots/change")
    assert change["rose"] == [] and change["areas"]["features"] == []
