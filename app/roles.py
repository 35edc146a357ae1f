"""Roles, least to most privileged. Each endpoint declares the least role it needs."""
from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"      # a partner agency: read-only maps
    pcso = "pcso"          # records and verifies cameras on the street
    operator = "operator"  # CCTV control room
    analyst = "analyst"    # imports and exports data
    admin = "admin"        # partnership administration


RANK = {Role.viewer: 0, Role.pcso: 1, Role.operator: 2, Role.analyst: 3, Role.admin: 4}


def at_least(role: str, least: str) -> bool:
    return RANK[Role(role)] >= RANK[Role(least)]
