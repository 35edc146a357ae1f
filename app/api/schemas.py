"""Response models several routers share: GeoJSON (RFC 7946) and a period (errors: app/errors.py).

Routes declare `response_model=` with these or their own, so the OpenAPI document says what each
answer holds. Models forbid undeclared fields: a handler that starts sending a new field fails its
tests until the field is declared here, instead of the document silently falling behind.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Geometry(ApiModel):
    """A GeoJSON geometry in WGS84 lon/lat."""
    type: Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"]
    coordinates: list[Any]


class Feature(ApiModel):
    type: Literal["Feature"] = "Feature"
    id: int | str | None = None
    geometry: Geometry | None
    properties: dict[str, Any]


class FeatureCollection(ApiModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature]


class Period(ApiModel):
    """An inclusive period as ISO dates; null is open-ended (or: no data to fill it from)."""
    from_: str | None = Field(alias="from")
    to: str | None
