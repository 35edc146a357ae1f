"""The safe walking routes page /maps/routes and its printable A4 route sheet /maps/routes/print.

The page (static/routes/*.js) asks GET /api/routes itself and draws the walks side by side with
their figures; the start and end are set by clicking the map, by "my position", or by typing a
street name matched against the partnership's own streets (GET /api/routes/streets: nothing leaves
the server). Its address carries the request, so a link reopens the same routes.

The sheet is server-rendered like the footage-request pack: every value escaped, no script, one
<style> admitted by its hash, an SVG map drawn in the partnership's metric CRS (the walks over the
streets around them), the figures, the explanation and the directions by street name.
"""
from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis import routing
from app.auth import Principal
from app.pages.base import full_map_page, page_head
from app.pages.footage_request import policy
from app.pages.overview import partnership_name
from app.roles import at_least

e = html.escape
COLOURS = ("#6b7280", "#15803d", "#2563eb", "#9333ea")  # shortest, safest, alternatives
SCRIPTS = ("safermap-common.js", "routes/format.js", "routes/search.js", "routes/results.js",
           "routes/published.js", "safermap-routes.js")

BOUNDS = text("""
    SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
    FROM (SELECT ST_Extent(geom) AS b FROM route_vertex WHERE partnership_id = :p) AS s
""")


async def page_config(session: AsyncSession, principal: Principal) -> dict[str, Any]:
    row = (await session.execute(BOUNDS, {"p": principal.partnership_id})).one()
    bounds = [[row[1], row[0]], [row[3], row[2]]] if row[0] is not None else None
    return {
        "page": "routes",
        "partnership": {"name": await partnership_name(session, principal), "slug": principal.partnership_slug},
        "user": {"name": principal.name, "role": principal.role},
        "bounds": bounds,
        "can": {"publish": at_least(principal.role, "analyst")},
        "defaults": {"profile": "safest", "max_detour": routing.DEFAULT_DETOUR,
                     "min_detour": routing.MIN_DETOUR, "max_detour_limit": routing.MAX_DETOUR},
        "colours": list(COLOURS),
        "links": {"routes": "/api/routes", "streets": "/api/routes/streets", "published": "/api/routes/published",
                  "sheet": "/maps/routes/print", "page": "/maps/routes", "overview": "/maps/overview",
                  "streetTiles": "/tiles/streets/{z}/{x}/{y}.mvt", "buildingTiles": "/tiles/buildings/{z}/{x}/{y}.mvt"},
    }


def routes_html(static_dir: Path, config: dict[str, Any]) -> tuple[str, str]:
    """The page and its Content-Security-Policy."""
    return full_map_page(static_dir, config, scripts=list(SCRIPTS), styles=["safermap.css", "safermap-routes.css"],
                         start="SaferMapRoutes.start", title="SaferMap: safe walking routes")


# -- the A4 sheet --------------------------------------------------------------------------------------

SHEET_CSS = """
@page { size: A4 portrait; margin: 12mm; }
body.sm-sheet { margin: 0 auto; padding: 16px; max-width: 1000px; color: #111827;
  font: 14px/1.4 system-ui, "DejaVu Sans", sans-serif; }
.sm-sheet h1 { font-size: 20px; margin: 0 0 4px; }
.sm-sheet h2 { font-size: 15px; margin: 14px 0 6px; }
.sm-sheet dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0 10px; }
.sm-sheet dt { color: #4b5563; }
.sm-sheet dd { margin: 0; }
.sm-sheet table { border-collapse: collapse; width: 100%; }
.sm-sheet th, .sm-sheet td { border: 1px solid #9ca3af; padding: 3px 6px; text-align: left; vertical-align: top; }
.sm-sheet th { background: #f3f4f6; }
.sm-sheet td.sm-num { text-align: right; white-space: nowrap; }
.sm-sheet .sm-swatch { display: inline-block; width: 18px; height: 4px; vertical-align: middle; margin-right: 6px; }
.sm-sheet svg.sm-map { display: block; width: 100%; height: auto; max-height: 120mm; border: 1px solid #d1d5db; }
.sm-sheet svg.sm-map text { font-family: system-ui, "DejaVu Sans", sans-serif; }
.sm-sheet ol { margin: 4px 0 0 20px; padding: 0; }
.sm-sheet .sm-notes { font-size: 12px; color: #374151; }
.sm-sheet .sm-c0 { background: #6b7280; } .sm-sheet .sm-c1 { background: #15803d; }
.sm-sheet .sm-c2 { background: #2563eb; } .sm-sheet .sm-c3 { background: #9333ea; }
@media print {
  body.sm-sheet { padding: 0; max-width: none; font-size: 9.5pt; }
  .sm-screen-only { display: none; }
  .sm-sheet a { color: inherit; text-decoration: none; }
  .sm-sheet .sm-swatch { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""
MAP_W, MAP_H, MAP_PAD = 900.0, 560.0, 24.0
NEARBY = text("""
    SELECT ST_AsBinary(ST_Transform(geom, CAST(:srid AS integer))) AS g, highway
    FROM route_edge
    WHERE partnership_id = :p AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
    LIMIT 20000
