"""The PCSO capture page /capture: add, survey, move and turn cameras on a tablet or phone, with or
without a signal.

Plain HTML, not folium: the page must open from the service worker's cache with no network, so it
carries no inline script at all (its policy is script-src 'self'), only its shell (the form, the
panels), the JSON config and the scripts in static/capture/. Everything that changes (the coverage
rule, the form's lists, nearby cameras) the scripts fetch from the API and keep on the device.

The config names the partnership's metric grid (for a Transverse Mercator CRS: its central meridian
and scale), because the database draws a wedge in that grid: a bearing is a grid bearing, so the
preview turns and scales by the grid's convergence and scale factor to draw exactly what the
trigger will store.
"""
from __future__ import annotations

import html
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.catalog import Catalog, Layer
from app.pages.base import asset_url, safe_json
from app.pages.overview import partnership_name, summarise

SCOPE = "/capture"
SW_URL = "/capture/sw.js"
MANIFEST_URL = "/capture/manifest.webmanifest"
SIGN_IN = "/sign-in?next=/capture"
ACCURACY_WARN_M = 25     # a fix worse than this asks the PCSO to confirm or tap the spot
DUPLICATE_M = 10         # the server's duplicate guard: another camera this close is probably the same
NEARBY_RADIUS_M = 300    # cameras listed for the survey (the API's default)
BACKGROUND = ("buildings", "streets")
FIT = ("cameras", "streets")

# Scripts in load order: Leaflet and VectorGrid, then ours, each a small file with one job.
SCRIPTS = ("vendor/leaflet/leaflet.js", "vendor/Leaflet.VectorGrid.bundled.min.js",
           "capture/util.js", "capture/geo.js", "capture/store.js", "capture/api.js", "capture/outbox.js",
           "capture/mapview.js", "capture/form.js", "capture/survey.js", "capture/dialogs.js",
           "capture/outbox-panel.js", "capture/offline.js", "capture/main.js")
STYLES = ("vendor/leaflet/leaflet.css", "capture.css")
ICON = "capture/icon.svg"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
# The worker's own policy: it fetches from this origin only.
SW_CSP = "default-src 'self'"


@lru_cache(maxsize=32)
def grid_of(srid: int) -> dict[str, float] | None:
    """The Transverse Mercator parameters the page needs to draw in the partnership's grid, or None
    (another projection: the preview is then drawn on true bearings, off by its convergence)."""
    try:
        op = CRS.from_epsg(srid).coordinate_operation
    except CRSError:
        return None
    if op is None or op.method_name != "Transverse Mercator":
        return None
    params = {p.name: p.value for p in op.params}
    return {"lon0": float(params["Longitude of natural origin"]), "k0": float(params["Scale factor at natural origin"])}


def _layer(layer: Layer) -> dict[str, Any]:
    return {"id": layer.id, "tiles": f"/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt", "geometry": layer.geometry,
            "minzoom": layer.minzoom, "maxzoom": layer.maxzoom, "style": layer.style.model_dump(),
            "attribution": layer.attribution}


def assets(static_dir: Path) -> list[str]:
    """Every static URL the page loads (versioned), so the page can keep them for offline use."""
    return [asset_url(static_dir, n) for n in (*STYLES, *SCRIPTS, ICON,
                                               "vendor/leaflet/images/marker-icon.png")]


async def page_config(session: AsyncSession, principal: Principal, catalog: Catalog,
                      static_dir: Path) -> dict[str, Any]:
    visible = {l.id: l for l in catalog.visible_to(principal.role)}
    background = [visible[i] for i in BACKGROUND if i in visible]
    fit = [visible[i] for i in FIT if i in visible]
    bounds = (await summarise(session, principal, catalog, fit)).bounds if fit else None
    return {
        "page": "capture",
        "partnership": {"name": await partnership_name(session, principal), "slug": principal.partnership_slug},
        # The id names the device's store, so one person's outbox is never sent as another's.
        "user": {"id": principal.id, "name": principal.name, "role": principal.role},
        "bounds": bounds,
        "grid": grid_of(principal.srid),
        "background": [_layer(l) for l in background],
        "limits": {"accuracy_warn_m": ACCURACY_WARN_M, "duplicate_m": DUPLICATE_M,
                   "nearby_radius_m": NEARBY_RADIUS_M},
        "assets": assets(static_dir),
        "links": {"page": SCOPE, "sw": SW_URL, "scope": SCOPE, "cameras": "/api/cameras",
                  "rule": "/api/cameras/rule", "options": "/api/cameras/options", "signIn": SIGN_IN,
                  "overview": "/maps/overview"},
    }


