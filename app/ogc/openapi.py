"""The OpenAPI 3.0 description of /ogc (the landing page's service-desc link): what GDAL, QGIS and
OWSLib read for the paths, the items parameters and the limit's maximum."""
from __future__ import annotations

from typing import Any

from app.ogc.query import DEFAULT_LIMIT, MAX_LIMIT

OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"


def _param(name: str, description: str, schema: dict[str, Any], where: str = "query",
           style: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "required": where == "path", "description": description,
                         "schema": schema}
    if style:
        p.update(style=style, explode=False)
    return p


def _ok(description: str, *types: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {t: {"schema": {"type": "object"}} for t in types}},
            "400": {"description": "a bad parameter (problem+json)"},
            "401": {"description": "not signed in"}, "404": {"description": "no such collection or feature"}}


def document(base: str, crs_uris: list[str]) -> dict[str, Any]:
    collection = _param("collectionId", "a collection id (GET /ogc/collections lists yours)", {"type": "string"},
                        "path")
    f = _param("f", "json (default) or html", {"type": "string", "enum": ["json", "html"]})
    crs_schema = {"type": "string", "format": "uri", "enum": crs_uris}
    items_params = [
        collection,
        _param("limit", f"features a page, default {DEFAULT_LIMIT}", {"type": "integer", "minimum": 1,
                                                                       "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
               style="form"),
        _param("bbox", "minx,miny,maxx,maxy in bbox-crs (CRS84 by default)",
               {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}, style="form"),
        _param("bbox-crs", "the CRS of bbox", crs_schema),
        _param("datetime", "an instant or interval (RFC 3339; '..' for an open end); a month matches "
                           "when it overlaps it", {"type": "string"}),
        _param("crs", "the CRS of the answer's geometries", crs_schema),
        _param("filter", "CQL2 (text or JSON, as filter-lang says) over the collection's queryables",
               {"type": "string"}),
        _param("filter-lang", "cql2-text or cql2-json",
               {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}),
        _param("filter-crs", "the CRS of filter geometries (CRS84 unless another offered CRS is named)",
               {"type": "string"}),
        _param("cursor", "keyset paging: take it from the next/prev links as it is", {"type": "string"}),
        f,
    ]
    paths: dict[str, Any] = {
        "/ogc": {"get": {"summary": "Landing page", "operationId": "getLandingPage", "parameters": [f],
                         "responses": _ok("the landing page", "application/json", "text/html")}},
        "/ogc/conformance": {"get": {"summary": "Conformance classes", "operationId": "getConformance",
                                     "parameters": [f],
                                     "responses": _ok("the conformance classes", "application/json")}},
        "/ogc/api": {"get": {"summary": "This document", "operationId": "getApi",
                             "responses": _ok("the API description", OPENAPI_TYPE)}},
        "/ogc/collections": {"get": {"summary": "The collections you may see", "operationId": "getCollections",
                                     "parameters": [f],
                                     "responses": _ok("the collections", "application/json", "text/html")}},
        "/ogc/collections/{collectionId}": {"get": {
            "summary": "A collection", "operationId": "describeCollection", "parameters": [collection, f],
            "responses": _ok("the collection", "application/json", "text/html")}},
        "/ogc/collections/{collectionId}/queryables": {"get": {
            "summary": "What a filter may name", "operationId": "getQueryables", "parameters": [collection, f],
            "responses": _ok("the queryables (JSON Schema)", "application/schema+json")}},
        "/ogc/collections/{collectionId}/items": {"get": {
            "summary": "Features, a page at a time", "operationId": "getFeatures", "parameters": items_params,
            "responses": _ok("a page of features", "application/geo+json", "text/html")}},
        "/ogc/collections/{collectionId}/items/{featureId}": {"get": {
            "summary": "One feature", "operationId": "getFeature",
            "parameters": [collection, _param("featureId", "the feature's id", {"type": "integer"}, "path"),
                           _param("crs", "the CRS of the geometry", crs_schema), f],
            "responses": _ok("the feature", "application/geo+json", "text/html")}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "SaferMap OGC API – Features", "version": "1.0.0",
                 "description": "Cameras, coverage, streets, buildings, safe routes and incidents (at the "
                                "precision the sharing rules give you) for desktop GIS."},
        "servers": [{"url": base}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "safermap_session"}}},
        "paths": paths,
    }
