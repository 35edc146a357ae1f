"""The Python side of the sharing model. The rules themselves live in SQL, in one function
(`safermap_visible_incidents`, migration 0006) that every face reads incidents through; this
module only names its arguments. The suppression threshold is a setting
(`Settings.suppress_below`, SAFERMAP_SUPPRESS_BELOW).

Levels, least to most: none < aggregate (counts only) < sanitised (anonymous points) < exact.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Literal

from app.settings import get_settings

LEVELS = ("none", "aggregate", "sanitised", "exact")
RANK = {level: i for i, level in enumerate(LEVELS)}

# Where a caller may only count incidents (aggregate), files and OGC items give counts on squares
# of this edge in the partnership's metric CRS (app/ogc/cells.py, app/exports/query.py). One grid
# for every face: counts over two grids could be subtracted to reveal a held-back small count.
AGGREGATE_CELL_M = 250.0

# The set-returning functions that take the caller (partnership, role, agency, level cap) and apply
# the sharing rules: a catalog layer with source_kind = "sharing_function" names one of these.
SHARING_FUNCTIONS = frozenset({"safermap_visible_incidents", "safermap_uncovered_incidents"})
# The function's arguments as bound parameters (the agency may be NULL, so typed explicitly).
FUNCTION_ARGS = "(:p, CAST(:role AS text), CAST(:agency AS integer), CAST(:level_cap AS text))"


def suppress_below() -> int:
    """The process's SAFERMAP_SUPPRESS_BELOW, for code that has no app at hand (analysis, pages).
    Routes read it from the app's own settings."""
    return get_settings().suppress_below


def cap_for(principal: Any) -> str:
    """The highest level a caller may ever get, whatever the rules say: an embed (or any caller
    that carries `max_level`) is capped, people are not."""
    cap = getattr(principal, "max_level", None)
    if cap in RANK:
        return cap
    return "sanitised" if principal.role == "embed" else "exact"


def access_params(principal: Any) -> dict[str, Any]:
    """The bound parameters of the sharing function for this caller."""
    return {"p": principal.partnership_id, "role": principal.role,
            "agency": principal.agency_id, "level_cap": cap_for(principal)}


def access_key(principal: Any) -> tuple:
    """What the result of the sharing function depends on: part of every ETag and cache key."""
    return (principal.partnership_id, principal.role, principal.agency_id, cap_for(principal))


def source_sql(source: str) -> str:
    """The FROM item for a catalog source: a sharing function called with the caller's arguments,
    or the view itself. The name is the catalog's, already checked against its identifier pattern."""
    return f"{source}{FUNCTION_ARGS}" if is_shared(source) else f'"{source}"'


def is_shared(source: str) -> bool:
    """Whether a catalog source is a sharing function (the catalog says so, as source_kind)."""
    return source in SHARING_FUNCTIONS


def suppressed(count: int, all_exact: bool, k: int | None = None) -> bool:
    """A count of 1..k-1 is held back unless the caller sees every counted incident exactly."""
    k = suppress_below() if k is None else k
    return not all_exact and 0 < count < k


# The data sets a caller may see at some level, with that level and the first and last month each
# holds from date_from to date_to (NULL: no bound); the months are NULL when it holds none there.
# Each data set's months come from the (dataset_id, month) index: two index probes per data set,
# not a scan of its incidents.
DATASETS_SQL = f"""
    SELECT d.source_key AS key, d.name, pa.name AS partnership, v.level, d.kind = 'police_uk' AS police_uk,
           (d.name ILIKE '%synthetic%' OR d.source_key ILIKE '%synthetic%') AS synthetic,
           (SELECT min(i.month) FROM incident i WHERE i.dataset_id = v.dataset_id
              AND (CAST(:date_from AS date) IS NULL OR i.month >= CAST(:date_from AS date))
              AND (CAST(:date_to AS date) IS NULL OR i.month <= CAST(:date_to AS date))) AS first,
           (SELECT max(i.month) FROM incident i WHERE i.dataset_id = v.dataset_id
              AND (CAST(:date_from AS date) IS NULL OR i.month >= CAST(:date_from AS date))
              AND (CAST(:date_to AS date) IS NULL OR i.month <= CAST(:date_to AS date))) AS last
    FROM safermap_dataset_levels{FUNCTION_ARGS} AS v
    JOIN dataset d ON d.id = v.dataset_id
    JOIN partnership pa ON pa.id = d.partnership_id
    WHERE v.level <> 'none' AND (CAST(:own AS boolean) IS FALSE OR v.partnership_id = :p)
    ORDER BY pa.name, d.name
"""
DatasetScope = Literal["visible", "own"]


def datasets_query(principal: Any, scope: DatasetScope, date_from: date | None = None,
                   date_to: date | None = None) -> tuple[str, dict[str, Any]]:
    """DATASETS_SQL and its parameters (named, :p style) for a caller. `visible`: the data sets of
    every partnership whose rules show them to the caller, as the sharing function reads them (an
    export says where its rows come from); `own`: those of the caller's own partnership only
    (hotspot analyses use only its own incidents)."""
    return DATASETS_SQL, {**access_params(principal), "own": scope == "own",
                          "date_from": date_from, "date_to": date_to}
