"""The /ogc endpoints. Every one needs a signed-in caller (bearer token, as QGIS's auth manager and
GDAL_HTTP_HEADERS send it, or the session cookie) and shows only what that caller may see: the
collections their role may see, incidents at the level the sharing rules give them, exact views
audited as /api/incidents audits them. Parameters are read by hand (app/ogc/query.py) so that every
bad value is a 400 problem, as the OGC standard asks, rather than FastAPI's 422."""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from app import sharing
from app.api.deps import CatalogDep, SessionDep, Viewer
from app.api.incidents import COUNT_CAP, audit_exact_view
from app.domain_errors import InvalidValue
from app.errors import NotFound
from app.ogc import cells, html, paging
from app.ogc import crs as crs_mod
from app.ogc.collections import Collection, extent, find_collection, visible_collections
from app.ogc.openapi import OPENAPI_TYPE
from app.ogc.openapi import document as openapi_document
from app.ogc.query import feature_sql, selection
from app.tiles.cache import current_versions

router = APIRouter(prefix="/ogc", tags=["ogc"], include_in_schema=False)

JSON, GEOJSON, HTML = "application/json", "application/geo+json", "text/html"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
]


def wants_html(request: Request) -> bool:
    """f=html or f=json decide; without f, a browser (Accept naming text/html, no JSON) gets HTML."""
    f = request.query_params.get("f")
    if f:
        if f == "html":
            return True
        if f in ("json", "geojson"):
            return False
        raise InvalidValue("f must be json or html.")
    accept = request.headers.get("accept", "")
    return HTML in accept and "json" not in accept


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _self_links(request: Request, json_type: str, title: str) -> list[dict[str, Any]]:
    here = request.url.remove_query_params("f")
    html_first = wants_html(request)
    return [{"rel": "self", "type": HTML if html_first else json_type, "title": title,
             "href": str(here.include_query_params(f="html" if html_first else "json"))},
            {"rel": "alternate", "type": json_type if html_first else HTML, "title": f"{title} as "
             + ("JSON" if html_first else "HTML"), "href": str(here.include_query_params(f="json" if html_first else "html"))}]


async def _collection(session, catalog, principal, collection_id: str) -> Collection:
    c = await find_collection(session, catalog, principal, collection_id)
    if c is None:
        raise NotFound(f"There is no collection '{collection_id[:100]}' for you. GET /ogc/collections lists yours.")
    return c


@router.get("")
async def landing(request: Request, principal: Viewer) -> Response:
    base = _base(request)
    doc = {"title": "SaferMap", "description": "Cameras, their coverage, streets, buildings, safe routes and "
           "incidents of your partnership as OGC API – Features, for QGIS, ArcGIS and GDAL.",
           "links": _self_links(request, JSON, "This page") + [
               {"rel": "service-desc", "type": OPENAPI_TYPE, "title": "The API definition", "href": f"{base}/api"},
               {"rel": "service-doc", "type": HTML, "title": "The API documentation", "href": f"{base}/api?f=html"},
               {"rel": "conformance", "type": JSON, "title": "Conformance classes", "href": f"{base}/conformance"},
               {"rel": "data", "type": JSON, "title": "Collections", "href": f"{base}/collections"}]}
    if wants_html(request):
        return html.document(request.app.state.settings.static_dir, "SaferMap OGC API – Features", doc)
    return JSONResponse(doc)


@router.get("/conformance")
async def conformance(request: Request, principal: Viewer) -> Response:
    doc = {"conformsTo": CONFORMANCE}
    if wants_html(request):
        listing = "<ul>" + "".join(f"<li>{c}</li>" for c in CONFORMANCE) + "</ul>"
        return html.document(request.app.state.settings.static_dir, "Conformance", {}, listing)
    return JSONResponse(doc)


@router.get("/api")
async def api(request: Request, principal: Viewer) -> Response:
    doc = openapi_document(str(request.base_url).rstrip("/"), crs_mod.supported_uris(principal.srid))
    if request.query_params.get("f") == "html":
        listing = "<ul>" + "".join(f"<li><code>GET {p}</code>: {v['get']['summary']}</li>"
                                   for p, v in doc["paths"].items()) + "</ul>"
        return html.document(request.app.state.settings.static_dir, "API", {}, listing)
    return Response(json.dumps(doc), media_type=OPENAPI_TYPE)


