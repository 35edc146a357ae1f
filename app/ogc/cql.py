"""CQL2 filters (OGC API – Features Part 3), as text or JSON, turned into SQL with bound parameters.

pygeofilter parses either encoding into one tree; this module walks it and accepts only what it
knows: comparisons, LIKE, IN, BETWEEN, IS NULL, AND/OR/NOT, and S_INTERSECTS with a literal geometry
(in `filter-crs`: CRS84 unless the caller names another offered CRS). Properties come from the
collection's queryables (a whitelist mapping each name to a fixed SQL expression); every literal
becomes a bound parameter. Nothing the caller writes is ever part of the SQL text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from app.catalog import Layer
from app.domain_errors import InvalidValue
from app.tiles.sql import ident

MAX_FILTER_CHARS = 4_000
MAX_NODES = 200
Kind = Literal["string", "number", "boolean", "month"]
_MONTH = re.compile(r"^\d{4}-\d{2}$")


@dataclass(frozen=True)
class Queryable:
    sql: str          # a fixed expression over the row alias `t`, from code, never from the caller
    kind: Kind
    description: str = ""


def layer_queryables(layer: Layer) -> dict[str, Queryable]:
    """What a CQL2 filter may name on a catalog layer (OGC collections and exports alike): for
    incidents category, month and data set (and the other text fields); for other layers their
    catalog fields. SQL comes from the catalog's checked identifiers only."""
    out: dict[str, Queryable] = {}
    for name, kind in layer.fields.items():
        if layer.shared and name == "month_label":
            continue
        out[name] = Queryable(f"t.{ident(name)}", "number" if kind == "number" else
                              "boolean" if kind == "boolean" else "string")
    if layer.filters.date:
        out["month"] = Queryable(f"t.{ident(layer.filters.date)}", "month",
                                 "the incident's month, compared as 'YYYY-MM' (police.uk dates by month)")
    if "dataset" in out:
        out["dataset"] = Queryable("t.dataset", "string", "the data set's key, e.g. police-uk:greater-manchester")
    return out


@dataclass
class Compiled:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


