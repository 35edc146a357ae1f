"""The hotspot map for the meeting pack: one A4 landscape sheet, drawn with matplotlib (not a
screenshot), as a 300 dpi PNG or a vector PDF.

The sheet is laid out in millimetres on the page: title and period across the top; the map on the
left, in the partnership's metric CRS, with the app's streets and buildings under the density
surface (the same classes and colours as the tiles), a scale bar and a grid-north arrow; on the
right the legend, the top hotspots as a table when there is room for it, the sanitisation note
and the data sources; who made it and when along the foot.

Data strings (titles, area labels, data-set names) are drawn with `parse_math=False`, so a '$' in
them is a dollar sign and never mathtext.
"""
from __future__ import annotations

import io
import math
import textwrap
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import shapely
from matplotlib import rc_context
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Polygon as PolygonPatch
from matplotlib.patches import Rectangle
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from pyproj import CRS, Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.kde import Surface

Format = Literal["png", "pdf"]

# A4 landscape. The PNG is exactly 3508 x 2480 px at 300 dpi; the PDF page is A4 in points.
PAGE_MM = (297.0, 210.0)
PNG_DPI = 300
PNG_PX = (3508, 2480)
MM_PER_INCH = 25.4
FONT = "DejaVu Sans"  # ships with matplotlib: the same sheet on every machine
INK, MUTED, RULE = "#1f2937", "#4b5563", "#9ca3af"
SURFACE_ALPHA = 0.78  # the streets stay readable through the surface

# The layout, in mm from the page's lower-left corner.
MARGIN = 10.0
MAP_BOX = (MARGIN, 16.0, 190.0, 170.0)      # x, y, width, height
SIDE_X, SIDE_W = 207.0, 80.0
SIDE_TOP = 186.0
FOOT_Y = 7.0

# Background from the database, simplified to about a printed pixel and clipped to the sheet's view.
# Scoped to the partnership; the envelope is transformed to the column's CRS so the GiST index is used.
STREETS_SQL = text("""
    SELECT ST_AsBinary(ST_Simplify(ST_Transform(s.geom, CAST(:srid AS integer)), CAST(:tol AS float8))) AS wkb
    FROM street s
    WHERE s.partnership_id = :p
      AND s.geom && ST_Transform(ST_MakeEnvelope(CAST(:x0 AS float8), CAST(:y0 AS float8), CAST(:x1 AS float8),
                                                 CAST(:y1 AS float8), CAST(:srid AS integer)), 4326)
    LIMIT :cap
""")
BUILDINGS_SQL = text("""
    SELECT ST_AsBinary(ST_ExteriorRing(ST_Simplify((ST_Dump(ST_Transform(b.geom, CAST(:srid AS integer)))).geom,
                                                   CAST(:tol AS float8)))) AS wkb
    FROM building b
    WHERE b.partnership_id = :p
      AND b.geom && ST_Transform(ST_MakeEnvelope(CAST(:x0 AS float8), CAST(:y0 AS float8), CAST(:x1 AS float8),
                                                 CAST(:y1 AS float8), CAST(:srid AS integer)), 4326)
      AND ST_Area(ST_Transform(b.geom, CAST(:srid AS integer))) >= CAST(:min_area AS float8)
    LIMIT :cap
""")
BACKGROUND_CAP = 400_000  # features per kind: a county's streets at print scale, with room to spare

METHOD_WORDS = {
    "stddev": "classes by standard deviations above the mean density",
    "quantile": "classes by quantiles (equal shares of the mapped cells)",
}

# One sheet renders at a time per process: matplotlib's font cache and text layout are shared
# state, and a 26-megapixel canvas is enough memory to hold once.
_render_lock = threading.Lock()


