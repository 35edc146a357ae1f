"""Three-way merge of a camera change made on an old version: no silent "last writer wins".

A PCSO's change is based on version N (what the device showed); the camera may be at version M > N
by now. With revision N as the base (camera_revision, kept by a trigger) each field the change sends:

  - that the change leaves as it was at N: nothing to do (a device may send every field);
  - that only the change moved (the camera still has N's value): applied;
  - that both moved to the same value: nothing to do;
  - that both moved to different values: a conflict, answered with yours, theirs and base so that
    the PCSO sees both values and chooses (the API's 409).

Without a base (no revision N: history from before revisions, or a made-up version) every field
that differs from the camera now is a conflict: nothing is overwritten unseen.

Values are compared as the API shows them (numbers, text, [lon, lat]); an owner agency by its id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldConflict:
    field: str
    yours: Any
    theirs: Any
    base: Any


@dataclass(frozen=True)
class Merge:
    apply: dict[str, Any]             # the fields to write onto the camera as it is now
    conflicts: list[FieldConflict]


def merge(yours: dict[str, Any], current: dict[str, Any], base: dict[str, Any] | None) -> Merge:
    apply: dict[str, Any] = {}
    conflicts: list[FieldConflict] = []
    for field, mine in yours.items():
        now = current.get(field)
        if base is None:
            if mine != now:
                conflicts.append(FieldConflict(field, mine, now, None))
            continue
        was = base.get(field)
        if mine == was or mine == now:
            continue
        if now == was:
            apply[field] = mine
        else:
            conflicts.append(FieldConflict(field, mine, now, was))
    return Merge(apply, conflicts)
