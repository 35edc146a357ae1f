"""What analysis, ingest and query parsing refuse, said in their own terms: nothing here knows of HTTP.

The API answers each type with the status that app/errors.py (STATUS_CODES) gives it; the CLI prints
the message and exits non-zero. Raise the most specific type: it is what the status is chosen by.
"""
from __future__ import annotations


class DomainError(Exception):
    """A request the domain cannot carry out. `detail` is a message a person understands; `extra`
    names what it is about (e.g. incident=2) and travels with the answer."""

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidValue(DomainError):
    """A value given is malformed or outside its range (a bbox, a cell size, a method's name)."""


class InvalidPeriod(InvalidValue):
    """A date or period that cannot be read, ends before it starts, or lies in the future."""


class TooLarge(InvalidValue):
    """The work asked for is larger than one request may ask (grid cells, candidate points)."""


class UnknownItem(DomainError):
    """No such thing in the caller's partnership (a camera id, a partnership)."""


class NotEnoughData(DomainError):
    """The data to answer is not there yet (no mapped incidents in a period, no street network)."""


class OutOfArea(DomainError):
    """A place outside what the data covers (too far from every walkable street)."""


class NoRoute(DomainError):
    """No walking route over the imported streets joins two places."""


class ImportRefused(DomainError):
    """An import that loads nothing: an unknown partnership, a missing file, a file of another kind."""