""")


def _round_length(metres: float) -> float:
    power = 10 ** math.floor(math.log10(max(metres, 1.0)))
    return max(m * power for m in (1, 2, 5) if m * power <= max(metres, 1.0))


async def _map(session: AsyncSession, principal: Principal, result: dict[str, Any]) -> str:
    """The walks over the streets around them, in the metric CRS (north up), with a scale bar."""
    import shapely  # late: only the sheet draws
    to_m = Transformer.from_crs(4326, principal.srid, always_xy=True)
    walks = [[to_m.transform(x, y) for x, y in f["geometry"]["coordinates"]] for f in result["features"]]
    pts = [p for w in walks for p in w]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 200.0)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    half_w = max(span * 0.55, (max(xs) - min(xs)) / 2 + 60)
    half_h = max(half_w * MAP_H / MAP_W, (max(ys) - min(ys)) / 2 + 60)
    half_w = max(half_w, half_h * MAP_W / MAP_H)
    scale = (MAP_W - 2 * MAP_PAD) / (2 * half_w)
    x0, y1 = cx - half_w, cy + half_h
    to_ll = Transformer.from_crs(principal.srid, 4326, always_xy=True)
    west, south, east, north = to_ll.transform_bounds(cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    rows = (await session.execute(NEARBY, {"p": principal.partnership_id, "srid": principal.srid,
                                           "x0": west, "y0": south, "x1": east, "y1": north})).all()

    def px(x: float, y: float) -> str:
        return f"{MAP_PAD + (x - x0) * scale:.1f},{MAP_PAD + (y1 - y) * scale:.1f}"

    parts = []
    for r in rows:
        coords = shapely.get_coordinates(shapely.from_wkb(bytes(r.g)))
        minor = r.highway in ("footway", "path", "steps", "cycleway", "track", "service")
        parts.append(f'<polyline points="{" ".join(px(x, y) for x, y in coords)}" fill="none" '
                     f'stroke="#d1d5db" stroke-width="{1 if minor else 2}"/>')
    for i, walk in reversed(list(enumerate(walks))):
        width = 6 if i == 1 else 4
        parts.append(f'<polyline points="{" ".join(px(x, y) for x, y in walk)}" fill="none" '
                     f'stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="{width}" stroke-linejoin="round" '
                     f'stroke-linecap="round" opacity="0.9"/>')
    if walks:
        (ax, ay), (bx, by) = walks[0][0], walks[0][-1]
        for (x, y), letter in (((ax, ay), "A"), ((bx, by), "B")):
            sx, sy = px(x, y).split(",")
            parts.append(f'<circle cx="{sx}" cy="{sy}" r="10" fill="#111827"/>'
                         f'<text x="{sx}" y="{float(sy) + 4:.1f}" font-size="12" font-weight="700" fill="#fff" '
                         f'text-anchor="middle">{letter}</text>')
    bar_m = _round_length(half_w / 2)
    parts.append(f'<path d="M {MAP_PAD} {MAP_H - 10} h {bar_m * scale:.1f}" stroke="#111827" stroke-width="2"/>'
                 f'<text x="{MAP_PAD + bar_m * scale + 6:.1f}" y="{MAP_H - 6}" font-size="12">{bar_m:,.0f} m</text>'
                 f'<text x="{MAP_W - 10}" y="18" font-size="12" text-anchor="end">N ↑ (grid north)</text>')
    return (f'<svg class="sm-map" viewBox="0 0 {MAP_W:.0f} {MAP_H:.0f}" role="img" '
            f'aria-label="Map of the walking routes">{"".join(parts)}</svg>')


def _minutes(seconds: int) -> str:
    return f"{max(1, round(seconds / 60))} min"


def _pct(share: float) -> str:
    return f"{round(share * 100)} %"


async def sheet(session: AsyncSession, principal: Principal, result: dict[str, Any], query: str,
                static_dir: Path, now: datetime | None = None) -> tuple[str, str]:
    """The printable A4 sheet for the answer of GET /api/routes, and its CSP."""
    now = now or datetime.now(UTC)
    head = page_head(static_dir, "Safe walking route").replace("</head>", f"<style>{SHEET_CSS}</style>\n</head>")
    snapped = result["snapped"]
    rows = []
    for i, f in enumerate(result["features"]):
        p = f["properties"]
        near = "held back (few)" if p["incidents_suppressed"] else str(p["incidents_near"])
        rows.append(f'<tr><td><span class="sm-swatch sm-c{i % 4}"></span>{e(p["name"])}</td>'
                    f'<td class="sm-num">{p["length_m"]:,.0f} m</td><td class="sm-num">{_minutes(p["duration_s"])}</td>'
                    f'<td class="sm-num">{_pct(p["camera_share"])}</td><td class="sm-num">{_pct(p["lit_share"])}</td>'
                    f'<td class="sm-num">{e(near)}</td><td class="sm-num">{p["detour"]:.2f}×</td></tr>')
    best = result["features"][1] if len(result["features"]) > 1 else result["features"][0]
    steps = "".join(f"<li>{e(s['text'])}</li>" for s in best["properties"]["directions"])
    explanations = "".join(f"<li><strong>{e(f['properties']['name'])}:</strong> {e(f['properties']['explanation'])}</li>"
                           for f in result["features"])
    window = result.get("incident_window")
    window_text = f"{window['from']} to {window['to']}" if window else "none you may see"
    name = await partnership_name(session, principal)
    link = f"/maps/routes?{query}"
    body = f"""{head}
