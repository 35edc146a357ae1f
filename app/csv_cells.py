"""CSV cells a spreadsheet will not run as formulas ("CSV injection", OWASP).

Excel and LibreOffice take a cell that starts with =, +, -, @, a tab or a carriage return as a
formula, and the text in our CSVs comes from partner data and callers (categories, street names,
free text, audit targets). Such text gets a leading single quote, as OWASP advises: the spreadsheet
shows it as text. Only text is touched: numbers are written as numbers (a negative longitude or
easting, -2.24, must stay a number), so callers pass typed values, never numbers already as text.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """`value`, with a leading ' when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(TRIGGERS):
        return "'" + value
    return value


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]


def guard(text_columns: Sequence[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function that defends the text columns (by position) of a row, for rows of many columns
    of which only some hold text: the others are not looked at, and a row with nothing to defend
    (nearly all of them) is passed on as it is, not copied."""
    at = tuple(text_columns)

    def defend(r: Sequence[Any]) -> Sequence[Any]:
        for i in at:
            v = r[i]
            if isinstance(v, str) and v.startswith(TRIGGERS):
                return [cell(v) if j in at else v for j, v in enumerate(r)]
        return r

    return defend
