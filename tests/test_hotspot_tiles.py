"""Hotspot maps over HTTP: PNG tiles of the density surface (decoded with Pillow), their legend, and
count cells as vector tiles (decoded with the independent mapbox_vector_tile)."""
from __future__ import annotations

import io
import math

import mapbox_vector_tile
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from app.tiles import grid
from app.tiles.sql import lonlat_to_tile
from tests.factories import LAT, LON, dataset, scattered
from tests.factories import incidents as add

PNG = "image/png"


def pixel_of(lon: float, lat: float, z: int) -> tuple[int, int, int, int]:
    """(x, y) of the tile holding a point at zoom z, and the pixel (col, row) in it."""
    x, y = lonlat_to_tile(lon, lat, z)
    left, bottom, right, top = grid.mercator_bounds(grid.Tile(x, y, z))
    mx, my = grid.TMS.xy(lon, lat)
    return x, y, int((mx - left) / (right - left) * 256), int((top - my) / (top - bottom) * 256)


def rgba(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    assert image.size == (256, 256)
    return np.asarray(image.convert("RGBA"))


def hex_of(pixel: np.ndarray) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in pixel[:3])


async def png(client, caller, z: int, x: int, y: int, **params):
    headers = {**caller.headers, **params.pop("headers", {})}
    return await client.get(f"/tiles/hotspots/{z}/{x}/{y}.png", params=params, headers=headers)


async def seed(db, pid: int) -> None:
    """A hotspot on one snapped point (in the latest month), a scatter around it, an older month."""
    ds = await dataset(db, pid, "police-uk:test")
    await add(db, pid, ds, [(LON, LAT, "Burglary", "2024-07", 400)])
    await add(db, pid, ds, [(lon, lat, "Drugs", "2024-07", 1) for lon, lat in scattered(150, seed=3)])
    await add(db, pid, ds, [(LON + 0.05, LAT + 0.02, "Robbery", "2024-06", 300),
                            (None, None, "Burglary", "2024-07", 4)])


async def test_tile_colours_the_hotspot_and_leaves_the_rest_transparent(client, make_caller, db):
    caller = await make_caller("csp-hot", "viewer")
    await seed(db, caller.partnership_id)
    legend = (await client.get("/api/hotspots/legend", headers=caller.headers)).json()
    assert legend["period"] == {"from": "2024-07-01", "to": "2024-07-31"}  # the latest month
    assert legend["count"] == 550 and legend["unplaced"] == 4
    assert legend["units"] == "incidents per km²" and legend["method"] == "stddev"
    assert legend["bandwidth_m"] == 5 * legend["cell_m"]

    for z in (11, 13, 15, 17):
        x, y, col, row = pixel_of(LON, LAT, z)
        r = await png(client, caller, z, x, y)
        assert r.status_code == 200 and r.headers["content-type"] == PNG
        assert "must-revalidate" in r.headers["cache-control"] and r.headers["etag"]
        image = rgba(r.content)
        # The snapped point with 400 burglaries is in the top class: dark red, half see-through.
        assert hex_of(image[row, col]) == legend["classes"][-1]["colour"], z
        assert 0 < image[row, col, 3] < 255
        # Every coloured pixel is a legend colour; the rest is fully transparent.
        colours = {c["colour"] for c in legend["classes"]}
        shown = image[..., 3] > 0
        assert {hex_of(p) for p in image[shown]} <= colours
        assert (image[~shown][:, :3] == 0).all()

    # Far from any incident the tile is transparent (still a PNG, not an error).
    x, y, _, _ = pixel_of(LON + 1.0, LAT + 0.5, 13)
    r = await png(client, caller, 13, x, y)
    assert r.status_code == 200 and rgba(r.content)[..., 3].max() == 0

    # The June point is not in July's surface, but is in June's.
    x, y, col, row = pixel_of(LON + 0.05, LAT + 0.02, 14)
    july = rgba((await png(client, caller, 14, x, y)).content)
    june = rgba((await png(client, caller, 14, x, y, **{"from": "2024-06", "to": "2024-06"})).content)
    assert july[row, col, 3] == 0 and june[row, col, 3] > 0