ICON_SIZES = (192, 512)   # what browsers want to install an app (Chrome: both)


@lru_cache(maxsize=len(ICON_SIZES))
def icon_png(size: int) -> bytes:
    """The app icon as a PNG, drawn here rather than kept as a binary file: the SVG icon's shapes
    (a camera under its amber wedge on the page's blue)."""
    from PIL import Image, ImageDraw

    s = size / 512
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, size - 1, size - 1), radius=round(96 * s), fill="#0b3d91")
    d.pieslice((256 * s - 190 * s, 300 * s - 190 * s, 256 * s + 190 * s, 300 * s + 190 * s), 228, 312, fill="#f59e0b")
    d.rounded_rectangle((176 * s, 270 * s, 336 * s, 350 * s), radius=round(18 * s), fill="#ffffff")
    d.ellipse((278 * s, 288 * s, 322 * s, 332 * s), fill="#0b3d91")
    d.rectangle((236 * s, 350 * s, 276 * s, 420 * s), fill="#ffffff")
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


def manifest(static_dir: Path) -> dict[str, Any]:
    """The web app manifest: installable, opening on the capture page like an app."""
    return {
        "name": "SaferMap camera capture",
        "short_name": "SaferMap capture",
        "description": "Add and survey CCTV cameras on the street, with or without a signal.",
        "start_url": SCOPE,
        "scope": SCOPE,
        "id": SCOPE,
        "display": "standalone",
        "orientation": "any",
        "background_color": "#ffffff",
        "theme_color": "#0b3d91",
        "icons": [*({"src": f"{SCOPE}/icon-{n}.png", "sizes": f"{n}x{n}", "type": "image/png", "purpose": "any"}
                    for n in ICON_SIZES),
                  {"src": asset_url(static_dir, ICON), "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
    }


def manifest_json(static_dir: Path) -> str:
    return json.dumps(manifest(static_dir), indent=1)


def _options(values: list[tuple[str, str]]) -> str:
    e = html.escape
    return "".join(f'<option value="{e(v)}">{e(t)}</option>' for v, t in values)


TYPES = [("fixed", "Fixed"), ("dome", "Dome"), ("ptz", "PTZ"), ("anpr", "ANPR"), ("redeployable", "Redeployable")]
STATUSES = [("operational", "Working"), ("faulty", "Faulty"), ("planned", "Planned"),
            ("decommissioned", "Gone (decommissioned)")]


def capture_html(static_dir: Path, config: dict[str, Any]) -> str:
    """The page shell; the scripts fill in the lists and everything that moves."""
    e = html.escape
    a = lambda name: e(asset_url(static_dir, name))  # noqa: E731
    styles = "".join(f'<link rel="stylesheet" href="{a(n)}">\n' for n in STYLES)
    scripts = "".join(f'<script src="{a(n)}" defer></script>\n' for n in SCRIPTS)
    user = config["user"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="theme-color" content="#0b3d91">
<title>Camera capture: SaferMap</title>
<link rel="manifest" href="{e(MANIFEST_URL)}">
<link rel="icon" href="{a(ICON)}" type="image/svg+xml">
{styles}{scripts}</head>
<body class="cap-body">
<header class="cap-bar">
  <div class="cap-brand"><strong>Camera capture</strong>
    <span class="cap-who">{e(config["partnership"]["name"])} · {e(user["name"])}</span></div>
  <span id="cap-net" class="cap-pill" role="status">…</span>
  <button id="cap-outbox-button" class="cap-pill cap-outbox-pill" type="button" aria-controls="cap-tab-outbox">Outbox</button>
</header>
<div id="cap-alert" class="cap-alert" role="alert" hidden></div>
<main class="cap-main">
  <div class="cap-map-wrap">
    <div id="cap-map" class="cap-map" aria-label="Map: tap to place the camera"></div>
    <div class="cap-map-tools">
      <button id="cap-locate" class="cap-tool" type="button">My position</button>
    </div>
    <p id="cap-fix" class="cap-fix" role="status">Finding your position…</p>
  </div>
  <section class="cap-panel" aria-label="Capture">
    <nav class="cap-tabs" role="tablist">
      <button id="cap-tab-add-button" role="tab" type="button" aria-controls="cap-tab-add" aria-selected="true">Add</button>
      <button id="cap-tab-nearby-button" role="tab" type="button" aria-controls="cap-tab-nearby" aria-selected="false">Nearby</button>
      <button id="cap-tab-outbox-button" role="tab" type="button" aria-controls="cap-tab-outbox" aria-selected="false">Outbox</button>
    </nav>
    <div id="cap-tab-add" class="cap-tab" role="tabpanel">
      <form id="cap-form" class="cap-form" novalidate>
        <div class="cap-place">
          <button id="cap-use-gps" class="cap-button" type="button">Use my position</button>
          <span id="cap-where" class="cap-where">Tap the map or use your position.</span>
        </div>
        <p id="cap-accuracy-warning" class="cap-warning" role="alert" hidden></p>
        <div id="cap-duplicates" class="cap-duplicates" hidden></div>
        <label>Camera type
          <select id="cap-type" name="camera_type">{_options(TYPES)}</select></label>
        <div class="cap-row">
          <label class="cap-grow">Field of view <output id="cap-fov-out" for="cap-fov"></output>
            <input id="cap-fov" name="fov" type="range" min="5" max="360" step="1"></label>
        </div>
        <div class="cap-row">
          <label class="cap-grow">Range <output id="cap-range-out" for="cap-range"></output>
            <input id="cap-range" name="range_m" type="range" min="5" max="300" step="1"></label>
        </div>
        <p class="cap-hint" id="cap-direction">Direction: drag the round handle on the map.</p>
        <button id="cap-preset" class="cap-button cap-secondary" type="button">Use the type's usual view</button>
        <label>Owner
          <select id="cap-owner" name="owner_agency"><option value="">Not known</option></select></label>
        <div id="cap-private" class="cap-private" hidden>
          <label>Private owner's name <input id="cap-owner-name" name="owner_name" maxlength="200" autocomplete="organization"></label>
          <label>Owner's contact (phone or email) <input id="cap-owner-contact" name="owner_contact" maxlength="500"></label>
        </div>
        <label>Status
          <select id="cap-status" name="status">{_options(STATUSES)}</select></label>
        <label class="cap-check"><input id="cap-monitored" name="monitored" type="checkbox"> Monitored (someone watches it live)</label>
        <label>Footage kept for
          <select id="cap-retention" name="retention_days"><option value="">Not known</option></select></label>
        <details class="cap-more"><summary>More details</summary>
          <label>Reference <input id="cap-reference" name="reference" maxlength="100" autocomplete="off"></label>
          <label>Name or place <input id="cap-name" name="name" maxlength="200"></label>
          <label>Mounting height (m) <input id="cap-height" name="height_m" type="number" min="0" max="300" step="0.5" inputmode="decimal"></label>
        </details>
        <label>Notes <textarea id="cap-notes" name="notes" maxlength="4000" rows="2"></textarea></label>
        <label class="cap-photo">Photo <input id="cap-photo" name="photo" type="file" accept="image/*" capture="environment"></label>
        <p id="cap-form-message" class="cap-message" role="status"></p>
        <div class="cap-actions">
          <button id="cap-save" class="cap-button cap-primary" type="submit">Save camera</button>
          <button id="cap-clear" class="cap-button cap-secondary" type="button">Clear</button>
        </div>
      </form>
    </div>
    <div id="cap-tab-nearby" class="cap-tab" role="tabpanel" hidden>
      <div id="cap-selected" class="cap-selected" hidden></div>
      <p id="cap-nearby-note" class="cap-hint"></p>
      <ol id="cap-nearby" class="cap-list"></ol>
    </div>
    <div id="cap-tab-outbox" class="cap-tab" role="tabpanel" hidden>
      <p id="cap-outbox-summary" class="cap-outbox-summary" role="status"></p>
      <p id="cap-sign-in" class="cap-warning" hidden>Your session has ended. Nothing is lost: the outbox waits.
        <a id="cap-sign-in-link" href="{e(config["links"]["signIn"])}">Sign in again</a></p>
      <div class="cap-actions">
        <button id="cap-send" class="cap-button cap-primary" type="button">Send now</button>
        <button id="cap-export" class="cap-button cap-secondary" type="button">Save a backup</button>
        <label class="cap-button cap-secondary cap-import">Restore a backup
          <input id="cap-import" type="file" accept="application/json,.json"></label>
      </div>
      <p id="cap-storage" class="cap-hint"></p>
      <ol id="cap-outbox" class="cap-list"></ol>
    </div>
  </section>
</main>
<dialog id="cap-dialog" class="cap-dialog"></dialog>
<script type="application/json" id="safermap-config">{safe_json(config)}</script>
</body>
</html>
"""
