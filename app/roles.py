"""Roles, least to most privileged. Each endpoint declares the least role it needs.

`embed` is not a person: it is what an embedded map's key stands for. It ranks below viewer, so
no route guarded by a least role admits it; only the embed routes (which check the key
themselves) serve it.
"""
from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    embed = "embed"        # an embedded map on a partner intranet: its own routes only
    viewer = "viewer"      # a partner agency: read-only maps
    pcso = "pcso"          # records and verifies cameras on the street
    operator = "operator"  # CCTV control room
    analyst = "analyst"    # imports and exports data
    admin = "admin"        # partnership administration


RANK = {Role.embed: -1, Role.viewer: 0, Role.pcso: 1, Role.operator: 2, Role.analyst: 3, Role.admin: 4}

# Roles a person (a principal with tokens) can hold; an embed is never a principal.
PRINCIPAL_ROLES = tuple(r for r in Role if r is not Role.embed)
PrincipalRole = StrEnum("PrincipalRole", {r.value: r.value for r in PRINCIPAL_ROLES})  # type: ignore[misc]  # mypy cannot read a computed functional Enum; for CLI choices


def at_least(role: str, least: str) -> bool:
    return RANK[Role(role)] >= RANK[Role(least)]