async def test_legend_classes_and_parameters(client, make_caller, db):
    caller = await make_caller("csp-legend", "analyst")
    await seed(db, caller.partnership_id)
    for classes in ("stddev", "quantile"):
        r = await client.get("/api/hotspots/legend", params={"classes": classes, "from": "2024-07"},
                             headers=caller.headers)
        body = r.json()
        assert r.status_code == 200 and body["method"] == classes
        mins = [c["min"] for c in body["classes"]]
        assert mins == sorted(mins) and len(set(mins)) == len(mins) and mins[0] > 0
        assert [c["max"] for c in body["classes"][:-1]] == mins[1:]
        assert body["classes"][-1]["max"] >= mins[-1]
        assert all(c["label"] and c["colour"].startswith("#") for c in body["classes"])
        assert body["tiles"].endswith("/tiles/hotspots/{z}/{x}/{y}.png?from=2024-07-01&to=2024-07-31"
                                      + ("&classes=quantile" if classes == "quantile" else ""))
        assert not body["sanitised"] and not body["suppressed"]
        minlon, minlat, maxlon, maxlat = body["bounds"]
        assert minlon < LON < maxlon and minlat < LAT < maxlat
    burglary = (await client.get("/api/hotspots/legend", params={"category": "Burglary"},
                                 headers=caller.headers)).json()
    assert burglary["count"] == 400 and burglary["categories"] == ["Burglary"]
    custom = (await client.get("/api/hotspots/legend", params={"cell_m": 100, "bandwidth_m": 800},
                               headers=caller.headers)).json()
    assert (custom["cell_m"], custom["bandwidth_m"]) == (100, 800)
    # Peak density of a point carrying 400 incidents: about 400 * 3 / (pi h^2), per km².
    peak = 400 * 3 / (math.pi * 0.8 ** 2)
    assert custom["classes"][-1]["max"] == pytest.approx(peak, rel=0.1)


