"""Low-zoom incident tiles counted from the per-data-version aggregate (app/sql/incident_cells.sql):
the same tile as counting every point, for every kind of caller, and never from a stale aggregate."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import mapbox_vector_tile
import psycopg
import pytest
from sqlalchemy import text

from app.catalog import Catalog
from app.settings import ROOT, to_libpq_url
from app.tiles.grid import Tile
from app.tiles.sql import Plan, TileFilters, aggregate_applies, lonlat_to_tile, tile_params, tile_sql
from tests import factories

LAYER = Catalog.load(ROOT / "layers").get("incidents")
assert LAYER is not None and LAYER.cluster is not None
ZOOMS = range(LAYER.minzoom, LAYER.cluster.max_zoom + 1)
CELLS = 16
Feature = tuple[tuple[int, int], int, str | None]  # position in the tile, count, top category


def features(body: bytes | None) -> list[Feature]:
    layer = mapbox_vector_tile.decode(body or b"").get("incidents", {"features": []})
    return sorted((tuple(f["geometry"]["coordinates"]), f["properties"]["count"],
                   f["properties"].get("top_category")) for f in layer["features"])


def same_cells(old: list[Feature], new: list[Feature]) -> bool:
    """Equal counts and categories, positions within one tile unit: a cell's mean position is a sum
    of floats, added up in another order from the aggregate (its last bit may round the other way)."""
    return len(old) == len(new) and all(
        a[1:] == b[1:] and abs(a[0][0] - b[0][0]) <= 1 and abs(a[0][1] - b[0][1]) <= 1
        for a, b in zip(sorted(old, key=lambda f: f[1:]), sorted(new, key=lambda f: f[1:]), strict=True))


async def draw(db, access: dict, tile: Tile, *, aggregate: bool, k: int = 5,
               filters: TileFilters = TileFilters()) -> tuple[list[Feature], list[int]]:
    """A cells tile drawn by the statement the pipeline sends: (features, stale partnerships)."""
    params = tile_params(LAYER, tile, access, filters=filters, k=k, cells=CELLS)
    row = (await db.execute(text(tile_sql(LAYER, Plan(cells=True, filters=filters.shape(), aggregate=aggregate))),
                            params)).one()
    return features(row.tile), list(row.stale) if aggregate else []


async def build(db, *partnerships: int) -> None:
    for p in partnerships:
        assert (await db.execute(text("SELECT safermap_build_incident_cells(:p)"), {"p": p})).scalar_one() is not None
    await db.commit()


def tiles_of(points: Iterable[tuple[float, float]], z: int) -> list[Tile]:
    return sorted({Tile(*lonlat_to_tile(lon, lat, z), z) for lon, lat in points})


def access(p: int, role: str, agency: int | None = None, cap: str = "exact") -> dict:
    return {"p": p, "role": role, "agency": agency, "level_cap": cap}


@pytest.fixture
async def scene(db):
    """Partnership A's data sets at every level (one its police agency's own), a sensitive category,
    and a hub partnership B whose agency A grants one data set at 'sanitised'."""
    a = await factories.partnership(db, "cells-a")
    b = await factories.partnership(db, "cells-b")
    police = await factories.agency(db, a, "Police")
    hub = await factories.agency(db, b, "Hub")
    sets = {"exact": await factories.dataset(db, a, "a:exact"),
            "sanitised": await factories.dataset(db, a, "a:sanitised", "sanitised"),
            "aggregate": await factories.dataset(db, a, "a:aggregate", "aggregate"),
            "none": await factories.dataset(db, a, "a:none", "none"),
            "police": await factories.dataset(db, a, "a:police", "aggregate", agency_id=police)}
    await db.execute(text("INSERT INTO sensitive_category (partnership_id, category, least_role) "
                          "VALUES (:p, 'Drugs', 'analyst')"), {"p": a})
    await db.execute(text("INSERT INTO sharing_rule (partnership_id, dataset_id, grantee_agency_id, level) "
                          "VALUES (:p, :d, :g, 'sanitised')"), {"p": a, "d": sets["exact"], "g": hub})
    await db.commit()
    cats = ["Burglary", "Drugs", "Robbery", "Shoplifting"]
    for i, (key, ds) in enumerate(sets.items()):
        spread = factories.scattered(120, seed=i + 1, spread=0.03)
        dense = factories.scattered(40, seed=i + 11, spread=0.002)  # cells over the threshold
        rows = [(lon, lat, cats[j % len(cats)], f"2024-0{1 + j % 3}") for j, (lon, lat) in enumerate(spread + dense)]
        rows.append((None, None, "Burglary", "2024-01"))  # no location: in no tile
        await factories.incidents(db, a, ds, rows)
    # every place an incident is shown: its own point and its anonymous one
    points = [tuple(r) for r in (await db.execute(text(
        "SELECT ST_X(g), ST_Y(g) FROM incident, unnest(ARRAY[geom, geom_anon]) AS g WHERE g IS NOT NULL"))).all()]
    return {"a": a, "b": b, "police": police, "hub": hub, "sets": sets, "points": points}


def callers(s: dict) -> dict[str, dict]:
    """A caller at every level the rules give: exact everything, defaults, own agency's data exact,
    a role that sees the sensitive category, a cap below exact, another partnership's granted agency."""
    a = s["a"]
    return {"admin": access(a, "admin"), "viewer": access(a, "viewer"),
            "police viewer": access(a, "viewer", s["police"]), "analyst": access(a, "analyst"),
            "capped": access(a, "analyst", s["police"], cap="sanitised"),
            "hub": access(s["b"], "viewer", s["hub"]), "stranger": access(s["b"], "viewer")}


