"""Printable footage-request lists: the cameras that could have seen a place (or a walking path), whose
they are, how to reach them and by when to ask before the footage is overwritten.

Server-rendered, every value escaped, no script; A4 print styles in one <style> element admitted by
its hash. `cameras_table()` renders the JSON of /api/coverage/at or /api/coverage/path, so any page
can reuse it.
"""
from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyproj import Transformer

from app.analysis.footage import DEFAULT_RETENTION_DAYS, LOCAL_TZ
from app.pages.base import page_head

e = html.escape
DUE_SOON = timedelta(days=3)  # a deadline this close is highlighted as well as an expired one

PRINT_CSS = """
@page { size: A4 portrait; margin: 14mm 12mm; }
body.sm-footage { margin: 0 auto; padding: 16px; max-width: 1100px; color: #111827;
  font: 14px/1.4 system-ui, "DejaVu Sans", sans-serif; }
.sm-footage h1 { font-size: 22px; margin: 0 0 4px; }
.sm-footage h2 { font-size: 16px; margin: 18px 0 6px; }
.sm-footage dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0 12px; }
.sm-footage dt { color: #4b5563; }
.sm-footage dd { margin: 0; }
.sm-footage table { border-collapse: collapse; width: 100%; }
.sm-footage th, .sm-footage td { border: 1px solid #9ca3af; padding: 4px 6px; text-align: left; vertical-align: top; }
.sm-footage th { background: #f3f4f6; }
.sm-footage thead { display: table-header-group; }
.sm-footage tr { break-inside: avoid; }
.sm-footage td.sm-num { text-align: right; white-space: nowrap; }
.sm-footage .sm-deadline { white-space: nowrap; }
.sm-footage tr.sm-expired .sm-deadline { background: #fee2e2; color: #7f1d1d; font-weight: 700; }
.sm-footage tr.sm-due-soon .sm-deadline { background: #fef3c7; color: #78350f; font-weight: 700; }
.sm-footage .sm-flag { display: block; font-size: 12px; color: #4b5563; }
.sm-footage .sm-notes { font-size: 13px; color: #374151; }
.sm-footage .sm-empty { padding: 8px; border: 1px dashed #9ca3af; }
.sm-footage svg.sm-sketch { display: block; width: 100%; height: auto; max-height: 110mm; border: 1px solid #d1d5db; }
.sm-footage svg.sm-sketch text { font-family: system-ui, "DejaVu Sans", sans-serif; }
@media print {
  body.sm-footage { padding: 0; max-width: none; font-size: 10pt; }
  .sm-footage th, .sm-footage td { padding: 2px 4px; }
  .sm-screen-only { display: none; }
  .sm-footage a { color: inherit; text-decoration: none; }
  .sm-footage tr.sm-expired .sm-deadline, .sm-footage tr.sm-due-soon .sm-deadline {
    -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def policy(style: str) -> str:
    """This origin only, no script, and the page's one <style> element by its hash."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return ("default-src 'self'; script-src 'none'; "
            f"style-src 'self' 'sha256-{digest}'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def when(value: str | datetime) -> str:
    """'Sun 1 Mar 2026, 22:15 GMT': UK local time as a person reads it."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(LOCAL_TZ).strftime("%a %-d %b %Y, %H:%M %Z")


def window(start: str, end: str) -> str:
    """'Sun 1 Mar 2026, 22:05 to 22:40 GMT', or both in full when the window spans two days."""
    a, b = (datetime.fromisoformat(v).astimezone(LOCAL_TZ) for v in (start, end))
    if a.date() == b.date() and a.tzname() == b.tzname():
        return f"{a.strftime('%a %-d %b %Y, %H:%M')} to {b.strftime('%H:%M %Z')}"
    return f"{when(a)} to {when(b)}"


def deadline_state(request_by: str, now: datetime) -> tuple[str, str]:
    """(row class, words) for a request-by deadline: words too, so a black-and-white print shows it."""
    left = datetime.fromisoformat(request_by) - now
    if left < timedelta(0):
        return "sm-expired", "EXPIRED: footage probably overwritten"
    if left <= DUE_SOON:
        hours = int(left.total_seconds() // 3600)
        return "sm-due-soon", f"DUE SOON: {hours // 24} d {hours % 24} h left"
    return "", ""


def _flags(cam: dict[str, Any]) -> list[str]:
    flags = []
    if not cam["status_known"]:
        flags.append(f"registered after this time: status then not known (first recorded: {cam['status_at_time']})")
    if cam["status_now"] != cam["status_at_time"]:
        flags.append(f"now {cam['status_now']}")
    if cam["coverage_assumed"]:
        flags.append("coverage assumed, not surveyed")
    if not cam["line_of_sight"]:
        flags.append("buildings not applied to coverage")
    return flags


def cameras_table(cameras: Sequence[dict[str, Any]], now: datetime, *, path: bool = False) -> str:
    """The request list as an HTML table; `path` adds where along the path and the time window."""
    if not cameras:
        return ('<p class="sm-empty">No camera of this partnership that was working at the time covered '
                + ("this path." if path else "this place.") + "</p>")
    head = ["#", "Camera", "Owner", "Contact", "Monitored"]
    head += ["Along path", "Time window"] if path else ["Distance"]
    head += ["Band", "Footage kept", "Request by", "Notes"]
    rows = []
    for n, cam in enumerate(cameras, 1):
        state, words = deadline_state(cam["request_by"], now)
        kept = f"{cam['retention_days']} days" + (" (assumed*)" if cam["retention_assumed"] else "")
        where = ([f'<td class="sm-num">{cam["distance_along_m"]:,.0f} m</td>',
                  f"<td>{e(window(cam['window_start'], cam['window_end']))}</td>"] if path
                 else [f'<td class="sm-num">{cam["distance_m"]:,.0f} m</td>'])
        name = f"<strong>{e(cam['reference'])}</strong>" + (f"<br>{e(cam['name'])}" if cam["name"] else "")
        rows.append(
            f'<tr class="{state}"><td class="sm-num">{n}</td><td>{name}<span class="sm-flag">{e(cam["camera_type"])}'
            f"</span></td><td>{e(cam['owner_agency'] or 'unknown owner')}</td><td>{e(cam['contact'] or '—')}</td>"
            f"<td>{'yes' if cam['monitored'] else 'no'}</td>{''.join(where)}<td>{e(cam['band'] or '—')}</td>"
            f'<td>{e(kept)}</td><td class="sm-deadline">{e(when(cam["request_by"]))}'
            + (f'<span class="sm-flag">{e(words)}</span>' if words else "")
            + f'</td><td class="sm-notes">{e("; ".join(_flags(cam)))}</td></tr>')
    headers = "".join(f"<th>{e(h)}</th>" for h in head)
    return f'<table class="sm-request"><thead><tr>{headers}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def not_operational_table(cameras: Sequence[dict[str, Any]]) -> str:
    if not cameras:
        return ""
    rows = "".join(
        f"<tr><td><strong>{e(c['reference'])}</strong> {e(c['name'])}</td><td>{e(c['owner_agency'] or 'unknown owner')}</td>"
        f"<td>{e(c['contact'] or '—')}</td><td>{e(c['status_at_time'])}"
        f"{'' if c['status_known'] else ' (first recorded; status then not known)'}</td></tr>"
        for c in cameras)
    return ("<h2>Covering cameras that were not working then</h2>"
            "<p class=\"sm-notes\">Recorded as faulty at the time: worth a call to confirm, but do not count on them.</p>"
            "<table class=\"sm-not-operational\"><thead><tr><th>Camera</th><th>Owner</th><th>Contact</th>"
            f"<th>Status at the time</th></tr></thead><tbody>{rows}</tbody></table>")


def notes(cameras: Sequence[dict[str, Any]], *, path: bool = False) -> str:
    start = "the start of the camera's time window" if path else "the time of the incident"
    parts = [f"Request by: {start} plus the camera's retention period, after which its footage is "
             "normally overwritten. Ask the owner before then."]
    if any(c["retention_assumed"] for c in cameras):
        parts.append(f"* The register gives no retention for these cameras: {DEFAULT_RETENTION_DAYS} days is "
                     "assumed, the upper end of the usual 28–31 days in the UK, so the real deadline may be "
                     "sooner. Ask at once.")
    return "".join(f'<p class="sm-notes">{e(p)}</p>' for p in parts)


def point_page(static_dir: Path, result: dict[str, Any], *, place: str | None, requested_by: str,
               now: datetime | None = None) -> tuple[str, str]:
    """The printable list for one place and time (the JSON of /api/coverage/at), and its CSP."""
    now = now or datetime.now(UTC)
    lon, lat = result["point"]["lon"], result["point"]["lat"]
    head = page_head(static_dir, "Footage request").replace("</head>", f"<style>{PRINT_CSS}</style>\n</head>")
    where = (f"{e(place)} " if place else "") + f"({lat:.6f}, {lon:.6f})"
    cams = result["cameras"]
    body = f"""{head}
