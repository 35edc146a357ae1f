"""The layer catalog: layers/*.toml, validated once at start-up.

Each file declares one overlay layer: what it reads (a view, or a sharing function called with the
caller), its geometry, zoom range, fields, style, popup and the least role that may see it. Tiles,
TileJSON, embeds and map pages are all driven from here. Every key does something: the models
forbid unknown keys, so a key that nothing reads (or a typo) stops the app at start-up.

How precisely incident locations are shown is not a catalog key: the sharing rules decide it per
partnership, role and agency (`safermap_visible_incidents`), and an embed caps it at its own
precision. A second cap here would be a second place for the same rule.
"""
from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.roles import Role
from app.sharing import SHARING_FUNCTIONS

IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Cluster(BaseModel):
    """Below `max_zoom`, points are shipped as grid cells carrying their count (every incident
    is still represented); from `max_zoom + 1` on, one feature per point."""
    model_config = ConfigDict(extra="forbid")
    max_zoom: int = Field(15, ge=0, le=24)
    cell_px: int = Field(16, ge=2, le=256)  # cell edge in tile pixels (of 256)


class Style(BaseModel):
    """How the map pages draw the layer (passed to their scripts as it is)."""
    model_config = ConfigDict(extra="forbid")
    color: str = "#3388ff"
    fill_color: str | None = None
    fill_opacity: float = Field(default=0.3, ge=0, le=1)
    weight: float = Field(default=1.5, ge=0, le=20)
    radius: float = Field(default=5, ge=0, le=50)
    by: str | None = None                      # a field whose value picks the colour
    colors: dict[str, str] = Field(default_factory=dict)


class Popup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = None                   # a field shown as the popup heading
    fields: list[str] = Field(default_factory=list)


class Filters(BaseModel):
    """Which request filters the layer honours, and the view columns they apply to."""
    model_config = ConfigDict(extra="forbid")
    date: str | None = None                    # from/to apply to this column (a date)
    category: str | None = None                # category applies to this column


class Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    description: str = ""
    # What the layer reads: a view with id, partnership_id and geom columns, scoped here to the
    # caller's partnership; or a sharing function (app.sharing.SHARING_FUNCTIONS) called with the
    # caller's partnership, role, agency and level cap, which does its own scoping and says each
    # row's `level`.
    source: str
    source_kind: Literal["view", "sharing_function"] = "view"
    geometry: Literal["point", "line", "polygon"]
    minzoom: int = Field(0, ge=0, le=24)
    maxzoom: int = Field(22, ge=0, le=24)
    fields: dict[str, Literal["string", "number", "boolean"]]
    least_role: Role = Role.viewer
    versioned_by: list[str]                     # tables whose data version changes the tiles
    filters: Filters = Field(default_factory=Filters)
    cluster: Cluster | None = None
    style: Style = Field(default_factory=Style)
    popup: Popup = Field(default_factory=Popup)
    attribution: str = ""
    visible: bool = True                        # shown when the page opens

    @field_validator("id", "source")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError("must be a lower-case SQL identifier")
        return v

    @field_validator("fields")
    @classmethod
    def _field_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not IDENT.match(name):
                raise ValueError(f"field {name!r} must be a lower-case SQL identifier")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Layer:
        if self.minzoom > self.maxzoom:
            raise ValueError("minzoom must not exceed maxzoom")
        for f in self.popup.fields + ([self.popup.title] if self.popup.title else []):
            if f not in self.fields:
                raise ValueError(f"popup field {f!r} is not among the layer's fields")
        for col in (self.filters.date, self.filters.category, self.style.by):
            if col is not None and not IDENT.match(col):
                raise ValueError(f"{col!r} must be a lower-case SQL identifier")
        if self.cluster and self.geometry != "point":
            raise ValueError("only point layers can be clustered")
        if self.shared and self.source not in SHARING_FUNCTIONS:
            raise ValueError(f"source {self.source!r} is not a sharing function; those are "
                             f"{', '.join(sorted(SHARING_FUNCTIONS))}")
        if not self.shared and self.source in SHARING_FUNCTIONS:
            raise ValueError(f"{self.source!r} is a sharing function: say source_kind = \"sharing_function\"")
        if "incident" in self.versioned_by and not self.shared:
            raise ValueError("a layer of incidents must read them through a sharing function "
                             "(source_kind = \"sharing_function\"), never from a view that ignores the rules")
        return self

    @property
    def shared(self) -> bool:
        """Read through a sharing function: rows of every partnership the rules let the caller see,
        each with its `level`."""
        return self.source_kind == "sharing_function"


class CatalogError(ValueError):
    pass


class Catalog:
    def __init__(self, layers: dict[str, Layer], fingerprint: str) -> None:
        self.layers = layers
        self.fingerprint = fingerprint  # part of every ETag: a catalog change invalidates tiles

    def get(self, layer_id: str) -> Layer | None:
        return self.layers.get(layer_id)

    def visible_to(self, role: str) -> list[Layer]:
        from app.roles import at_least
        return [l for l in self.layers.values() if at_least(role, l.least_role)]

    @classmethod
    def load(cls, directory: Path) -> Catalog:
        layers: dict[str, Layer] = {}
        h = hashlib.sha256()
        for path in sorted(directory.glob("*.toml")):
            raw = path.read_bytes()
            h.update(raw)
            try:
                layer = Layer.model_validate(tomllib.loads(raw.decode()))
            except (tomllib.TOMLDecodeError, ValueError) as e:
                raise CatalogError(f"{path.name}: {e}") from e
            if layer.id != path.stem:
                raise CatalogError(f"{path.name}: id {layer.id!r} must match the file name")
            layers[layer.id] = layer
        return cls(layers, h.hexdigest()[:16])
