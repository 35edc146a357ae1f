"""The HTML face of /ogc (f=html, or a browser's Accept): plain server-rendered pages, every value
escaped, no script at all (their Content-Security-Policy admits only our style sheet)."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse

from app.pages.base import page_head

CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'"


def _links(links: list[dict[str, Any]]) -> str:
    e = html.escape
    items = "".join(f'<li><a href="{e(link["href"])}">{e(link.get("title") or link["rel"])}</a> '
                    f'<small>({e(link["rel"])}, {e(link.get("type", ""))})</small></li>' for link in links)
    return f"<ul>{items}</ul>"


def page(static_dir: Path, title: str, body: str) -> HTMLResponse:
    doc = (page_head(static_dir, title) + f"\n<body><main class=\"ogc\"><h1>{html.escape(title)}</h1>\n"
           + body + "\n</main></body></html>\n")
    return HTMLResponse(doc, headers={"Content-Security-Policy": CSP})


def document(static_dir: Path, title: str, doc: dict[str, Any], listing: str = "") -> HTMLResponse:
    """A JSON document shown as its description, its links and a listing."""
    e = html.escape
    desc = f"<p>{e(str(doc.get('description', '')))}</p>" if doc.get("description") else ""
    return page(static_dir, title, desc + listing + "<h2>Links</h2>" + _links(doc.get("links", [])))


def collections(static_dir: Path, doc: dict[str, Any]) -> HTMLResponse:
    e = html.escape
    rows = "".join(
        f'<tr><td><a href="{e(next(l["href"] for l in c["links"] if l["rel"] == "self"))}?f=html">{e(c["id"])}</a></td>'
        f'<td>{e(c["title"])}</td><td>{e(c.get("description", ""))}</td></tr>' for c in doc["collections"])
    table = f"<table><thead><tr><th>id</th><th>title</th><th>description</th></tr></thead><tbody>{rows}</tbody></table>"
    return document(static_dir, "Collections", doc, table)


def items(static_dir: Path, title: str, features: list[dict[str, Any]], props: list[str],
          links: list[dict[str, Any]], matched: int | None) -> HTMLResponse:
    e = html.escape
    head = "".join(f"<th>{e(p)}</th>" for p in ["id", *props, "geometry"])
    rows = "".join(
        "<tr>" + f"<td>{e(str(f['id']))}</td>"
        + "".join(f"<td>{e('' if f['properties'].get(p) is None else str(f['properties'][p]))}</td>" for p in props)
        + f"<td><code>{e(f['geometry_text'][:200])}</code></td></tr>" for f in features)
    count = f"<p>{len(features)} shown" + (f" of {matched:,}" if matched is not None else "") + ".</p>"
    nav = _links([link for link in links if link["rel"] in ("next", "prev", "collection", "alternate")])
    return page(static_dir, title, count + nav + f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