<body class="sm-footage">
<header>
<h1>Footage request: cameras that could have seen it</h1>
<dl>
<dt>Place</dt><dd>{where}</dd>
<dt>Time</dt><dd>{e(when(result['at']))}</dd>
<dt>Cameras</dt><dd>{len(cams)} working at the time{f", {len(result['not_operational'])} faulty" if result['not_operational'] else ""}</dd>
<dt>Prepared</dt><dd>{e(when(now))} by {e(requested_by)}</dd>
</dl>
<p class="sm-screen-only sm-notes">Print this page with your browser (Ctrl+P); it fits A4. Expired and
due-soon deadlines are marked.</p>
</header>
<main>
{cameras_table(cams, now)}
{notes(cams)}
{not_operational_table(result['not_operational'])}
</main>
</body>
</html>"""
    return body, policy(PRINT_CSS)


# ---- the pack for a path between incidents -----------------------------------------------------

SKETCH_W, SKETCH_H, SKETCH_PAD = 680.0, 300.0, 24.0
LETTERS = "ABCDEFGHIJ"


@lru_cache(maxsize=16)
def _to_metric(srid: int) -> Transformer:
    return Transformer.from_crs(4326, srid, always_xy=True)


def sketch(pack: dict[str, Any], srid: int) -> str:
    """An SVG sketch of the path (no base map): incidents as letters, cameras as their list numbers,
    and a scale bar; drawn in the partnership's metric CRS so it is not stretched."""
    to_m = _to_metric(srid)
    path = [to_m.transform(x, y) for x, y in pack["path"]["coordinates"]]
    stops = [to_m.transform(i["lon"], i["lat"]) for i in pack["incidents"]]
    cams = [to_m.transform(c["lon"], c["lat"]) for c in pack["cameras"]]
    xs, ys = zip(*(path + stops + cams))
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    scale = min((SKETCH_W - 2 * SKETCH_PAD) / max(max(xs) - min(xs), 1.0),
                (SKETCH_H - 2 * SKETCH_PAD) / max(max(ys) - min(ys), 1.0))
    x0, y1 = min(xs), max(ys)

    def px(p: tuple[float, float]) -> tuple[float, float]:
        return SKETCH_PAD + (p[0] - x0) * scale, SKETCH_PAD + (y1 - p[1]) * scale

    line = " ".join("{:.1f},{:.1f}".format(*px(p)) for p in path)
    parts = [f'<polyline points="{line}" fill="none" stroke="#1d4ed8" stroke-width="3" stroke-linejoin="round"/>']
    for n, p in enumerate(cams, 1):
        x, y = px(p)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="#fff" stroke="#111827"/>'
                     f'<text x="{x:.1f}" y="{y + 3.5:.1f}" font-size="10" text-anchor="middle">{n}</text>')
    for letter, p in zip(LETTERS, stops):
        x, y = px(p)
        parts.append(f'<rect x="{x - 9:.1f}" y="{y - 9:.1f}" width="18" height="18" fill="#b91c1c"/>'
                     f'<text x="{x:.1f}" y="{y + 4.5:.1f}" font-size="12" font-weight="700" fill="#fff" '
                     f'text-anchor="middle">{letter}</text>')
    bar_m = _round_length(span / 4)
    bar_px = bar_m * scale
    parts.append(f'<path d="M {SKETCH_PAD} {SKETCH_H - 8} h {bar_px:.1f}" stroke="#111827" stroke-width="2"/>'
                 f'<text x="{SKETCH_PAD + bar_px + 6:.1f}" y="{SKETCH_H - 4}" font-size="11">{bar_m:,.0f} m</text>'
                 f'<text x="{SKETCH_W - 8}" y="16" font-size="11" text-anchor="end">N ↑</text>')
    return (f'<svg class="sm-sketch" viewBox="0 0 {SKETCH_W:.0f} {SKETCH_H:.0f}" role="img" '
            f'aria-label="Sketch of the walking path with incidents and cameras">{"".join(parts)}</svg>')


