"""CQL2-text filters (OGC API – Features Part 3) turned into SQL with bound parameters.

pygeofilter parses the text; this module walks its tree and accepts only what it knows: comparisons,
LIKE, IN, BETWEEN, IS NULL, AND/OR/NOT, and S_INTERSECTS with a literal geometry (CRS84). Properties
come from the collection's queryables (a whitelist mapping each name to a fixed SQL expression);
every literal becomes a bound parameter. Nothing the caller writes is ever part of the SQL text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pygeofilter import ast, values
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from app.domain_errors import InvalidValue

MAX_FILTER_CHARS = 4_000
MAX_NODES = 200
Kind = Literal["string", "number", "boolean", "month"]
_MONTH = re.compile(r"^\d{4}-\d{2}$")


@dataclass(frozen=True)
class Queryable:
    sql: str          # a fixed expression over the row alias `t`, from code, never from the caller
    kind: Kind
    description: str = ""


@dataclass
class Compiled:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


class _Compiler:
    def __init__(self, queryables: dict[str, Queryable], prefix: str) -> None:
        self.queryables = queryables
        self.prefix = prefix
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
                raise InvalidValue("filter: BBOX takes four numbers (CRS84).")
            geom = values.Envelope(*(float(a) for a in args))
        if isinstance(geom, values.Envelope):
            return (f"ST_Intersects(t.geom, ST_MakeEnvelope({self.bind(float(geom.x1))}, {self.bind(float(geom.y1))}, "
                    f"{self.bind(float(geom.x2))}, {self.bind(float(geom.y2))}, 4326))")
        if not isinstance(geom, values.Geometry):
            raise InvalidValue("filter: S_INTERSECTS needs a literal geometry (WKT, in CRS84).")
        shape = json.dumps(geom.geometry)
        if len(shape) > 100_000:
            raise InvalidValue("filter: the geometry is too large.")
        return f"ST_Intersects(t.geom, ST_SetSRID(ST_GeomFromGeoJSON(CAST({self.bind(shape)} AS text)), 4326))"


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


def compile_filter(text: str, queryables: dict[str, Queryable], prefix: str = "f") -> Compiled:
    """A SQL condition over the alias `t` with its parameters, or a 400 naming what is wrong."""
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidValue(f"filter is longer than {MAX_FILTER_CHARS:,} characters.")
    try:
        tree = parse_cql2_text(text)
    except RecursionError as e:
        raise InvalidValue("filter is nested too deeply.") from e
    except Exception as e:  # lark's errors, and the parser's own on odd literals
        raise InvalidValue(f"filter is not valid CQL2 text: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from e
    compiler = _Compiler(queryables, prefix)
    return Compiled(compiler.walk(tree), compiler.params)