@dataclass(frozen=True)
class TopRow:
    rank: int
    label: str
    count: int | None           # None: held back (below the suppression threshold)
    change: int | None
    cameras: str                # "62%" of incidents inside working coverage, or "3 cameras", or "—"
    categories: str             # the commonest categories, for the second line
    ring: np.ndarray | None = None  # the area's outline in the metric CRS, drawn with its rank


@dataclass(frozen=True)
class Background:
    streets: list[np.ndarray] = field(default_factory=list)    # (n, 2) metric lines
    buildings: list[np.ndarray] = field(default_factory=list)  # (n, 2) metric outer rings


@dataclass(frozen=True)
class Sheet:
    """Everything on the page, already decided: rendering is pure."""
    title: str
    period: str
    filters: str                        # "All categories · all data sets"
    surface: Surface
    view: tuple[float, float, float, float]  # metric x0, y0, x1, y1 shown
    background: Background
    top: list[TopRow]
    notes: list[str]                    # the sanitisation note, as sentences
    sources: list[str]
    generated_by: str
    generated_at: datetime
    crs_label: str                      # "EPSG:27700 British National Grid"
    compare: str = "previous"           # what the top list's change is against: previous | last_year


# -- geometry helpers ------------------------------------------------------------------------------

def surface_extent(surface: Surface) -> tuple[float, float, float, float]:
    ny, nx = surface.density.shape
    return (surface.x0, surface.y0, surface.x0 + nx * surface.cell_m, surface.y0 + ny * surface.cell_m)


def view_of(surface: Surface, margin: float = 0.03) -> tuple[float, float, float, float]:
    """What the sheet shows: the cells with any density (the data's area), with a small margin;
    the whole grid when nothing is there."""
    ys, xs = np.nonzero(surface.density > 0)
    if len(xs) == 0:
        return surface_extent(surface)
    c = surface.cell_m
    x0, x1 = surface.x0 + xs.min() * c, surface.x0 + (xs.max() + 1) * c
    y0, y1 = surface.y0 + ys.min() * c, surface.y0 + (ys.max() + 1) * c
    pad = max(x1 - x0, y1 - y0) * margin
    return (x0 - pad, y0 - pad, x1 + pad, y1 + pad)


Box = tuple[float, float, float, float]


def fitted_view(view: Box, box_w: float, box_h: float) -> Box:
    """The view widened on one axis to the map box's shape, so one metre is the same on paper
    across and up (and the scale bar holds everywhere)."""
    x0, y0, x1, y1 = view
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    if w / h < box_w / box_h:
        w2 = h * box_w / box_h
        cx = (x0 + x1) / 2
        return (cx - w2 / 2, y0, cx + w2 / 2, y1)
    h2 = w * box_h / box_w
    cy = (y0 + y1) / 2
    return (x0, cy - h2 / 2, x1, cy + h2 / 2)


def metres_per_print_pixel(view: tuple[float, float, float, float]) -> float:
    return (view[2] - view[0]) / (MAP_BOX[2] / MM_PER_INCH * PNG_DPI)


def scale_length(width_m: float) -> tuple[float, str]:
    """A round scale-bar length (1, 2 or 5 x 10^k m) of about a fifth of the map's width."""
    target = width_m / 5
    exp = 10 ** math.floor(math.log10(target))
    length = max(m * exp for m in (1, 2, 5) if m * exp <= target)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    return length, label


def class_index(density: np.ndarray, breaks: list[float]) -> np.ma.MaskedArray:
    """The class of each cell (breaks are each class's lower bound); cells below the first class
    or with no density are masked, and print as paper, like the tiles' transparent cells."""
    idx = np.searchsorted(np.asarray(breaks, dtype=float), density, side="right") - 1
    return np.ma.masked_where((idx < 0) | ~(density > 0), idx)


def rings_from_wkb(wkbs: list[bytes]) -> list[np.ndarray]:
    """Line strings from WKB, split into one coordinate array each (vectorised through shapely)."""
    geoms = shapely.from_wkb(np.array([w for w in wkbs if w is not None], dtype=object))
    geoms = geoms[~shapely.is_empty(geoms)]
    if len(geoms) == 0:
        return []
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    cuts = np.flatnonzero(np.diff(index)) + 1
    return [part for part in np.split(coords, cuts) if len(part) >= 2]


