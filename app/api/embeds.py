"""Embedded maps for partner intranets: administered under /api/embeds, served under /embed.

An administrator creates an embed (layers, area, precision, allowed origins, expiry) and gets an
<iframe> snippet carrying a random key, of which only a digest is kept. The embed page and its
tiles check that key themselves: it is not a bearer token, so it opens no other route (/api/*,
/tiles/* answer 401). The page is served only into an iframe (Sec-Fetch-Dest: iframe) and its
Content-Security-Policy lets only the allowed origins frame it, so a copied URL shows nothing.

Incident data in an embed is never exact: it is read through the sharing rules' one function
(app/sharing.py) as the role 'embed' capped at the embed's precision, so only anonymous points
of shared data sets, without sensitive categories, and it is served only as cells on a fixed
grid (about 100 m at the finest) drawn at the cell centre, with cells of fewer than
SAFERMAP_SUPPRESS_BELOW (5) incidents left out.
"""
from __future__ import annotations

import hashlib
import html
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.api.deps import Admin, CatalogDep, SessionDep, SettingsDep, TileDep, TilesDep
from app.catalog import Catalog, Layer
from app.errors import AppError, Forbidden, NotFound, Unprocessable, problem
from app.live_state import LiveState
from app.pages import embed as embed_page
from app.roles import Role
from app.tiles.http import respond
from app.tiles.pipeline import EMBED_MAX_ZOOM, MVT, aggregated, embed_access, embed_bounds

router = APIRouter(tags=["embeds"])

MAX_ZOOM = EMBED_MAX_ZOOM  # where a finest incident cell fills a tile; the embed map zooms no further
MAX_DAYS = 2 * 366
DEFAULT_DAYS = 365
MAX_LIST = 500
KEY_PREFIX = "se_"

ORIGIN = re.compile(
    r"^https?://(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]+\])(?::\d{1,5})?$")

EmbedId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The embed id")]
PublicId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="The embed's public id")]
KeyQuery = Annotated[str | None, Query(max_length=200, description="The embed key from the iframe snippet")]


# -- SQL -------------------------------------------------------------------------------------------

INSERT_EMBED = text("""
    INSERT INTO embed (partnership_id, public_id, key_hash, title, layers, area, precision,
                       allowed_origins, expires_at, created_by)
    VALUES (:p, :public_id, :key_hash, :title, :layers,
            CASE WHEN CAST(:has_area AS boolean) THEN ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) END,
            :precision, :origins, :expires_at, :created_by)
    RETURNING id
""")

EMBED_COLUMNS = """
    e.id, e.public_id, e.title, e.layers, e.precision, e.allowed_origins, e.expires_at, e.created_at,
    e.revoked_at, e.views, ST_XMin(e.area) AS x0, ST_YMin(e.area) AS y0, ST_XMax(e.area) AS x1,
    ST_YMax(e.area) AS y1
"""

LIST_EMBEDS = text(f"""
    SELECT {EMBED_COLUMNS} FROM embed e WHERE e.partnership_id = :p ORDER BY e.id DESC LIMIT :limit
""")

ONE_EMBED = text(f"SELECT {EMBED_COLUMNS} FROM embed e WHERE e.partnership_id = :p AND e.id = :id")

REVOKE_EMBED = text("""
    UPDATE embed SET revoked_at = coalesce(revoked_at, now())
    WHERE partnership_id = :p AND id = :id RETURNING public_id, title
""")

# A live embed by its public id and key digest; revoked or expired ones are simply not found.
LIVE_EMBED = text(f"""
    SELECT {EMBED_COLUMNS}, e.partnership_id, pa.name AS partnership_name,
           extract(epoch FROM e.expires_at)::float8 AS expires_epoch
    FROM embed e JOIN partnership pa ON pa.id = e.partnership_id
    WHERE e.public_id = :public_id AND e.key_hash = :key_hash
      AND e.revoked_at IS NULL AND e.expires_at > now()
""")

# Counts every page view; says whether this one is the first in a minute (then it is audited).
COUNT_VIEW = text("""
    UPDATE embed SET views = views + 1,
        view_audited_at = CASE WHEN view_audited_at IS NULL OR view_audited_at < now() - interval '1 minute'
                               THEN now() ELSE view_audited_at END
    WHERE id = :id RETURNING view_audited_at = now() AS audit
""")


# -- the API for administrators --------------------------------------------------------------------

class EmbedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    layers: list[str] = Field(min_length=1, max_length=20, description="catalog layer ids (viewer layers only)")
    area: list[float] | None = Field(None, min_length=4, max_length=4,
                                     description="minlon,minlat,maxlon,maxlat (WGS84); omit for all your data")
    precision: Literal["sanitised", "aggregate"] = Field(
        "aggregate", description="how incident locations are shown; an embed is never exact")
    allowed_origins: list[str] = Field(min_length=1, max_length=20,
                                       description="sites that may frame the map, e.g. https://intranet.example.gov.uk")
    expires_at: datetime | None = Field(None, description=f"default {DEFAULT_DAYS} days; at most {MAX_DAYS}")

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        out = []
        for origin in v:
            o = origin.strip().lower()
            if not ORIGIN.match(o):
                raise ValueError(f"{origin[:100]!r} is not an origin: use scheme://host[:port], "
                                 "e.g. https://intranet.example.gov.uk (no path, no wildcard)")
            port = urlsplit(o).port if not o.endswith("]") else None
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"{origin[:100]!r} has a port outside 1..65535")
            if o not in out:
                out.append(o)
        return out

    @field_validator("area")
    @classmethod
    def _area(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        x0, y0, x1, y1 = v
        if not all(math.isfinite(c) for c in v):
            raise ValueError("area values must be finite numbers")
        if not (-180 <= x0 < x1 <= 180 and -85.06 <= y0 < y1 <= 85.06):
            raise ValueError("area must be minlon,minlat,maxlon,maxlat with min < max, in WGS84")
        return v

    @model_validator(mode="after")
    def _expiry(self) -> EmbedIn:
        now = datetime.now(UTC)
        if self.expires_at is None:
            self.expires_at = now + timedelta(days=DEFAULT_DAYS)
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone, e.g. 2027-01-31T00:00:00Z")
        if not now < self.expires_at <= now + timedelta(days=MAX_DAYS):
            raise ValueError(f"expires_at must be in the future and within {MAX_DAYS} days")
        return self


def check_layers(catalog: Catalog, layers: list[str]) -> list[str]:
    out = []
    for layer_id in layers:
        layer = catalog.get(layer_id)
        if layer is None:
            raise Unprocessable(f"There is no layer {layer_id[:100]!r}; GET /tiles lists them.")
        if layer.least_role != Role.viewer:
            raise Unprocessable(f"Layer {layer_id!r} needs the role {layer.least_role.value!r}; "
                                "an embed may show only layers every viewer may see.")
        if layer_id not in out:
            out.append(layer_id)
    return out


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def describe(row) -> dict:
    now = datetime.now(UTC)
    state = "revoked" if row.revoked_at else "expired" if row.expires_at <= now else "active"
    return {"id": row.id, "public_id": row.public_id, "title": row.title, "layers": list(row.layers),
            "area": [row.x0, row.y0, row.x1, row.y1] if row.x0 is not None else None,
            "precision": row.precision, "allowed_origins": list(row.allowed_origins),
            "expires_at": row.expires_at.isoformat(), "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            "views": row.views, "state": state}


def iframe_snippet(url: str, title: str) -> str:
    e = html.escape
    return (f'<iframe src="{e(url)}" title="{e(title)}" width="100%" height="480" style="border:0" '
            'loading="lazy" referrerpolicy="strict-origin-when-cross-origin"></iframe>')


@router.post("/api/embeds", status_code=201, summary="Create an embedded map; returns its <iframe> snippet once")
async def create_embed(body: EmbedIn, request: Request, session: SessionDep, principal: Admin,
                       catalog: CatalogDep) -> dict:
    """The key in the snippet is shown only now (only its digest is kept). Anyone who can read the
    snippet can read the map, but only inside a frame on one of `allowed_origins`."""
    layers = check_layers(catalog, body.layers)
    public_id, key = secrets.token_urlsafe(12), KEY_PREFIX + secrets.token_urlsafe(32)
    area = body.area or [0.0, 0.0, 0.0, 0.0]
    new_id = (await session.execute(INSERT_EMBED, {
        "p": principal.partnership_id, "public_id": public_id, "key_hash": digest(key), "title": body.title,
        "layers": layers, "has_area": body.area is not None, "x0": area[0], "y0": area[1], "x1": area[2],
        "y1": area[3], "precision": body.precision, "origins": body.allowed_origins,
        "expires_at": body.expires_at, "created_by": principal.id})).scalar_one()
    row = (await session.execute(ONE_EMBED, {"p": principal.partnership_id, "id": new_id})).one()
    created = describe(row)
    await audit.record(session, "embed.create", principal=principal, target=f"embed/{new_id}",
                       detail={k: created[k] for k in ("public_id", "title", "layers", "area", "precision",
                                                       "allowed_origins", "expires_at")})
    await session.commit()
    url = f"{str(request.base_url).rstrip('/')}/embed/{public_id}?key={key}"
    return {**created, "url": url, "iframe": iframe_snippet(url, body.title)}


@router.get("/api/embeds", summary="Your partnership's embedded maps (without their keys)")
async def list_embeds(session: SessionDep, principal: Admin,
                      limit: Annotated[int, Query(ge=1, le=MAX_LIST, description=f"at most {MAX_LIST}")] = 100) -> dict:
    rows = (await session.execute(LIST_EMBEDS, {"p": principal.partnership_id, "limit": limit})).all()
    return {"embeds": [describe(r) for r in rows]}


@router.delete("/api/embeds/{embed_id}", status_code=204, summary="Revoke an embedded map at once")
async def revoke_embed(embed_id: EmbedId, session: SessionDep, principal: Admin) -> Response:
    row = (await session.execute(REVOKE_EMBED, {"p": principal.partnership_id, "id": embed_id})).first()
    if row is None:
        raise NotFound(f"No embed {embed_id} in your partnership.")
    await audit.record(session, "embed.revoke", principal=principal, target=f"embed/{embed_id}",
                       detail={"public_id": row.public_id, "title": row.title})
    await session.commit()
    return Response(status_code=204)


# -- the embed itself ------------------------------------------------------------------------------

# The key is in a tile's URL too: never send it on as a Referer.
TILE_HEADERS = {"Referrer-Policy": "no-referrer"}
GONE = "This embedded map is not available: the link is wrong, or the map was revoked or has expired."


@dataclass(frozen=True)
class LiveEmbed:
    id: int
    partnership_id: int
    partnership_name: str
    public_id: str
    title: str
    layers: tuple[str, ...]
    area: tuple[float, float, float, float] | None
    allowed_origins: tuple[str, ...]
    precision: str

    def access_params(self) -> dict:
        """The sharing function's arguments: the role 'embed', no agency, capped at the precision."""
        return embed_access(self)


async def live_embed(session: AsyncSession, public_id: str, key: str | None,
                     live: LiveState | None = None) -> LiveEmbed:
    """The live embed a key opens, or 404. With `live` (the tiles), from the process's memory when
    it can say (kept exact by notifications, app/live_state.py): a map page asks for dozens of
    tiles at once, and each would otherwise look its key up again."""
    if not key:
        raise NotFound(GONE)
    key_hash = digest(key)

    async def read() -> tuple[LiveEmbed, float] | None:
        row = (await session.execute(LIVE_EMBED, {"public_id": public_id, "key_hash": key_hash})).first()
        if row is None:
            return None
        return LiveEmbed(row.id, row.partnership_id, row.partnership_name, row.public_id, row.title,
                         tuple(row.layers), (row.x0, row.y0, row.x1, row.y1) if row.x0 is not None else None,
                         tuple(row.allowed_origins), row.precision), row.expires_epoch

    if live is not None:
        embed = await live.embed_for_key(public_id, key_hash, read)
    else:
        found = await read()
        embed = found[0] if found is not None else None
    if embed is None:
        raise NotFound(GONE)
    return embed


def refuse_unless_framed(request: Request, allowed: tuple[str, ...] = ()) -> None:
    """Only a browser loading the page into a frame gets it: a copied URL opened in a tab is a
    top-level navigation (Sec-Fetch-Dest: document) and gets nothing. Where the browser names the
    framing page (Referer), it must be an allowed origin too; frame-ancestors is the real wall."""
    if request.headers.get("sec-fetch-dest") != "iframe":
        raise Forbidden("This map can only be shown inside a frame on a site it was made for.")
    referer = request.headers.get("referer")
    if allowed and referer:
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        own = f"{request.url.scheme}://{request.url.netloc}".lower()
        if origin not in allowed and origin != own:
            raise Forbidden("This map can only be shown inside a frame on a site it was made for.")


def refuse_browser_misuse(request: Request) -> None:
    """Tiles are for the embed page's own scripts: not for another site, not to open in a tab."""
    if request.headers.get("sec-fetch-dest") in ("document", "iframe", "frame", "embed", "object"):
        raise Forbidden("Embedded map tiles are only for the embedded map.")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise Forbidden("Embedded map tiles are only for the embedded map.")


def refusal_headers(response: Response) -> Response:
    # A refusal must not render inside anyone's frame either.
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def bounds_of(session: AsyncSession, catalog: Catalog, embed: LiveEmbed) -> list[list[float]] | None:
    """[[south, west], [north, east]]: the area, else the embed's data rounded out to 0.01° (about
    1 km), so no bound is any one incident's coordinate."""
    if embed.area:
        x0, y0, x1, y1 = embed.area
        return [[y0, x0], [y1, x1]]
    layers = [l for l in (catalog.get(i) for i in embed.layers) if l is not None]
    box = await embed_bounds(session, embed, layers)
    if box is None:
        return None
    w, s = math.floor(box[0] * 100) / 100, math.floor(box[1] * 100) / 100
    e, n = math.ceil(box[2] * 100) / 100, math.ceil(box[3] * 100) / 100
    return [[s, w], [n, e]]


@router.get("/embed/{public_id}", response_class=HTMLResponse, include_in_schema=True,
            summary="An embedded read-only map (only inside a frame on an allowed site)")
async def embed_map(public_id: PublicId, request: Request, session: SessionDep, catalog: CatalogDep,
                    settings: SettingsDep, key: KeyQuery = None) -> Response:
    try:
        refuse_unless_framed(request)
        embed = await live_embed(session, public_id, key)
        refuse_unless_framed(request, embed.allowed_origins)
    except AppError as exc:
        return refusal_headers(problem(request, exc.status, exc.title, exc.detail))
    layers = [l for l in (catalog.get(i) for i in embed.layers) if l is not None]
    bounds = await bounds_of(session, catalog, embed)
    config = embed_page.embed_config(embed.title, embed.partnership_name, bounds, [
        embed_page.layer_config(l, f"/embed/{embed.public_id}/tiles/{l.id}/{{z}}/{{x}}/{{y}}.mvt?key={quote(key or '')}",
                                aggregate=aggregated(l), max_zoom=MAX_ZOOM,
                                min_count=settings.suppress_below)
        for l in layers], max_zoom=MAX_ZOOM)
    body, csp = embed_page.embed_html(settings.static_dir, config, embed.allowed_origins)
    if (await session.execute(COUNT_VIEW, {"id": embed.id})).scalar_one():
        await audit.record(session, "embed.view", partnership_id=embed.partnership_id,
                           target=f"embed/{embed.id}", detail={"public_id": embed.public_id},
                           ip=request.client.host if request.client else None)
    await session.commit()
    return HTMLResponse(body, headers={
        "Content-Security-Policy": csp, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        # The key is in this page's URL: never send it anywhere, not even as a Referer.
        "Referrer-Policy": "no-referrer"})


async def embed_layer(public_id: PublicId, layer_id: Annotated[str, Path(description="one of the embed's layers")],
                      request: Request, session: SessionDep, catalog: CatalogDep,
                      key: KeyQuery = None) -> tuple[LiveEmbed, Layer]:
    """The live embed the key opens and one of its layers; tiles only for the embed page's scripts."""
    refuse_browser_misuse(request)
    embed = await live_embed(session, public_id, key, request.app.state.live)
    layer = catalog.get(layer_id)
    if layer is None or layer_id not in embed.layers:
        raise NotFound(f"This embedded map has no layer {layer_id[:100]!r}.")
    return embed, layer


@router.get("/embed/{public_id}/tiles/{layer_id}/{z}/{x}/{y}.mvt", response_class=Response,
            summary="A vector tile of an embedded map's layer (with the embed's key)",
            responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"},
                       304: {"description": "not modified"}})
async def embed_tile(shown: Annotated[tuple[LiveEmbed, Layer], Depends(embed_layer)], xyz: TileDep,
                     session: SessionDep, tiles: TilesDep,
                     if_none_match: Annotated[str | None, Header()] = None) -> Response:
    embed, layer = shown
    return respond(await tiles.embed_tile(session, embed, layer, xyz, if_none_match), TILE_HEADERS)
