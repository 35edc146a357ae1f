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
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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


# The id `w` rows beyond a key in the incident table (an index-only scan): the far edge of a window.
EDGE_ABOVE = text("SELECT id FROM incident WHERE id > :k ORDER BY id OFFSET :w LIMIT 1")
EDGE_BELOW = text("SELECT id FROM incident WHERE id < :k ORDER BY id DESC OFFSET :w LIMIT 1")
FIRST_WINDOW = 500


async def fetch_windowed(session: AsyncSession, select: str, params: dict[str, Any], cursor: Cursor | None,
                         need: int) -> list[Any]:
    """Up to `need` rows of `select` (a statement over the alias `t` with a `{range}` placeholder and
    no ORDER BY/LIMIT) beyond the cursor, in id order (descending for prev), for collections of
    incidents read through the sharing function.

    The planner cannot carry the incident key's order through the sharing function (a union of two
    joins), so "ORDER BY id LIMIT n" would read and sort every visible row on every page (1.6 s a
    page at a million rows). A window of ids beyond the key, found on the primary key alone, lets
    each page read only that window; a window that holds too few visible rows (rules, filters or
    other partnerships' rows thin it out) is followed by one four times wider, so a sparse selection
    costs a few more steps and never misses a row."""
    forward = cursor is None or cursor.direction == "next"
    key = -1 if cursor is None else cursor.key
    window = max(FIRST_WINDOW, need + need // 8)
    rows: list[Any] = []
    while len(rows) < need:
        edge = (await session.execute(EDGE_ABOVE if forward else EDGE_BELOW, {"k": key, "w": window - 1})).scalar()
        if forward:
            cond = "t.id > :page_k" + ("" if edge is None else " AND t.id <= :page_edge")
        else:
            cond = "t.id < :page_k" + ("" if edge is None else " AND t.id >= :page_edge")
        order = "t.id" if forward else "t.id DESC"
        statement = select.replace("{range}", cond) + f" ORDER BY {order} LIMIT :page_n"
        got = (await session.execute(text(statement),
                                     {**params, "page_k": key, "page_edge": edge, "page_n": need - len(rows)})).all()
        rows += got
        if edge is None:
            break
        key, window = edge, window * 4
    return rows