def _round_length(metres: float) -> float:
    """1, 2 or 5 times a power of ten, at most `metres` (a scale bar's length)."""
    power = 10 ** math.floor(math.log10(max(metres, 1.0)))
    return max(m * power for m in (1, 2, 5) if m * power <= max(metres, 1.0))


def path_page(static_dir: Path, pack: dict[str, Any], *, srid: int, places: Sequence[str | None],
              requested_by: str, now: datetime | None = None) -> tuple[str, str]:
    """The printable pack for a path (the JSON of /api/coverage/path), and its CSP."""
    now = now or datetime.now(UTC)
    head = page_head(static_dir, "Footage request pack").replace("</head>", f"<style>{PRINT_CSS}</style>\n</head>")
    stops = "".join(
        f"<tr><td><strong>{LETTERS[n]}</strong></td><td>{e(i['label'] or '—')}</td><td>{e(when(i['at']))}</td>"
        f"<td>{e(place or '')} ({i['lat']:.6f}, {i['lon']:.6f})</td><td class=\"sm-num\">{i['snapped_m']:,.0f} m</td></tr>"
        for n, (i, place) in enumerate(zip(pack["incidents"], places)))
    legs = "; ".join(f"{LETTERS[leg['from']]} to {LETTERS[leg['to']]} {leg['length_m']:,.0f} m" for leg in pack["legs"])
    cams = pack["cameras"]
    body = f"""{head}
<body class="sm-footage">
<header>
<h1>Footage request pack: the path between related incidents</h1>
<dl>
<dt>Path</dt><dd>{pack['length_m']:,.0f} m walking ({e(legs)}), over the imported streets</dd>
<dt>Cameras</dt><dd>{len(cams)} working at the time{f", {len(pack['not_operational'])} faulty" if pack['not_operational'] else ""}; windows widened by {pack['margin_minutes']} minutes each side</dd>
<dt>Prepared</dt><dd>{e(when(now))} by {e(requested_by)}</dd>
</dl>
<p class="sm-screen-only sm-notes">Print this page with your browser (Ctrl+P); it fits A4.</p>
</header>
<main>
<table class="sm-incidents"><thead><tr><th></th><th>Incident</th><th>Time</th><th>Place</th><th>To street</th></tr></thead>
<tbody>{stops}</tbody></table>
<h2>Sketch</h2>
{sketch(pack, srid)}
<p class="sm-notes">The likely walking path is the shortest over the streets; the person may have gone
another way. Times along it are spread evenly between the incidents' times.</p>
<h2>Cameras along the path, in order</h2>
{cameras_table(cams, now, path=True)}
{notes(cams, path=True)}
{not_operational_table(pack['not_operational'])}
</main>
</body>
</html>"""
    return body, policy(PRINT_CSS)