@pytest.mark.parametrize("params, status", [
    ({"from": "2024-13"}, 400), ({"from": "2024-07", "to": "2024-01"}, 400),
    ({"classes": "jenks"}, 422), ({"cell_m": 1}, 422), ({"cell_m": 100, "bandwidth_m": 50}, 400),
    ({"bandwidth_m": -5}, 422),
])
async def test_bad_parameters_are_clear_4xx(client, make_caller, db, params, status):
    caller = await make_caller("csp-bad", "viewer")
    await seed(db, caller.partnership_id)
    for url in ("/api/hotspots/legend", "/tiles/hotspots/13/4037/2642.png"):
        r = await client.get(url, params=params, headers=caller.headers)
        assert r.status_code == status, (url, params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.get("/tiles/hotspots/3/9/9.png", headers=caller.headers)
    assert r.status_code == 400


async def test_etag_304_and_new_data_changes_the_tile(client, make_caller, db, app):
    caller = await make_caller("csp-etag", "viewer")
    await seed(db, caller.partnership_id)
    x, y, col, row = pixel_of(LON, LAT, 14)
    first = await png(client, caller, 14, x, y)
    tag = first.headers["etag"]
    again = await png(client, caller, 14, x, y, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    hits = app.state.tiles.cache.hits
    cached = await png(client, caller, 14, x, y)
    assert cached.content == first.content and app.state.tiles.cache.hits == hits + 1
    # Another partnership's tile of the same place is empty and differently tagged.
    other = await make_caller("csp-etag-other", "viewer")
    theirs = await png(client, other, 14, x, y)
    assert theirs.headers["etag"] != tag and rgba(theirs.content)[..., 3].max() == 0
    # New incidents elsewhere change the classes: a new ETag and a new image.
    ds = (await db.execute(text("SELECT id FROM dataset WHERE partnership_id = :p"),
                           {"p": caller.partnership_id})).scalar_one()
    await add(db, caller.partnership_id, ds, [(LON + 0.01, LAT - 0.01, "Burglary", "2024-07", 2000)])
    after = await png(client, caller, 14, x, y, headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag
    assert after.content != first.content


async def test_sanitised_and_suppressed_surfaces_say_so(client, make_caller, db):
    viewer = await make_caller("csp-sanitised", "viewer")
    pid = viewer.partnership_id
    council = await dataset(db, pid, "council:asb", "sanitised")
    await add(db, pid, council, [(LON + 0.0031, LAT + 0.0017, "Anti-social behaviour", "2024-07", 3)])
    few = (await client.get("/api/hotspots/legend", headers=viewer.headers)).json()
    assert few["suppressed"] and few["count"] is None and few["classes"] == []
    assert "held back" in few["note"]
    x, y, _, _ = pixel_of(LON, LAT, 14)
    assert rgba((await png(client, viewer, 14, x, y)).content)[..., 3].max() == 0

    await add(db, pid, council, [(LON + 0.0031, LAT + 0.0017, "Anti-social behaviour", "2024-07", 30)])
    many = (await client.get("/api/hotspots/legend", headers=viewer.headers)).json()
    assert many["count"] == 33 and many["sanitised"] and not many["suppressed"]
    assert "anonymous points" in many["note"]
    # The admin sees the same incidents exactly: no note about sanitised locations.
    admin = await make_caller("csp-sanitised", "admin")
    exact = (await client.get("/api/hotspots/legend", headers=admin.headers)).json()
    assert not exact["sanitised"] and exact["count"] == 33


# -- count cells ---------------------------------------------------------------------------------------
def decode(body: bytes) -> list[dict]:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})["hotspot_cells"]["features"]


async def test_count_cells_count_every_incident_once_at_every_zoom(client, make_caller, db):
    caller = await make_caller("csp-cells", "admin")
    ds = await dataset(db, caller.partnership_id, "police-uk:test")
    await add(db, caller.partnership_id, ds, [(LON, LAT, "Burglary", "2024-07", 400)] + [
        (lon, lat, "Drugs", "2024-07", 1) for lon, lat in scattered(150, seed=3, spread=0.003)])
    for z in (9, 12, 14):
        x, y = lonlat_to_tile(LON, LAT, z)
        total, sizes = 0, set()
        # The hotspot's tile and its neighbours hold all of July's 550 mapped incidents.
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                r = await client.get(f"/tiles/hotspot-cells/{z}/{x + dx}/{y + dy}.mvt", headers=caller.headers)
                assert r.status_code in (200, 204)
                if r.status_code == 200:
                    feats = decode(r.content)
                    # A cell overlapping two tiles is in both: count it in the tile holding its id corner.
                    for f in feats:
                        sizes.add(f["properties"]["cell_m"])
                        assert f["geometry"]["type"] == "Polygon"
                    total += sum(f["properties"]["count"] for f in feats if owns(f, z, x + dx, y + dy))
        assert total == 550, z
        assert min(sizes) >= 100
    low = decode((await client.get(f"/tiles/hotspot-cells/9/{lonlat_to_tile(LON, LAT, 9)[0]}/"
                                   f"{lonlat_to_tile(LON, LAT, 9)[1]}.mvt", headers=caller.headers)).content)
    high_x, high_y = lonlat_to_tile(LON, LAT, 14)
    high = decode((await client.get(f"/tiles/hotspot-cells/14/{high_x}/{high_y}.mvt", headers=caller.headers)).content)
    assert low[0]["properties"]["cell_m"] > high[0]["properties"]["cell_m"]  # merged at low zoom
    # Another partnership sees nothing there.
    other = await make_caller("csp-cells-other", "admin")
    r = await client.get(f"/tiles/hotspot-cells/14/{high_x}/{high_y}.mvt", headers=other.headers)
    assert r.status_code == 204


def owns(feature: dict, z: int, x: int, y: int) -> bool:
    """Whether the cell's lower-left corner (its id, in BNG metres) lies in tile z/x/y."""
    from pyproj import Transformer
    e, n = feature["properties"]["id"][1:].split("N")
    lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(float(e), float(n))
    return lonlat_to_tile(lon, lat, z) == (x, y)


async def test_small_count_cells_are_held_back_from_callers_without_exact_access(client, make_caller, db):
    viewer = await make_caller("csp-cells-k", "viewer")
    pid = viewer.partnership_id
    council = await dataset(db, pid, "council:asb", "sanitised")
    await add(db, pid, council, [(LON, LAT, "Anti-social behaviour", "2024-07", 12),
                                 (LON + 0.005, LAT + 0.003, "Anti-social behaviour", "2024-07", 2)])
    x, y = lonlat_to_tile(LON, LAT, 12)
    feats = decode((await client.get(f"/tiles/hotspot-cells/12/{x}/{y}.mvt", headers=viewer.headers)).content)
    assert sorted(f["properties"]["count"] for f in feats) == [12]
    admin = await make_caller("csp-cells-k", "admin")
    feats = decode((await client.get(f"/tiles/hotspot-cells/12/{x}/{y}.mvt", headers=admin.headers)).content)
    assert sorted(f["properties"]["count"] for f in feats) == [2, 12]
