"""When a walk happens: day or night at that place (astral's sunset), and whether a park or path
tagged with OpenStreetMap `opening_hours` is open then.

Night is when the sun's centre is more than 0.833° below the horizon (the definition of sunset and
sunrise astral uses), computed for the route's place and instant, so it is right in polar summer
and winter too.

`opening_hours` is read only in its simple forms, and anything else is reported as unread (and
treated as open, since we cannot say it is closed):
    24/7 | off | closed | sunrise-sunset | dawn-dusk
    [DAYS] HH:MM-HH:MM[,HH:MM-HH:MM...]   (times may run past midnight: 22:00-02:00; 24:00 ends a day)
    rules joined by "; " (a later rule for the same day replaces an earlier one, as OSM reads them),
where DAYS is a comma-separated list of days or ranges of days, Mo Tu We Th Fr Sa Su (Sa-Mo wraps),
and a rule may end in "off" or "closed". Month, week, holiday (PH, SH), "||" fallbacks and comments
are not read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from astral import Observer
from astral.sun import dawn, dusk, elevation, sunrise, sunset

DAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")
SUN_BELOW = -0.833  # degrees: sunset and sunrise as almanacs give them
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DAY_PART = re.compile(r"^(mo|tu|we|th|fr|sa|su)(?:-(mo|tu|we|th|fr|sa|su))?$")


class Unreadable(ValueError):
    """An opening_hours value outside the simple forms this module reads."""


def is_night(lon: float, lat: float, at: datetime) -> bool:
    """Whether the sun is below the horizon (sunset's definition) at that place and instant."""
    return float(elevation(Observer(latitude=lat, longitude=lon), at)) < SUN_BELOW


def sun_times(lon: float, lat: float, day: date, tz: tzinfo) -> dict[str, datetime | None]:
    """Sunrise and sunset at that place on that local day (None where the sun does not set or rise)."""
    obs = Observer(latitude=lat, longitude=lon)
    out: dict[str, datetime | None] = {}
    for name, fn in (("sunrise", sunrise), ("sunset", sunset)):
        try:
            out[name] = fn(obs, day, tzinfo=tz)
        except ValueError:
            out[name] = None
    return out


def _days(part: str) -> set[int]:
    out: set[int] = set()
    for item in part.split(","):
        m = _DAY_PART.match(item.strip())
        if not m:
            raise Unreadable(part)
        a = DAYS.index(m.group(1))
        b = DAYS.index(m.group(2)) if m.group(2) else a
        i = a
        while True:
            out.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    return out


@dataclass(frozen=True)
class Span:
    """Open from `start` for `minutes` minutes of a day (it may run into the next day)."""
    start: int
    minutes: int


def _check(part: str) -> None:
    """Refuse a times part this module cannot read, whichever day it is for."""
    for item in part.split(","):
        item = item.strip()
        if item in ("sunrise-sunset", "dawn-dusk"):
            continue
        m = _SPAN.match(item)
        if not m:
            raise Unreadable(item)
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 24 or h2 > 48 or m1 > 59 or m2 > 59:
            raise Unreadable(item)


def _spans(part: str, lon: float, lat: float, day: date, tz: tzinfo) -> list[Span]:
    spans = []
    for item in part.split(","):
        item = item.strip()
        if item in ("sunrise-sunset", "dawn-dusk"):
            obs = Observer(latitude=lat, longitude=lon)
            try:
                a, b = ((sunrise(obs, day, tzinfo=tz), sunset(obs, day, tzinfo=tz)) if item == "sunrise-sunset"
                        else (dawn(obs, day, tzinfo=tz), dusk(obs, day, tzinfo=tz)))
            except ValueError as exc:  # the sun does not rise or set that day
                raise Unreadable(item) from exc
            start = a.hour * 60 + a.minute
            spans.append(Span(start, max(0, int((b - a).total_seconds() // 60))))
            continue
        m = _SPAN.match(item)
        if not m:
            raise Unreadable(item)
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 24 or h2 > 48 or m1 > 59 or m2 > 59:
            raise Unreadable(item)
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            end += 24 * 60
        spans.append(Span(start, end - start))
    return spans


def is_open(value: str, at: datetime, lon: float, lat: float) -> bool:
    """Whether a place tagged `opening_hours=value` is open at `at` (aware, in local time).
    Raises Unreadable for forms this module does not read."""
    text = value.strip().lower()
    if text == "24/7":
        return True
    if text in ("off", "closed"):
        return False
    if "||" in text or '"' in text:
        raise Unreadable(value)
    tz = at.tzinfo
    assert tz is not None
    # The rules that decide each weekday: a later rule naming a day replaces what earlier ones said.
    by_day: dict[int, tuple[str, str]] = {}
    for rule in (r.strip() for r in text.split(";")):
        if not rule:
            continue
        closed = rule.endswith(" off") or rule.endswith(" closed") or rule in ("off", "closed")
        if closed:
            rule = rule.rsplit(" ", 1)[0] if " " in rule else ""
        head, _, rest = rule.partition(" ")
        if head and head[0].isalpha() and not head.startswith(("sunrise", "dawn")):
            days, times = _days(head), rest.strip()
        else:
            days, times = set(range(7)), rule
        if not times and not closed:
            times = "00:00-24:00"
        if not closed:
            _check(times)
        for d in days:
            by_day[d] = ("off", "") if closed else ("open", times)
    # Open now if a span of today, or one of yesterday running past midnight, holds the time.
    minute = at.hour * 60 + at.minute
    for offset in (0, 1):
        day = (at - timedelta(days=offset)).date()
        state, times = by_day.get(day.weekday(), ("off", ""))
        if state != "open":
            continue
        for span in _spans(times, lon, lat, day, tz):
            now = minute + offset * 24 * 60
            if span.start <= now < span.start + span.minutes:
                return True
    return False


def local_noon_or_night(token: str, today: date, tz: tzinfo) -> datetime:
    """The instant `time=day` or `time=night` stands for when opening hours are read: 12:00 or 23:00
    local time today."""
    return datetime.combine(today, time(12 if token == "day" else 23), tzinfo=tz)