async def _describe(request: Request, session, c: Collection, principal) -> dict[str, Any]:
    base = f"{_base(request)}/collections/{c.id}"
    return {
        "id": c.id, "title": c.title, "description": c.description, "itemType": "feature",
        "extent": await extent(session, c, principal, request.app.state.live),
        "crs": crs_mod.supported_uris(principal.srid), "storageCrs": crs_mod.STORAGE_CRS,
        "links": [
            {"rel": "self", "type": JSON, "title": c.title, "href": base},
            {"rel": "items", "type": GEOJSON, "title": f"{c.title}: features", "href": f"{base}/items"},
            {"rel": "items", "type": HTML, "title": f"{c.title}: features as HTML", "href": f"{base}/items?f=html"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json",
             "title": "What a filter may name", "href": f"{base}/queryables"},
        ],
    }


@router.get("/collections")
async def collections(request: Request, session: SessionDep, principal: Viewer, catalog: CatalogDep) -> Response:
    found = await visible_collections(session, catalog, principal)
    doc = {"links": _self_links(request, JSON, "Collections"),
           "collections": [await _describe(request, session, c, principal) for c in found]}
    if wants_html(request):
        return html.collections(request.app.state.settings.static_dir, doc)
    return JSONResponse(doc)


@router.get("/collections/{collection_id}")
async def collection(collection_id: str, request: Request, session: SessionDep, principal: Viewer,
                     catalog: CatalogDep) -> Response:
    c = await _collection(session, catalog, principal, collection_id)
    doc = await _describe(request, session, c, principal)
    if wants_html(request):
        return html.document(request.app.state.settings.static_dir, c.title, doc)
    return JSONResponse(doc)


@router.get("/collections/{collection_id}/queryables")
async def queryables(collection_id: str, request: Request, session: SessionDep, principal: Viewer,
                     catalog: CatalogDep) -> Response:
    c = await _collection(session, catalog, principal, collection_id)
    types = {"string": {"type": "string"}, "number": {"type": "number"}, "boolean": {"type": "boolean"},
             "month": {"type": "string", "format": "date", "pattern": "^\\d{4}-\\d{2}(-\\d{2})?$"}}
    props: dict[str, Any] = {name: {"title": name, **types[q.kind], **({"description": q.description} if q.description else {})}
                             for name, q in c.queryables.items()}
    shape = "Polygon" if c.cells else c.layer.geometry.capitalize()
    props["geometry"] = {"$ref": f"https://geojson.org/schema/{shape}.json"}
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema",
           "$id": f"{_base(request)}/collections/{c.id}/queryables", "type": "object",
           "title": c.title, "properties": props, "additionalProperties": False}
    if wants_html(request):
        listing = "<ul>" + "".join(f"<li><code>{n}</code>: {p.get('type', 'geometry')}</li>" for n, p in props.items()) + "</ul>"
        return html.document(request.app.state.settings.static_dir, f"{c.title}: queryables", {}, listing)
    return Response(json.dumps(doc), media_type="application/schema+json")


def legacy_crs_member(target: crs_mod.Crs) -> dict[str, Any]:
    """For a projected CRS, also the 2008 GeoJSON `crs` member: readers that know no Content-Crs
    header (GDAL's plain GeoJSON driver, older tools) then still place metres correctly. Never for
    geographic CRSs, where such readers would mistake the axis order."""
    if target.srid == 4326 or target.lat_first:
        return {}
    return {"crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{target.srid}"}}}


def _source(request: Request, c: Collection, principal, rows_where: list[str],
            spatial: list[str]) -> tuple[str, str, dict[str, Any]]:
    """The FROM item, its WHERE and parameters: the collection's rows, or for incident_cells the
    squares counted over them (bbox then selects whole squares)."""
    src, where, params = c.from_where(principal)
    if c.cells:
        src = cells.source(src, " AND ".join(where + rows_where), principal.srid)
        params["k_suppress"] = request.app.state.settings.suppress_below
        return src, " AND ".join(["true", *spatial]), params
    return src, " AND ".join(where + rows_where + spatial), params


