"""Keyset paging for OGC items: every collection is ordered by its unique `id`, and the `next` and
`prev` links carry an opaque cursor: the key to continue after (or before) and a digest of the
selection it belongs to. A page is "ids above k", never an offset, so under concurrent inserts no row
is skipped or repeated, and page n costs what page 1 costs. A cursor given with another selection
(another filter, bbox, datetime) is refused rather than silently applied to it.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from app.domain_errors import InvalidValue

MAX_KEY = 2**63 - 1


@dataclass(frozen=True)
class Cursor:
    direction: Literal["next", "prev"]
    key: int          # continue with ids above (next) or below (prev) this one


def selection_digest(parts: dict[str, object]) -> str:
    """A short digest of what a page selects (collection, filters): a cursor is valid only for it."""
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def encode(cursor: Cursor, digest: str) -> str:
    raw = json.dumps({"d": cursor.direction[0], "k": cursor.key, "s": digest}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str | None, digest: str) -> Cursor | None:
    """The cursor in a `cursor` parameter, or a 400 when it is malformed or for another selection."""
    if token is None or token == "":
        return None
    if len(token) > 200:
        raise InvalidValue("cursor is not one this server made (follow the next/prev links as they are).")
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        direction, key, sel = body["d"], body["k"], body["s"]
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidValue("cursor is not one this server made (follow the next/prev links as they are).") from e
    if direction not in ("n", "p") or not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= MAX_KEY:
        raise InvalidValue("cursor is not one this server made (follow the next/prev links as they are).")
    if sel != digest:
        raise InvalidValue("cursor belongs to another selection (filter, bbox, datetime or collection): "
                           "start again without it.")
    return Cursor("next" if direction == "n" else "prev", key)
