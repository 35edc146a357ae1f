"""The catalog says what it serves: every key of a layer file is read by something, a key nothing
reads stops the app, and the source a layer names is the one its SQL reads (no silent swap)."""
from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from app.catalog import Catalog, CatalogError, Cluster, Filters, Layer, Popup, Style
from app.pages.overview import LayerSummary, layer_config
from app.settings import ROOT
from app.sharing import SHARING_FUNCTIONS
from app.tiles import grid
from app.tiles.sql import Plan, extent_sql, tile_sql

LAYERS = ROOT / "layers"

# Each key of a layer file, and what reads it (and the test that shows it). A new key fails here
# until someone says what reads it.
READERS: dict[type, dict[str, str]] = {
    Layer: {
        "id": "tile URLs, ETags, the tile list (test_tiles.test_tile_list_shows_layers_with_their_tilejson)",
        "title": "TileJSON name, the tile list, pages (test_tilejson_names_the_layer_as_the_catalog_does)",
        "description": "TileJSON, the tile list, pages (test_tilejson_names_the_layer_as_the_catalog_does)",
        "source": "the FROM item of every statement (test_each_statement_reads_the_source_the_catalog_names)",
        "source_kind": "view or sharing function (test_each_statement_reads_the_source_the_catalog_names)",
        "geometry": "clipping in embeds, clustering, pages (test_embeds.test_tiles_serve_only_the_embeds_layers...)",
        "minzoom": "empty tiles outside it (test_tiles.test_outside_zoom_range_is_an_empty_tile)",
        "maxzoom": "empty tiles outside it, TileJSON (test_tiles.test_tilejson_is_valid_and_bounds_cover_the_data)",
        "fields": "MVT properties (test_tiles.test_camera_tile_carries_the_catalog_fields)",
        "least_role": "403 below it (test_tiles.test_role_below_least_role_is_refused)",
        "versioned_by": "the ETag's data versions (test_tiles.test_if_none_match_answers_304_and_changes_invalidate)",
        "filters": "from/to/category columns (test_tiles.test_filters_change_content_and_etag)",
        "cluster": "counts on cells up to max_zoom (test_tiles.test_low_zoom_cells_count_every_incident)",
        "style": "pages draw with it (test_pages_get_style_popup_and_visibility_from_the_catalog)",
        "popup": "pages' popups (test_pages_get_style_popup_and_visibility_from_the_catalog)",
        "attribution": "TileJSON, pages (test_tilejson_names_the_layer_as_the_catalog_does)",
        "visible": "shown when a page opens (test_pages_get_style_popup_and_visibility_from_the_catalog)",
    },
    Cluster: {
        "max_zoom": "cells up to it, points beyond (test_tiles.test_high_zoom_ships_each_incident_with_its_fields)",
        "cell_px": "cells per tile side (test_cell_px_sets_how_many_cells_a_tile_holds)",
    },
    Filters: {
        "date": "from/to apply to it (test_tiles.test_filters_change_content_and_etag)",
        "category": "category applies to it, top_category (test_tiles.test_filters_change_content_and_etag)",
    },
    Popup: {
        "title": "the popup heading (test_pages_get_style_popup_and_visibility_from_the_catalog)",
        "fields": "the popup rows (test_pages_get_style_popup_and_visibility_from_the_catalog)",
    },
    Style: {name: "passed to the page scripts (test_pages_get_style_popup_and_visibility_from_the_catalog)"
            for name in ("color", "fill_color", "fill_opacity", "weight", "radius", "by", "colors")},
}


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def copy_layers(tmp_path: Path) -> Path:
    target = tmp_path / "layers"
    shutil.copytree(LAYERS, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    body = path.read_text()
    assert old in body, old
    path.write_text(body.replace(old, new, 1))


# -- every key is read ------------------------------------------------------------------------------

def test_every_key_a_layer_file_may_hold_has_a_reader():
    for model, readers in READERS.items():
        assert set(model.model_fields) == set(readers), f"{model.__name__}: say what reads each key"
        assert model.model_config.get("extra") == "forbid", f"{model.__name__} must refuse unknown keys"


def test_the_shipped_layer_files_load():
    catalog = Catalog.load(LAYERS)
    assert {"cameras", "coverage", "incidents", "gaps", "streets", "buildings"} <= set(catalog.layers)


@pytest.mark.parametrize("file,old,new,named", [
    ("cameras.toml", 'geometry = "point"\n', 'geometry = "point"\nprecision = "exact"\n', "precision"),
    ("cameras.toml", "radius = 6\n", "radius = 6\nopacity = 0.5\n", "opacity"),
    ("incidents.toml", "max_zoom = 15\n", "max_zoom = 15\nmin_zoom = 3\n", "min_zoom"),
])
def test_a_key_nothing_reads_stops_the_catalog(tmp_path, file, old, new, named):
    layers = copy_layers(tmp_path)
    edit(layers / file, old, new)
    with pytest.raises(CatalogError) as exc:
        Catalog.load(layers)
    assert file in str(exc.value) and named in str(exc.value)


# -- the source is what the file names --------------------------------------------------------------

@pytest.mark.parametrize("file,old,new,says", [
    # A view where a sharing function is named: the rules would be skipped.
    ("incidents.toml", 'source = "safermap_visible_incidents"\nsource_kind = "sharing_function"\n',
     'source = "layer_incidents"\n', "through a sharing function"),
    # A sharing function that is not one.
    ("incidents.toml", 'source = "safermap_visible_incidents"', 'source = "layer_incidents"', "not a sharing function"),
    # A sharing function called as if it were a view.
    ("incidents.toml", 'source_kind = "sharing_function"\n', "", "is a sharing function"),
    ("cameras.toml", 'source = "layer_cameras"\n', 'source = "layer_cameras"\nsource_kind = "table"\n', "source_kind"),
])
def test_the_source_and_its_kind_must_agree(tmp_path, file, old, new, says):
    layers = copy_layers(tmp_path)
    edit(layers / file, old, new)
    with pytest.raises(CatalogError) as exc:
        Catalog.load(layers)
    assert says in str(exc.value)


def test_incidents_and_gaps_name_the_sharing_functions_they_read():
    catalog = Catalog.load(LAYERS)
    assert (catalog.get("incidents").source, catalog.get("incidents").source_kind) == (
        "safermap_visible_incidents", "sharing_function")
    assert (catalog.get("gaps").source, catalog.get("gaps").source_kind) == (
        "safermap_uncovered_incidents", "sharing_function")
    assert not any(l.shared for l in catalog.layers.values() if l.id not in ("incidents", "gaps"))


PLANS = [Plan(), Plan(filters=(date(2024, 1, 1), date(2024, 2, 29), True)), Plan(cells=True), Plan(embed=True), Plan(cells=True, embed=True)]


@pytest.mark.parametrize("layer_id", sorted(Catalog.load(LAYERS).layers))
def test_each_statement_reads_the_source_the_catalog_names(layer_id):
    catalog = Catalog.load(LAYERS)
    layer = catalog.get(layer_id)
    sources = {l.source for l in catalog.layers.values()} | SHARING_FUNCTIONS | {"layer_incidents", "layer_gaps"}
    for plan in PLANS:
        if plan.cells and layer.geometry != "point":
            continue
        for sql in (tile_sql(layer, plan), extent_sql(layer, plan)):
            read = set(re.findall(r'FROM "([a-z_0-9]+)"', sql))
            assert read == {layer.source}, (plan, read)
            called = re.findall(r'FROM "[a-z_0-9]+"(\(:p, )?', sql)
            assert all(bool(c) == layer.shared for c in called), plan
            assert not (set(re.findall(r"[a-z_0-9]+", sql)) & (sources - {layer.source}))


# -- behaviour driven by keys no other test covers ---------------------------------------------------

async def test_cell_px_sets_how_many_cells_a_tile_holds(app, client, make_caller, db):
    admin = await make_caller("catalog-csp", "admin")
    z, (x, y) = 12, grid.lonlat_to_tile(-2.2426, 53.4808, 12)
    west, south, east, north = grid.lonlat_bounds(grid.Tile(x, y, z))
    ds = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, source_key, name, sharing_level) VALUES (:p, 'test:cells', 'Cells', "
        "'exact') RETURNING id"), {"p": admin.partnership_id})).scalar_one()
    for i in range(4):        # one incident in each of 4 x 4 blocks of the tile
        for j in range(4):
            await db.execute(text(
                "INSERT INTO incident (partnership_id, dataset_id, category, month, geom) "
                "VALUES (:p, :d, 'Burglary', :m, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"),
                {"p": admin.partnership_id, "d": ds, "m": date(2024, 1, 1),
                 "lon": west + (i + 0.5) / 4 * (east - west), "lat": south + (j + 0.5) / 4 * (north - south)})
    await db.commit()

    async def cells() -> list[int]:
        r = await client.get(f"/tiles/incidents/{z}/{x}/{y}.mvt", headers=admin.headers)
        return sorted(f["properties"]["count"] for f in decode(r.content)["incidents"]["features"])

    assert await cells() == [1] * 16          # cell_px 16: 16 x 16 cells, one incident in each of 16
    original = app.state.catalog
    incidents = original.get("incidents")
    coarse = incidents.model_copy(update={"cluster": Cluster(max_zoom=15, cell_px=128)})
    app.state.catalog = Catalog({**original.layers, "incidents": coarse}, original.fingerprint + "-coarse")
    try:
        assert await cells() == [4] * 4       # cell_px 128: 2 x 2 cells of four
    finally:
        app.state.catalog = original


async def test_tilejson_names_the_layer_as_the_catalog_does(app, client, make_caller):
    viewer = await make_caller("catalog-csp", "viewer")
    layer = app.state.catalog.get("incidents")
    tj = (await client.get("/tiles/incidents.json", headers=viewer.headers)).json()
    assert tj["name"] == layer.title and tj["description"].startswith(layer.description)
    assert tj["attribution"] == layer.attribution and "Open Government Licence" in tj["attribution"]
    listed = {l["id"]: l for l in (await client.get("/tiles", headers=viewer.headers)).json()["layers"]}
    assert listed["incidents"]["title"] == layer.title and listed["incidents"]["description"] == layer.description


def test_pages_get_style_popup_and_visibility_from_the_catalog():
    catalog = Catalog.load(LAYERS)
    cameras = layer_config(catalog.get("cameras"), LayerSummary())
    assert cameras["style"]["by"] == "status" and cameras["style"]["colors"]["faulty"] == "#dc2626"
    assert cameras["style"]["radius"] == 6 and cameras["visible"] is True
    assert cameras["popup"] == {"title": "reference", "fields": catalog.get("cameras").popup.fields}
    assert layer_config(catalog.get("gaps"), LayerSummary())["visible"] is False