<body class="sm-sheet">
<header>
<h1>Walking route: {e(snapped['from']['street'])} to {e(snapped['to']['street'])}</h1>
<dl>
<dt>From</dt><dd>{e(snapped['from']['street'])} ({snapped['from']['lat']:.5f}, {snapped['from']['lon']:.5f})</dd>
<dt>To</dt><dd>{e(snapped['to']['street'])} ({snapped['to']['lat']:.5f}, {snapped['to']['lon']:.5f})</dd>
<dt>When</dt><dd>{e(result['time_of_day'])} ({e(result['query']['time'])}); detour limit {result['query']['max_detour']:.2f}×</dd>
<dt>Reopen</dt><dd><a href="{e(link)}">{e(link)}</a></dd>
</dl>
<p class="sm-screen-only sm-notes">Print this page with your browser (Ctrl+P); it fits one A4 sheet.</p>
</header>
<main>
{await _map(session, principal, result)}
<h2>The routes</h2>
<table><thead><tr><th>Route</th><th>Length</th><th>Walk</th><th>Under cameras</th><th>Lit</th>
<th>Incidents within 25 m</th><th>Detour</th></tr></thead><tbody>{''.join(rows)}</tbody></table>
<ul class="sm-notes">{explanations}</ul>
<h2>Directions ({e(best['properties']['name'].lower())} route)</h2>
<ol>{steps}</ol>
<p class="sm-notes">Cameras: the share of the route inside working cameras' view (line of sight). Lit: OpenStreetMap
lighting tags and the council's lamp register. Incidents: {e(window_text)}, as your sharing level lets you see
them; small counts are held back. Streets © OpenStreetMap contributors (ODbL). {e(name)}; prepared
{e(now.strftime('%-d %b %Y %H:%M UTC'))} by {e(principal.name)}.</p>
</main>
</body>
</html>"""
    return body, policy(SHEET_CSS)