def crs_label(srid: int) -> str:
    try:
        return f"EPSG:{srid} {CRS.from_epsg(srid).name}"
    except Exception:  # an unusual SRID still prints; only its name is missing
        return f"EPSG:{srid}"


def ring_of(geometry: dict | None, to_metric: Transformer) -> np.ndarray | None:
    """A GeoJSON Polygon's outer ring in the metric CRS."""
    if not geometry or geometry.get("type") != "Polygon" or not geometry.get("coordinates"):
        return None
    lon, lat = np.asarray(geometry["coordinates"][0], dtype=float).T
    x, y = to_metric.transform(lon, lat)
    return np.column_stack([x, y])


def top_rows(body: dict[str, Any], srid: int) -> list[TopRow]:
    """The top-hotspots answer (app.analysis.hotspot_top.top_hotspots) as table rows, with each
    area's outline in the metric CRS for the map."""
    to_metric = Transformer.from_crs(4326, srid, always_xy=True)
    rows = []
    for area in body.get("areas") or []:
        share, cameras = area.get("share_in_coverage"), area.get("cameras_inside")
        if share is not None:
            view = f"{share * 100:.0f}%"
        elif cameras is not None:
            view = f"{cameras} cam."
        else:
            view = "—"
        categories = ", ".join(c["category"] + ("" if c.get("count") is None else f" {c['count']:,}")
                               for c in area.get("top_categories") or [])
        rows.append(TopRow(rank=int(area["rank"]), label=str(area.get("label") or area.get("id") or ""),
                           count=area.get("count"), change=area.get("change"), cameras=view,
                           categories=categories, ring=ring_of(area.get("geometry"), to_metric)))
    return rows


# -- from the database ---------------------------------------------------------------------------

async def load_background(session: AsyncSession, partnership_id: int, srid: int,
                          view: tuple[float, float, float, float]) -> Background:
    """The partnership's streets and buildings inside the view, in its metric CRS. Buildings too
    small to see at print scale are left out."""
    tol = metres_per_print_pixel(view)
    params = {"p": partnership_id, "srid": int(srid), "tol": float(tol), "cap": BACKGROUND_CAP,
              **{k: float(v) for k, v in zip(("x0", "y0", "x1", "y1"), view)}}
    streets = (await session.execute(STREETS_SQL, params)).scalars().all()
    buildings = (await session.execute(BUILDINGS_SQL, {**params, "min_area": float((2 * tol) ** 2)})).scalars().all()
    return Background(streets=rings_from_wkb(list(streets)), buildings=rings_from_wkb(list(buildings)))


# -- drawing ---------------------------------------------------------------------------------------

