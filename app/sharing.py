"""The Python side of the sharing model. The rules themselves live in SQL, in one function
(`safermap_visible_incidents`, migration 0006) that every face reads incidents through; this
module only names its arguments and the settings around it.

Levels, least to most: none < aggregate (counts only) < sanitised (anonymous points) < exact.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LEVELS = ("none", "aggregate", "sanitised", "exact")
RANK = {level: i for i, level in enumerate(LEVELS)}

# Catalog sources that are served through a sharing function taking the caller, not as a view.
FUNCTION_SOURCES = {"layer_incidents": "safermap_visible_incidents",
                    "layer_gaps": "safermap_uncovered_incidents"}
# The function's arguments as bound parameters (the agency may be NULL, so typed explicitly).
FUNCTION_ARGS = "(:p, CAST(:role AS text), CAST(:agency AS integer), CAST(:level_cap AS text))"


class SharingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFERMAP_", extra="ignore")
    # Counts shown to anyone without exact access to every counted incident hide groups smaller
    # than this (cells, categories, areas).
    suppress_below: int = Field(default=5, ge=1, le=1000)


@lru_cache
def suppress_below() -> int:
    return SharingSettings().suppress_below


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
    """The FROM item for a catalog source: the view itself, or the sharing function for it."""
    fn = FUNCTION_SOURCES.get(source)
    return f"{fn}{FUNCTION_ARGS}" if fn else f'"{source}"'


def is_shared(source: str) -> bool:
    return source in FUNCTION_SOURCES


def suppressed(count: int, all_exact: bool, k: int | None = None) -> bool:
    """A count of 1..k-1 is held back unless the caller sees every counted incident exactly."""
    k = suppress_below() if k is None else k
    return not all_exact and 0 < count < k