def _html_feature(row: Any) -> dict[str, Any]:
    feature = json.loads(row.fj)
    return {"id": row.id, "properties": feature["properties"], "geometry_text": json.dumps(feature["geometry"])}


async def _read_rows(session, c: Collection, select: str, params: dict[str, Any], cursor: paging.Cursor | None,
                     need: int) -> list[Any]:
    """Up to `need` rows of `select` beyond the cursor, in key order (descending for prev)."""
    if c.shared and not c.cells:  # incidents: windows of the key (app/ogc/paging.py says why)
        return await paging.fetch_windowed(session, select, params, cursor, need)
    rng, order = "true", "t.id"
    if cursor is not None:
        rng = "t.id > :page_k" if cursor.direction == "next" else "t.id < :page_k"
        order = "t.id" if cursor.direction == "next" else "t.id DESC"
        params = {**params, "page_k": cursor.key}
    statement = select.replace("{range}", rng) + f" ORDER BY {order} LIMIT :lim"
    return list((await session.execute(text(statement), {**params, "lim": need})).all())


async def _versions(session, request: Request, c: Collection, principal) -> list[str] | None:
    """The data versions a collection's rows depend on (from memory when it is exact), or None for
    a layer that names none: its pages are never read ahead."""
    if not c.layer.versioned_by:
        return None
    return await current_versions(session, c.layer, principal, request.app.state.live)


@router.get("/collections/{collection_id}/items")
async def items(collection_id: str, request: Request, session: SessionDep, principal: Viewer,
                catalog: CatalogDep) -> Response:
    """A page of features, ordered by id, continued by keyset (the cursor in the next/prev links)."""
    c = await _collection(session, catalog, principal, collection_id)
    as_html = wants_html(request)
    sel = selection(request.query_params, c, principal.srid)
    digest = paging.selection_digest(sel.digest_parts)
    cursor = paging.decode(request.query_params.get("cursor"), digest)
    src, filters, params = _source(request, c, principal, sel.where, sel.spatial)
    params.update(sel.params)
    level = "t.level" if c.shared and not c.cells else "NULL"
    select = (f"SELECT t.id, {level} AS level, {feature_sql(sel.crs, c.properties)} AS fj "
              f"FROM {src} WHERE {filters} AND {{range}}")
    # Rows read ahead while the client parsed the previous page (app/ogc/prefetch.py), else now.
    ahead_key = (principal.id, sharing.access_key(principal), principal.srid, catalog.fingerprint, c.id, digest,
                 sel.crs.uri, sel.limit)
    versions = await _versions(session, request, c, principal) if cursor is not None and not as_html else None
    rows = None
    if versions is not None and cursor is not None:
        rows = await request.app.state.ogc_ahead.take((*ahead_key, cursor), versions)
    if rows is None:
        rows = await _read_rows(session, c, select, params, cursor, sel.limit + 1)
    more = len(rows) > sel.limit
    rows = rows[:sel.limit]
    if cursor is not None and cursor.direction == "prev":
        rows.reverse()
    # numberMatched is counted with the first page (exact up to COUNT_CAP, as /api/incidents counts):
    # later pages leave it out (the standard allows it) rather than count a million rows a page.
    matched: int | None = None
    if cursor is None:
        if not more:
            matched = len(rows)
        else:
            n = (await session.execute(text(
                f"SELECT count(*) FROM (SELECT 1 FROM {src} WHERE {filters} LIMIT :cap) AS m"),
                {**params, "cap": COUNT_CAP + 1})).scalar_one()
            matched = n if n <= COUNT_CAP else None
    if c.shared and any(r.level == "exact" for r in rows):
        await audit_exact_view(session, principal, request, None, len(rows),
                               target=f"ogc/collections/{c.id}", layer=c.layer.id)
    if versions is not None and more and cursor is not None and cursor.direction == "next":
        # A client that follows next links: read the page after this one while it parses this one
        # (started after this page's own statements, so that it does not hold up this answer).
        following = paging.Cursor("next", rows[-1].id)
        maker = request.app.state.read_sessionmaker

        async def read_ahead() -> list[Any]:
            async with maker() as ahead_session:
                return await _read_rows(ahead_session, c, select, dict(params), following, sel.limit + 1)

        request.app.state.ogc_ahead.start((*ahead_key, following), versions, read_ahead)

    links = _self_links(request, GEOJSON, "This page")
    page_url = request.url.remove_query_params(["cursor", "f"])
    fmt = "html" if as_html else "json"
    has_next = bool(rows) and (more if cursor is None or cursor.direction == "next" else True)
    has_prev = bool(rows) and cursor is not None and (more if cursor.direction == "prev" else True)
    if has_next:
        token = paging.encode(paging.Cursor("next", rows[-1].id), digest)
        links.append({"rel": "next", "type": HTML if as_html else GEOJSON, "title": "Next page",
                      "href": str(page_url.include_query_params(cursor=token, limit=sel.limit, f=fmt))})
    if has_prev:
        token = paging.encode(paging.Cursor("prev", rows[0].id), digest)
        links.append({"rel": "prev", "type": HTML if as_html else GEOJSON, "title": "Previous page",
                      "href": str(page_url.include_query_params(cursor=token, limit=sel.limit, f=fmt))})
    links.append({"rel": "collection", "type": JSON, "title": c.title,
                  "href": f"{_base(request)}/collections/{c.id}"})
    headers = {"Content-Crs": sel.crs.header}
    if as_html:
        features = [_html_feature(r) for r in rows]
        page = html.items(request.app.state.settings.static_dir, c.title, features, c.properties, links, matched)
        page.headers.update(headers)
        return page
    head: dict[str, Any] = {"type": "FeatureCollection"}
    if matched is not None:
        head["numberMatched"] = matched
    head["numberReturned"] = len(rows)
    head["links"] = links
    head.update(legacy_crs_member(sel.crs))
    feats = ",".join(r.fj for r in rows)
    body = json.dumps(head, ensure_ascii=False)[:-1] + f',"features":[{feats}]}}'
    return Response(body, media_type=GEOJSON, headers=headers)