class _Compiler:
    def __init__(self, queryables: dict[str, Queryable], prefix: str, srid: int, lat_first: bool) -> None:
        self.queryables = queryables
        self.prefix = prefix
        self.srid, self.lat_first = srid, lat_first  # filter-crs: how literal geometries are read
        self.params: dict[str, Any] = {}
        self.nodes = 0

    def bind(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def attribute(self, node: Any) -> Queryable:
        if not isinstance(node, ast.Attribute):
            raise InvalidValue("filter: the left side of a comparison must be a property name.")
        q = self.queryables.get(node.name)
        if q is None:
            raise InvalidValue(f"filter: {node.name[:60]!r} is not queryable here; the queryables are "
                               f"{', '.join(sorted(self.queryables))}.")
        return q

    def literal(self, q: Queryable, value: Any) -> str:
        """A bound literal of the property's type, or a 400 saying what was expected."""
        if isinstance(value, ast.Node | values.Geometry | values.Envelope | list | tuple):
            raise InvalidValue("filter: compare a property with a literal value.")
        if q.kind == "month":
            return self.bind(_month(value))
        if q.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidValue("filter: a number is expected here.")
            return f"CAST({self.bind(float(value))} AS float8)"
        if q.kind == "boolean":
            if not isinstance(value, bool):
                raise InvalidValue("filter: true or false is expected here.")
            return self.bind(value)
        if not isinstance(value, str):
            raise InvalidValue("filter: a quoted string is expected here.")
        return f"CAST({self.bind(value[:500])} AS text)"

    def walk(self, node: Any) -> str:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise InvalidValue(f"filter is too complex (more than {MAX_NODES} terms).")
        if isinstance(node, ast.And | ast.Or):
            op = "AND" if isinstance(node, ast.And) else "OR"
            return f"({self.walk(node.lhs)} {op} {self.walk(node.rhs)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self.walk(node.sub_node)})"
        comparisons = {ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
                       ast.GreaterThan: ">", ast.GreaterEqual: ">="}
        for kind, op in comparisons.items():
            if type(node) is kind:
                q = self.attribute(node.lhs)
                return f"({q.sql} {op} {self.literal(q, node.rhs)})"
        if isinstance(node, ast.Like):
            q = self.attribute(node.lhs)
            if q.kind != "string":
                raise InvalidValue("filter: LIKE applies to text properties only.")
            op = ("NOT " if node.not_ else "") + ("ILIKE" if node.nocase else "LIKE")
            return f"({q.sql} {op} {self.literal(q, node.pattern)})"
        if isinstance(node, ast.In):
            q = self.attribute(node.lhs)
            if not node.sub_nodes or len(node.sub_nodes) > 100:
                raise InvalidValue("filter: IN takes 1 to 100 values.")
            items = ", ".join(self.literal(q, v) for v in node.sub_nodes)
            return f"({q.sql} {'NOT ' if node.not_ else ''}IN ({items}))"
        if isinstance(node, ast.Between):
            q = self.attribute(node.lhs)
            low, high = self.literal(q, node.low), self.literal(q, node.high)
            return f"({q.sql} {'NOT ' if node.not_ else ''}BETWEEN {low} AND {high})"
        if isinstance(node, ast.IsNull):
            q = self.attribute(node.lhs)
            return f"({q.sql} IS {'NOT ' if node.not_ else ''}NULL)"
        if isinstance(node, ast.GeometryIntersects):
            return self.intersects(node)
        if isinstance(node, bool):  # a bare TRUE / FALSE
            return "true" if node else "false"
        raise InvalidValue(f"filter: {type(node).__name__} is not supported; use comparisons, LIKE, IN, "
                           "BETWEEN, IS NULL, AND, OR, NOT and S_INTERSECTS.")

    def intersects(self, node: Any) -> str:
        attr, geom = node.lhs, node.rhs
        if isinstance(attr, values.Geometry | values.Envelope):
            attr, geom = geom, attr
        if not isinstance(attr, ast.Attribute) or attr.name not in ("geometry", "geom"):
            raise InvalidValue("filter: S_INTERSECTS takes the property 'geometry' and a literal geometry.")
        if isinstance(geom, ast.Function) and geom.name.lower() == "bbox":  # BBOX(x0, y0, x1, y1)
            args = geom.arguments
            if len(args) != 4 or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
                raise InvalidValue("filter: BBOX takes four numbers (in filter-crs).")
            geom = values.Envelope(*(float(a) for a in args))
        if isinstance(geom, values.Envelope):
            corners = [self.bind(float(v)) for v in (geom.x1, geom.y1, geom.x2, geom.y2)]
            shape = f"ST_MakeEnvelope({', '.join(corners)}, {int(self.srid)})"
        elif isinstance(geom, values.Geometry):
            text = json.dumps(geom.geometry)
            if len(text) > 100_000:
                raise InvalidValue("filter: the geometry is too large.")
            shape = f"ST_SetSRID(ST_GeomFromGeoJSON(CAST({self.bind(text)} AS text)), {int(self.srid)})"
        else:
            raise InvalidValue("filter: S_INTERSECTS needs a literal geometry (WKT or GeoJSON, in filter-crs).")
        if self.lat_first:  # EPSG:4326 lists latitude first; the stored geometry is longitude first
            shape = f"ST_FlipCoordinates({shape})"
        if self.srid != 4326:  # metres (EPSG:27700, the partnership's CRS) through PROJ
            shape = f"ST_Transform({shape}, 4326)"
        return f"ST_Intersects(t.geom, {shape})"


def _month(value: Any) -> date:
    """A month property compares by month: 'YYYY-MM', 'YYYY-MM-DD', DATE(...) or TIMESTAMP(...)
    all name the first day of their month (police.uk dates incidents by month)."""
    if isinstance(value, datetime):
        return value.date().replace(day=1)
    if isinstance(value, date):
        return value.replace(day=1)
    if isinstance(value, str):
        try:
            if _MONTH.match(value):
                return date(int(value[:4]), int(value[5:7]), 1)
            return date.fromisoformat(value[:10]).replace(day=1)
        except ValueError:
            pass
    raise InvalidValue("filter: a month is 'YYYY-MM' (or a date).")


LANGUAGES = ("cql2-text", "cql2-json")


def compile_filter(text: str, queryables: dict[str, Queryable], prefix: str = "f", lang: str = "cql2-text",
                   srid: int = 4326, lat_first: bool = False) -> Compiled:
    """A SQL condition over the alias `t` with its parameters, or a 400 naming what is wrong.
    `srid`/`lat_first` say how the filter's geometries are written (filter-crs; CRS84 by default)."""
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidValue(f"filter is longer than {MAX_FILTER_CHARS:,} characters.")
    if lang not in LANGUAGES:
        raise InvalidValue(f"filter-lang {lang[:40]!r} is not supported; use {' or '.join(LANGUAGES)}.")
    try:
        if lang == "cql2-json":
            document = json.loads(text)
            if not isinstance(document, dict | bool):
                raise ValueError("a CQL2 JSON filter is an object")
            tree = parse_cql2_json(document)
        else:
            tree = parse_cql2_text(text)
    except RecursionError as e:
        raise InvalidValue("filter is nested too deeply.") from e
    except Exception as e:  # lark's and json's errors, and the parsers' own on odd literals
        said = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise InvalidValue(f"filter is not valid {'CQL2 JSON' if lang == 'cql2-json' else 'CQL2 text'}: {said}") from e
    compiler = _Compiler(queryables, prefix, srid, lat_first)
    return Compiled(compiler.walk(tree), compiler.params)