async def test_cells_add_up_to_every_visible_incident(db, scene):
    await build(db, scene["a"], scene["b"])
    for name, who in callers(scene).items():
        visible = (await db.execute(text(
            "SELECT count(*) FROM safermap_visible_incidents(:p, CAST(:role AS text), CAST(:agency AS integer), "
            "CAST(:level_cap AS text)) WHERE geom IS NOT NULL"), who)).scalar_one()
        for z in ZOOMS:
            total = 0
            for tile in tiles_of(scene["points"], z):
                feats, stale = await draw(db, who, tile, aggregate=True, k=1)  # k=1: nothing held back
                assert stale == []
                total += sum(f[1] for f in feats)
            assert total == visible, (name, z)
    assert visible == 0  # the stranger: nothing granted


async def test_a_tile_at_every_level_is_the_one_every_point_draws(db, scene):
    await build(db, scene["a"], scene["b"])
    some = TileFilters(categories=("Burglary", "Drugs"))
    for name, who in callers(scene).items():
        for z in ZOOMS:
            for tile in tiles_of(scene["points"], z):
                for filters in (TileFilters(), some):
                    old, _ = await draw(db, who, tile, aggregate=False, filters=filters)
                    new, stale = await draw(db, who, tile, aggregate=True, filters=filters)
                    assert stale == []
                    assert same_cells(old, new), (name, tile, filters, old, new)


def test_a_dated_tile_is_counted_from_every_point():
    """The aggregate has no months: a from/to filter draws from every point, as before."""
    assert aggregate_applies(LAYER, 12, CELLS, TileFilters())
    assert aggregate_applies(LAYER, 12, CELLS, TileFilters(categories=("Burglary",)))
    assert not aggregate_applies(LAYER, 12, CELLS, TileFilters(date_from=date(2024, 1, 1)))
    assert not aggregate_applies(LAYER, 16, CELLS, TileFilters())
    assert not aggregate_applies(LAYER, 12, 8, TileFilters())


async def count_at(client, caller, z: int, lon: float, lat: float) -> int:
    x, y = lonlat_to_tile(lon, lat, z)
    r = await client.get(f"/tiles/incidents/{z}/{x}/{y}.mvt", headers=caller.headers)
    assert r.status_code in (200, 204)
    return sum(f[1] for f in features(r.content))


async def test_a_stale_aggregate_is_never_served(client, make_caller, db, app):
    caller = await make_caller("cells-stale", "admin")
    p = caller.partnership_id
    ds = await factories.dataset(db, p, "stale:test")
    kept = await factories.dataset(db, p, "stale:kept")
    lon, lat = factories.LON, factories.LAT
    await factories.incidents(db, p, ds, [(lon, lat, "Burglary", "2024-01", 30)])
    await factories.incidents(db, p, kept, [(lon, lat, "Drugs", "2024-01", 5)])
    builds = app.state.tiles.cell_builds
    tile = Tile(*lonlat_to_tile(lon, lat, 12), 12)

    async def from_aggregate() -> tuple[int, list[int]]:
        feats, stale = await draw(db, access(p, "admin"), tile, aggregate=True)
        return sum(f[1] for f in feats), stale

    # No aggregate yet: drawn from every point, and the build started.
    assert (await from_aggregate())[1] == [p]
    assert await count_at(client, caller, 12, lon, lat) == 35
    await builds.settle()
    assert await from_aggregate() == (35, [])
    assert await count_at(client, caller, 11, lon, lat) == 35  # from the aggregate

    # A change: the aggregate is stale at once (in the same snapshot as the change), and the tile
    # is drawn from every point until it has been rebuilt.
    await factories.incidents(db, p, ds, [(lon, lat, "Robbery", "2024-02", 3)])
    assert (await from_aggregate())[1] == [p]
    assert await count_at(client, caller, 12, lon, lat) == 38
    await builds.settle()
    assert await from_aggregate() == (38, [])
    assert await count_at(client, caller, 10, lon, lat) == 38

    # Deleting a data set takes its incidents, and its cells, with it.
    await db.execute(text("DELETE FROM dataset WHERE id = :d"), {"d": ds})
    await db.commit()
    assert (await from_aggregate())[1] == [p]
    assert await count_at(client, caller, 12, lon, lat) == 5
    await builds.settle()
    assert await from_aggregate() == (5, [])
    assert await count_at(client, caller, 9, lon, lat) == 5


async def test_a_build_while_another_runs_returns_at_once(database_url, db, scene):
    """Only one build per partnership at a time; another caller is told so (NULL) at once."""
    url = to_libpq_url(database_url)
    with psycopg.connect(url) as one, psycopg.connect(url) as two:
        one.execute("SELECT pg_advisory_xact_lock(hashtext('safermap_incident_cells'), %s)", (scene["a"],))
        assert two.execute("SELECT safermap_build_incident_cells(%s)", (scene["a"],)).fetchone()[0] is None
        one.rollback()
        assert two.execute("SELECT safermap_build_incident_cells(%s)", (scene["a"],)).fetchone()[0] is not None
