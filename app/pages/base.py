"""folium pages that load nothing from the internet.

folium's Map pulls Leaflet, jQuery, Bootstrap and Font Awesome from CDNs by default. `LocalMap`
replaces those lists with the copies `make vendor` puts under /static/vendor, plus our own script
and style sheet. Pages carry their data as one JSON blob that the page script reads, and a
Content-Security-Policy that admits only this origin and the page's own inline scripts (by hash),
so a value that slipped past escaping still could not run.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import folium
from branca.element import Element, Figure, MacroElement
from folium.template import Template

STATIC_PREFIX = "/static"


@lru_cache(maxsize=64)
def _digest(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def asset_url(static_dir: Path, name: str) -> str:
    """/static/NAME?v=DIGEST, so a browser never runs a stale copy after an upgrade."""
    path = static_dir / name
    try:
        version = _digest(path, path.stat().st_mtime_ns)
    except OSError:  # missing (e.g. `make vendor` not run yet): the page still renders
        return f"{STATIC_PREFIX}/{name}"
    return f"{STATIC_PREFIX}/{name}?v={version}"


def page_head(static_dir: Path, title: str, *, script: str | None = None, csrf: str | None = None) -> str:
    """The opening of a server-rendered page (sign-in, admin): our style sheet, at most one deferred
    script of ours, no inline script (their CSP allows none), and a `data:` favicon so the browser
    asks for nothing else."""
    e = html.escape
    meta = f'<meta name="csrf-token" content="{e(csrf)}">\n' if csrf is not None else ""
    js = f'<script src="{e(asset_url(static_dir, script))}" defer></script>\n' if script else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"{meta}<link rel=\"icon\" href=\"data:,\">\n<title>{e(title)}: SaferMap</title>\n"
            f"<link rel=\"stylesheet\" href=\"{e(asset_url(static_dir, 'safermap.css'))}\">\n{js}</head>")


def safe_json(value: Any) -> str:
    """JSON that cannot close the <script> element it sits in."""
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


class LocalMap(folium.Map):
    """A folium Map whose assets all come from this server."""

    def __init__(self, static_dir: Path, scripts: list[str], styles: list[str], **kwargs: Any) -> None:
        kwargs.setdefault("tiles", None)  # no internet base map
        super().__init__(**kwargs)
        # Per instance, so folium's module-level CDN lists are never touched.
        self.default_js = [
            ("leaflet", asset_url(static_dir, "vendor/leaflet/leaflet.js")),
            ("vectorgrid", asset_url(static_dir, "vendor/Leaflet.VectorGrid.bundled.min.js")),
            # Our adapter over VectorGrid's private members, right after the library it adapts.
            ("vectorgrid_adapter", asset_url(static_dir, "safermap-vectorgrid.js")),
            *((name, asset_url(static_dir, name)) for name in scripts),
        ]
        self.default_css = [
            ("leaflet_css", asset_url(static_dir, "vendor/leaflet/leaflet.css")),
            *((name, asset_url(static_dir, name)) for name in styles),
        ]


class PageConfig(MacroElement):
    """Embeds `config` as JSON and starts the page script on the folium map with it."""

    _template = Template("""
        {% macro html(this, kwargs) %}
        <script type="application/json" id="safermap-config">{{ this.json }}</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
            {{ this.start }}({{ this._parent.get_name() }}, "safermap-config");
        {% endmacro %}
    """)

    def __init__(self, config: dict[str, Any], start: str) -> None:
        super().__init__()
        self._name = "PageConfig"
        self.json = safe_json(config)
        if not re.fullmatch(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*", start):
            raise ValueError("start must be a JavaScript name")
        self.start = start


INLINE_SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S | re.I)


def csp(html: str) -> str:
    """A policy for `html`: this origin only; inline scripts only those in the page, by hash."""
    hashes = []
    for m in INLINE_SCRIPT.finditer(html):
        attrs = m.group("attrs").lower()
        if "src=" in attrs or "application/json" in attrs:
            continue
        digest = base64.b64encode(hashlib.sha256(m.group("body").encode()).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    return ("default-src 'self'; "
            f"script-src 'self' {' '.join(sorted(set(hashes)))}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")


def render(figure_or_map: folium.Map | Figure, title: str) -> str:
    figure = cast(Figure, figure_or_map.get_root())  # a Map's or Figure's root is a Figure
    # No icon request (it would 404 and log a console error); the title is escaped like any text.
    figure.header.add_child(Element('<link rel="icon" href="data:,">'), name="page_icon")
    figure.header.add_child(Element(f"<title>{html.escape(title)}</title>"), name="page_title")
    return figure.render()


def full_map_page(static_dir: Path, config: dict[str, Any], *, scripts: list[str], styles: list[str],
                  start: str, title: str) -> tuple[str, str]:
    """A full-screen map page (overview, control room, hotspots) and its Content-Security-Policy:
    local Leaflet centred on the data's bounds (Great Britain when there is nothing to show yet),
    the page's scripts and styles, and its config handed to `start`."""
    bounds = config["bounds"]
    centre = ([(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
              if bounds else [54.0, -2.5])
    fmap = LocalMap(static_dir, scripts=scripts, styles=styles, location=centre,
                    zoom_start=13 if bounds else 6, min_zoom=3, max_zoom=20, control_scale=True)
    fmap.add_child(PageConfig(config, start=start))
    html = render(fmap, title)
    return html, csp(html)
