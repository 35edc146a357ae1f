"""Query values shared by the API, the analysis and the CLI: bbox, dates, limits. Parsing raises
domain errors (app/domain_errors.py), which app/errors.py maps to a 400; nothing here knows of HTTP."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from app.domain_errors import InvalidPeriod, InvalidValue
from app.ingest.police_uk_parse import CATEGORIES, slugify

CATEGORY_BY_SLUG = {slugify(c): c for c in CATEGORIES}


@dataclass(frozen=True)
class BBox:
    minlon: float
    minlat: float
    maxlon: float
    maxlat: float


def parse_bbox(value: str | None) -> BBox | None:
    """`bbox=minlon,minlat,maxlon,maxlat` in WGS84 (RFC 7946 order)."""
    if value is None or value == "":
        return None
    parts = value.split(",")
    if len(parts) != 4:
        raise InvalidValue("bbox must be four numbers: minlon,minlat,maxlon,maxlat.")
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
    except ValueError as e:
        raise InvalidValue("bbox must be four numbers: minlon,minlat,maxlon,maxlat.") from e
    if not all(math.isfinite(v) for v in (minlon, minlat, maxlon, maxlat)):
        raise InvalidValue("bbox values must be finite numbers.")
    if not (-180 <= minlon <= 180 and -180 <= maxlon <= 180 and -90 <= minlat <= 90 and -90 <= maxlat <= 90):
        raise InvalidValue("bbox is outside -180..180 longitude / -90..90 latitude.")
    if minlon > maxlon or minlat > maxlat:
        raise InvalidValue("bbox minimums must not exceed its maximums.")
    return BBox(minlon, minlat, maxlon, maxlat)


def parse_month_or_date(value: str | None, name: str, end: bool = False) -> date | None:
    """ISO 8601 `YYYY-MM` or `YYYY-MM-DD`. A month as an upper bound means its last day."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 7:
            y, m = int(value[:4]), int(value[5:7])
            if value[4] != "-":
                raise ValueError
            first = date(y, m, 1)
            if not end:
                return first
            nxt = date(y + (m == 12), m % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        return date.fromisoformat(value)
    except (ValueError, IndexError) as e:
        raise InvalidPeriod(f"{name} must be an ISO 8601 date, YYYY-MM or YYYY-MM-DD.") from e


@dataclass(frozen=True)
class Period:
    """Inclusive dates from `from`/`to`; None is open-ended. A month given as `to` means its last day."""
    start: date | None = None
    end: date | None = None

    @property
    def first_month(self) -> date | None:
        """The first day of the month `start` falls in: incidents are dated by month (police.uk gives
        no day), stored as its first day, and a month matches when it overlaps the period."""
        return self.start.replace(day=1) if self.start else None


def parse_period(from_: str | None, to: str | None) -> Period:
    start = parse_month_or_date(from_, "from")
    end = parse_month_or_date(to, "to", end=True)
    if start and end and start > end:
        raise InvalidPeriod("from must not be after to.")
    return Period(start, end)


MAX_VALUES = 50         # categories or data sets in one request
MAX_VALUE_LENGTH = 200


def parse_values(items: list[str] | None, name: str) -> tuple[str, ...]:
    """Repeatable and/or comma-separated values, de-duplicated and sorted (so cache keys are stable)."""
    values = sorted({v.strip() for item in items or [] for v in item.split(",") if v.strip()})
    if len(values) > MAX_VALUES:
        raise InvalidValue(f"At most {MAX_VALUES} values may be given for {name}.")
    if any(len(v) > MAX_VALUE_LENGTH for v in values):
        raise InvalidValue(f"A {name} value is longer than {MAX_VALUE_LENGTH} characters.")
    return tuple(values)


def parse_categories(items: list[str] | None) -> tuple[str, ...]:
    """Category names; police.uk's API slugs ('anti-social-behaviour') stand for their names."""
    return tuple(sorted({CATEGORY_BY_SLUG.get(v, v) for v in parse_values(items, "category")}))


def date_literal(value: date) -> str:
    """A date as an SQL literal; anything else is refused (it is written into the statement).

    Period bounds on `month` are written into statements, not bound: asyncpg prepares each statement
    once per connection, and after five runs PostgreSQL may switch to a generic plan that guesses
    `month >= $n` keeps 0.5% of rows and walks the (partnership_id, month) index to every row of a
    year or two, twice the CPU of the plan made for the real dates."""
    if not isinstance(value, date):
        raise TypeError(f"a period bound must be a date, not {type(value).__name__}")
    return f"DATE '{date(value.year, value.month, value.day).isoformat()}'"