@router.get("/collections/{collection_id}/items/{feature_id}")
async def item(collection_id: str, feature_id: str, request: Request, session: SessionDep, principal: Viewer,
               catalog: CatalogDep) -> Response:
    c = await _collection(session, catalog, principal, collection_id)
    as_html = wants_html(request)
    target = crs_mod.parse_crs(request.query_params.get("crs"), principal.srid)
    if not feature_id.isdigit() or len(feature_id) > 18:
        raise NotFound(f"There is no feature '{feature_id[:40]}' in {c.id}.")
    src, filters, params = _source(request, c, principal, [], [])
    level = "t.level" if c.shared and not c.cells else "NULL"
    row = (await session.execute(text(
        f"SELECT t.id, {level} AS level, {feature_sql(target, c.properties)} AS fj FROM {src} "
        f"WHERE {filters} AND t.id = :fid"),
        {**params, "fid": int(feature_id)})).first()
    if row is None:
        raise NotFound(f"There is no feature {feature_id} in {c.id} for you.")
    if c.shared and row.level == "exact":
        await audit_exact_view(session, principal, request, None, 1, target=f"ogc/collections/{c.id}",
                               layer=c.layer.id)
    base = f"{_base(request)}/collections/{c.id}"
    links = _self_links(request, GEOJSON, "This feature") + [
        {"rel": "collection", "type": JSON, "title": c.title, "href": base}]
    headers = {"Content-Crs": target.header}
    if as_html:
        feature = _html_feature(row)
        page = html.items(request.app.state.settings.static_dir, f"{c.title}: {row.id}", [feature], c.properties,
                          links, None)
        page.headers.update(headers)
        return page
    body = row.fj[:-1] + f',"links":{json.dumps(links)}}}'
    return Response(body, media_type=GEOJSON, headers=headers)
