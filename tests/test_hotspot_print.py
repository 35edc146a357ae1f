"""The hotspot map for the meeting pack: an A4 landscape sheet as a 300 dpi PNG and a one-page PDF,
drawn with matplotlib from the density surface over the partnership's own streets and buildings.

What a tasking meeting depends on: the sheet is A4 (3508 x 2480 px; 842 x 595 pt), the hotspot is
drawn where the incidents are (its top-class colour lands on the map at their position), the period
and the sharing levels are stated, bad input is a clear 4xx, and every print is audited.
"""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from app.auth import principal_from_token
from app.pages import hotspot_print
from tests.scenes import HOT, HOT_COUNT, World, build_world


@pytest.fixture
async def world(db, make_caller, client) -> World:
    return await build_world(db, make_caller, client)


def page_px(mm_x: float, mm_y: float, size: tuple[int, int]) -> tuple[float, float]:
    """A point on the sheet in mm from its lower-left corner, as PNG pixel column and row."""
    return mm_x / hotspot_print.PAGE_MM[0] * size[0], (1 - mm_y / hotspot_print.PAGE_MM[1]) * size[1]


def hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


async def sheet_for(app, token: str, **params) -> hotspot_print.Sheet:
    """The sheet the print route draws, built the same way, to know where things land."""
    from app.analysis.hotspot_data import hotspot_filter
    from app.api.hotspot_pages import print_sheet
    async with app.state.read_sessionmaker() as session:
        principal = await principal_from_token(session, token)
        flt = hotspot_filter(params.get("from"), params.get("to"), params.get("category"), None)
        return await print_sheet(session, principal, app.state.catalog, flt, None, "stddev", None, None)


# -- the PNG ----------------------------------------------------------------------------------------