class _Page:
    """Places things on the figure in millimetres."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig

    def box(self, x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
        return (x / PAGE_MM[0], y / PAGE_MM[1], w / PAGE_MM[0], h / PAGE_MM[1])

    def text(self, x: float, y: float, s: str, size: float = 8, **kw: Any) -> None:
        kw.setdefault("color", INK)
        kw.setdefault("va", "top")
        self.fig.text(x / PAGE_MM[0], y / PAGE_MM[1], s, fontsize=size, family=FONT,
                      parse_math=False, **kw)

    def rect(self, x: float, y: float, w: float, h: float, **kw: Any) -> None:
        self.fig.patches.append(Rectangle((x / PAGE_MM[0], y / PAGE_MM[1]), w / PAGE_MM[0], h / PAGE_MM[1],
                                          transform=self.fig.transFigure, figure=self.fig, **kw))

    def rule(self, y: float, x0: float, x1: float) -> None:
        self.rect(x0, y, x1 - x0, 0.25, facecolor=RULE, edgecolor="none")


def line_mm(size_pt: float) -> float:
    return size_pt * 0.3528 * 1.35


def wrap(s: str, width_mm: float, size_pt: float) -> list[str]:
    """Lines that fit `width_mm` (DejaVu Sans averages a little over half an em a character)."""
    chars = max(int(width_mm / (size_pt * 0.3528 * 0.53)), 10)
    return textwrap.wrap(s, chars) or [""]


def fitting_size(s: str, width_mm: float, largest: float, smallest: float) -> float:
    """The largest font size up to `largest` at which `s` fits on one line (a long title shrinks)."""
    size = width_mm / (max(len(s), 1) * 0.3528 * 0.62)
    return max(min(largest, size), smallest)


def fit(s: str, width_mm: float, size_pt: float) -> str:
    chars = max(int(width_mm / (size_pt * 0.3528 * 0.58)), 3)
    return s if len(s) <= chars else s[:chars - 1] + "…"


def _draw_map(page: _Page, sheet: Sheet, listed: list[TopRow]) -> None:
    s = sheet.surface
    ax = page.fig.add_axes(page.box(*MAP_BOX))
    view = fitted_view(sheet.view, MAP_BOX[2], MAP_BOX[3])
    ax.set_xlim(view[0], view[2])
    ax.set_ylim(view[1], view[3])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#ffffff")
    for spine in ax.spines.values():
        spine.set_edgecolor(MUTED)
        spine.set_linewidth(0.6)

    if sheet.background.buildings:
        # Very many shapes go into the PDF as one image: a county's buildings as vectors would be huge.
        ax.add_collection(PolyCollection(sheet.background.buildings, facecolors="#dcdcd8", edgecolors="none",
                                         zorder=1, rasterized=len(sheet.background.buildings) > 50_000))
    if sheet.background.streets:
        ax.add_collection(LineCollection(sheet.background.streets, colors="#8d8d8d", linewidths=0.35,
                                         zorder=2, rasterized=len(sheet.background.streets) > 50_000))
    classes = class_index(s.density, s.breaks)
    if classes.count():
        x0, y0, x1, y1 = surface_extent(s)
        ax.imshow(classes, origin="lower", extent=(x0, x1, y0, y1), cmap=ListedColormap(list(s.colours)),
                  vmin=-0.5, vmax=len(s.colours) - 0.5, interpolation="nearest", alpha=SURFACE_ALPHA,
                  zorder=3)
    ax.set_xlim(view[0], view[2])  # imshow resets the limits to the grid's
    ax.set_ylim(view[1], view[3])

    for row in listed:  # the areas in the table, outlined and numbered so the table can be found on the map
        if row.ring is None:
            continue
        ax.add_patch(PolygonPatch(row.ring, closed=True, fill=False, edgecolor="#111827", linewidth=0.9, zorder=4))
        cx, cy = row.ring[:, 0].mean(), row.ring[:, 1].max()
        ax.text(cx, cy, str(row.rank), fontsize=7, family=FONT, ha="center", va="bottom", color="#111827",
                fontweight="bold", zorder=5, parse_math=False,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})

    length, label = scale_length(view[2] - view[0])
    bar = AnchoredSizeBar(ax.transData, length, label, loc="lower left", pad=0.6, borderpad=0.8, sep=3,
                          frameon=True, size_vertical=(view[3] - view[1]) / 250, color=INK,
                          fontproperties=FontProperties(family=FONT, size=8))
    bar.patch.set_alpha(0.85)
    bar.patch.set_edgecolor("none")
    ax.add_artist(bar)

    # Grid north: up on the sheet is north of the metric grid, which is true north only on the
    # grid's central meridian; the label says so.
    ax.annotate("", xy=(0.955, 0.965), xytext=(0.955, 0.885), xycoords="axes fraction",
                arrowprops={"arrowstyle": "-|>,head_width=0.5,head_length=1.0", "color": INK, "lw": 1.6},
                zorder=6)
    ax.text(0.955, 0.87, "N", transform=ax.transAxes, ha="center", va="top", fontsize=12, fontweight="bold",
            family=FONT, color=INK, zorder=6)
    ax.text(0.955, 0.835, "grid north", transform=ax.transAxes, ha="center", va="top", fontsize=6.5,
            family=FONT, color=MUTED, zorder=6)


def _draw_legend(page: _Page, sheet: Sheet, y: float) -> float:
    s = sheet.surface
    x, w = SIDE_X, SIDE_W
    page.text(x, y, "Hotspot density", 12, fontweight="bold")
    y -= 6.0
    for line in wrap(f"Incidents per km², quartic kernel density; {METHOD_WORDS.get(s.method, s.method)}.", w, 7.5):
        page.text(x, y, line, 7.5, color=MUTED)
        y -= line_mm(7.5)
    y -= 1.5
    # Highest class on top, as on the page.
    for colour, label in reversed(list(zip(s.colours, s.labels))):
        page.rect(x, y - 4.2, 9.0, 4.2, facecolor=colour, alpha=SURFACE_ALPHA, edgecolor="#6b7280", linewidth=0.4)
        page.text(x + 11.0, y - 0.4, label, 8.5)
        y -= 5.4
    y -= 1.0
    mapped = f"{s.count:,} incidents mapped" + (f"; {s.unplaced:,} counted but not mapped" if s.unplaced else "")
    for line in wrap(f"Cell {s.cell_m:,.0f} m, bandwidth {s.bandwidth_m:,.0f} m. {mapped}.", w, 7.5):
        page.text(x, y, line, 7.5, color=MUTED)
        y -= line_mm(7.5)
    return y


TABLE_COLS = ((0.0, "#", "left"), (6.0, "Area", "left"), (48.0, "Count", "right"),
              (61.0, "Change", "right"), (SIDE_W, "In view", "right"))
ROW_MM = line_mm(7.5) + line_mm(6.5) + 0.8


COMPARE_WORDS = {"previous": "the period of the same length just before",
                 "last_year": "the same period a year earlier"}
TABLE_NOTE = "Change: against {compare}. In view: share of the area's incidents inside working camera coverage."


def table_rows(rows: list[TopRow], top: float, bottom: float) -> list[TopRow]:
    """As many of the top hotspots as fit between `top` and `bottom`; none when fewer than three do."""
    room = int((top - bottom - 5.0 - line_mm(6.5) - 0.8 - 2 * line_mm(5.5) - 1.0) // ROW_MM)
    return rows[:room] if room >= 3 else []


def _draw_table(page: _Page, shown: list[TopRow], top: float, compare: str) -> float:
    x = SIDE_X
    if not shown:
        return top
    page.text(x, top, f"Top {len(shown)} hotspots", 10, fontweight="bold")
    y = top - 5.0
    for dx, head, align in TABLE_COLS:
        page.text(x + dx, y, head, 6.5, color=MUTED, ha=align)
    y -= line_mm(6.5)
    page.rule(y, x, x + SIDE_W)
    y -= 0.8
    for row in shown:
        count = f"<{sharing.suppress_below()}" if row.count is None else f"{row.count:,}"
        change = "—" if row.change is None else f"{row.change:+,}"
        cells = (str(row.rank), fit(row.label, 33.0, 7.5), count, change, row.cameras)
        for (dx, _, align), value in zip(TABLE_COLS, cells):
            page.text(x + dx, y, value, 7.5, ha=align)
        page.text(x + 6.0, y - line_mm(7.5), fit(row.categories, SIDE_W - 6.0, 6.5), 6.5, color=MUTED)
        y -= ROW_MM
    y -= 0.5
    for line in wrap(TABLE_NOTE.format(compare=COMPARE_WORDS.get(compare, compare)), SIDE_W, 5.5):
        page.text(x, y, line, 5.5, color=MUTED)
        y -= line_mm(5.5)
    return y


def _block_height(paragraphs: list[str], size: float, heading: bool) -> float:
    lines = sum(len(wrap(p, SIDE_W, size)) for p in paragraphs)
    return (5.0 if heading else 0.0) + lines * line_mm(size) + len(paragraphs) * 0.8


def _draw_block(page: _Page, heading: str, paragraphs: list[str], y: float, size: float = 6.8) -> float:
    page.text(SIDE_X, y, heading, 9, fontweight="bold")
    y -= 5.0
    for p in paragraphs:
        for line in wrap(p, SIDE_W, size):
            page.text(SIDE_X, y, line, size, color=INK)
            y -= line_mm(size)
        y -= 0.8
    return y


def draw(sheet: Sheet, fig: Figure) -> None:
    page = _Page(fig)
    width = PAGE_MM[0] - 2 * MARGIN
    page.text(MARGIN, PAGE_MM[1] - 8.0, sheet.title, fitting_size(sheet.title, width, 20, 11), fontweight="bold")
    period = f"Period: {sheet.period}"
    page.text(MARGIN, PAGE_MM[1] - 16.5, period, 14, fontweight="bold", color=INK)
    filters_x = MARGIN + max(110.0, len(period) * 14 * 0.3528 * 0.62 + 8.0)
    page.text(filters_x, PAGE_MM[1] - 17.3, fit(sheet.filters, PAGE_MM[0] - MARGIN - filters_x, 9), 9, color=MUTED)

    # The right column: legend from the top, notes and sources from the bottom, the table between.
    after_legend = _draw_legend(page, sheet, SIDE_TOP)
    sources_h = _block_height(sheet.sources, 6.3, True)
    notes_h = _block_height(sheet.notes, 6.8, True)
    notes_top = MAP_BOX[1] + sources_h + notes_h + 3.0
    listed = table_rows(sheet.top, after_legend - 4.0, notes_top + 2.0)
    _draw_table(page, listed, after_legend - 4.0, sheet.compare)
    _draw_map(page, sheet, listed)
    y = _draw_block(page, "About this map", sheet.notes, notes_top)
    _draw_block(page, "Data sources", sheet.sources, y - 1.5, 6.3)

    page.rule(FOOT_Y + 4.0, MARGIN, PAGE_MM[0] - MARGIN)
    page.text(MARGIN, FOOT_Y + 2.5, f"Generated {sheet.generated_at:%d %B %Y, %H:%M %Z} by {sheet.generated_by} with "
              f"SaferMap. Map grid: {sheet.crs_label}; north arrow shows grid north.", 6.5, color=MUTED)


def render(sheet: Sheet, fmt: Format) -> bytes:
    """The sheet as PNG (3508 x 2480 px, 300 dpi) or PDF (one A4 landscape page)."""
    if fmt == "png":
        fig = Figure(figsize=(PNG_PX[0] / PNG_DPI, PNG_PX[1] / PNG_DPI), dpi=PNG_DPI, facecolor="white")
    else:
        # A4 in points; the dpi only sets the resolution of the embedded surface image.
        fig = Figure(figsize=(PAGE_MM[0] / MM_PER_INCH, PAGE_MM[1] / MM_PER_INCH), dpi=PNG_DPI, facecolor="white")
    out = io.BytesIO()
    # TrueType fonts in the PDF (not Type 3): its text can be selected and searched in any viewer.
    with _render_lock, rc_context({"pdf.fonttype": 42}):
        draw(sheet, fig)
        metadata = ({"Title": sheet.title, "Creator": "SaferMap"} if fmt == "pdf"
                    else {"Title": sheet.title, "Software": "SaferMap"})
        fig.savefig(out, format=fmt, dpi=PNG_DPI, facecolor="white", metadata=metadata)
    return out.getvalue()