async def test_png_is_a4_at_300_dpi_with_the_hotspot_where_the_incidents_are(app, client, world):
    r = await client.get("/maps/hotspots/print.png", headers=world.admin.headers,
                         params={"from": "2024-03", "to": "2024-03"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'attachment; filename="hotspots-print-csp-2024-03-2024-03.png"'
    assert r.headers["cache-control"] == "no-store"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (3508, 2480)
    assert round(image.info["dpi"][0]) == 300
    pixels = np.asarray(image.convert("RGB"), dtype=float)

    sheet = await sheet_for(app, world.admin.token, **{"from": "2024-03", "to": "2024-03"})
    surface = sheet.surface
    assert surface.count == HOT_COUNT + 80
    # The top class's colour, as printed (blended over paper), inside the map box...
    top = hex_rgb(surface.colours[-1]) * hotspot_print.SURFACE_ALPHA + 255 * (1 - hotspot_print.SURFACE_ALPHA)
    bx, by, bw, bh = hotspot_print.MAP_BOX
    left, top_row = page_px(bx, by + bh, image.size)
    right, bottom_row = page_px(bx + bw, by, image.size)
    box = pixels[int(top_row) + 3:int(bottom_row) - 3, int(left) + 3:int(right) - 3]
    hits = np.argwhere(np.abs(box - top).max(axis=2) < 12)
    assert len(hits) > 100, "the hottest class is drawn"
    # ...is centred on the hotspot's position on the sheet, and nowhere far from it.
    v = sheet.view
    hx = bx + (HOT[0] - v[0]) / (v[2] - v[0]) * bw
    hy = by + (HOT[1] - v[1]) / (v[3] - v[1]) * bh
    col, row = page_px(hx, hy, image.size)
    centre = hits.mean(axis=0) + [int(top_row) + 3, int(left) + 3]
    mm_per_px = hotspot_print.PAGE_MM[0] / image.size[0]
    assert np.hypot(centre[0] - row, centre[1] - col) * mm_per_px < 3.0
    spread_mm = np.hypot(*(hits.max(axis=0) - hits.min(axis=0))) * mm_per_px
    assert spread_mm < 0.5 * bw
    # The streets are drawn under it: grey street pixels exist in the map box.
    grey = (np.abs(box - box.mean(axis=2, keepdims=True)).max(axis=2) < 6) & (box.mean(axis=2) < 200)
    assert grey.sum() > 1000

    # The legend's swatches carry every class colour, in the right-hand column.
    side = pixels[:, int(page_px(hotspot_print.SIDE_X, 0, image.size)[0]):]
    for colour in surface.colours:
        printed = hex_rgb(colour) * hotspot_print.SURFACE_ALPHA + 255 * (1 - hotspot_print.SURFACE_ALPHA)
        assert (np.abs(side - printed).max(axis=2) < 12).sum() > 500, colour


async def test_png_print_is_audited_with_its_period(client, world, db):
    r = await client.get("/maps/hotspots/print.png", headers=world.viewer_headers,
                         params={"from": "2024-02", "to": "2024-03", "compare": "last_year",
                                 "title": "Tasking, 4 April: $5 \\frac{a}{b} <b>"})
    assert r.status_code == 200
    rows = (await db.execute(text(
        "SELECT principal_name, target, detail FROM audit_event WHERE action = 'hotspots.print'"))).all()
    assert len(rows) == 1
    assert rows[0].principal_name == "Vera Viewer" and rows[0].target == "maps/hotspots/print.png"
    detail = rows[0].detail
    # A title is text: '$' and backslashes are never taken for mathtext (which would fail or render).
    assert detail["format"] == "png" and detail["title"] == "Tasking, 4 April: $5 \\frac{a}{b} <b>"
    assert detail["period"]["from"] == "2024-02-01" and detail["period"]["to"] == "2024-03-31"
    assert detail["compare"] == "last_year"


# -- the PDF ----------------------------------------------------------------------------------------

async def test_pdf_is_one_a4_landscape_page(client, world, db):
    r = await client.get("/maps/hotspots/print.pdf", headers=world.admin.headers, params={"classes": "quantile"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    # With no period given, the latest month with data.
    assert r.headers["content-disposition"].endswith('2024-03-2024-03.pdf"')
    pdf = r.content
    assert pdf.startswith(b"%PDF-")
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    assert len(pages) == 1
    boxes = re.findall(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert len(boxes) == 1
    x0, y0, x1, y1 = (float(v) for v in boxes[0])
    assert (x0, y0) == (0, 0) and (round(x1), round(y1)) == (842, 595)
    # Text is text (fonts embedded), not a picture of text.
    assert b"/Font" in pdf
    action = (await db.execute(text(
        "SELECT detail->>'format' FROM audit_event WHERE action = 'hotspots.print'"))).scalar_one()
    assert action == "pdf"


# -- what the sheet says ------------------------------------------------------------------------------

async def test_sheet_states_period_levels_sources_and_the_top_list(app, world):
    viewer = await sheet_for(app, world.viewer_token, **{"from": "2024-03", "to": "2024-03"})
    assert viewer.period == "March 2024"
    assert viewer.title == "Hotspots — print-csp"
    notes = " ".join(viewer.notes)
    assert "Sanitised data" in notes and "Police recorded crime" in notes and "anonymous points" in notes
    assert "Counts below 5 are held back" in notes
    assert any("Open Government Licence" in s for s in viewer.sources)
    assert any("OpenStreetMap contributors" in s for s in viewer.sources)
    assert viewer.generated_by == "Vera Viewer (viewer)"
    assert viewer.crs_label.startswith("EPSG:27700")
    assert viewer.background.streets and viewer.background.buildings
    # The top area is the hotspot's (moved to its anonymous point, within a street block), with its
    # count and its rise on February.
    first = viewer.top[0]
    assert first.rank == 1 and first.count is not None and first.count >= HOT_COUNT
    assert first.change is not None and first.change >= HOT_COUNT - 40 - 10
    assert np.hypot(*(first.ring.mean(axis=0) - HOT)) < 250

    admin = await sheet_for(app, world.admin.token, **{"from": "2024-01", "to": "2024-03"})
    assert admin.period == "January – March 2024"
    notes = " ".join(admin.notes)
    assert "Exact positions" in notes and "Sanitised" not in notes and "held back" not in notes
    xs, ys = admin.top[0].ring[:, 0], admin.top[0].ring[:, 1]
    assert xs.min() <= HOT[0] <= xs.max() and ys.min() <= HOT[1] <= ys.max()


async def test_a_month_with_no_incidents_still_prints_and_says_so(client, world):
    r = await client.get("/maps/hotspots/print.png", headers=world.admin.headers,
                         params={"from": "2023-06", "to": "2023-06"})
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (3508, 2480)


@pytest.mark.parametrize("params, status", [
    ({"from": "2024-13"}, 400),
    ({"from": "2024-03", "to": "2024-01"}, 400),
    ({"title": "x" * 121}, 422),
    ({"title": "line one\nline two"}, 400),
    ({"classes": "rainbow"}, 422),
    ({"compare": "yesterday"}, 422),
    ({"cell_m": "-5"}, 422),
])
async def test_bad_input_is_a_clear_problem(client, make_caller, params, status):
    caller = await make_caller("print-bad", "viewer")
    r = await client.get("/maps/hotspots/print.pdf", headers=caller.headers, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]


async def test_prints_need_a_signed_in_person(client):
    r = await client.get("/maps/hotspots/print.png")
    assert r.status_code == 401
