"""How a pipeline answer goes over HTTP: 304, 204 for an empty tile, else the bytes; always with
the ETag and the same caching headers."""
from __future__ import annotations

from starlette.responses import Response

from app.tiles.pipeline import Answer, NotModified

# Tiles always revalidate: a control room must never look at a stale camera, and a revalidation
# costs no database round trip (304 from the data versions held in memory, app/live_state.py; no
# tile drawn). They belong to one caller's access.
CACHE_CONTROL = "private, max-age=0, must-revalidate"
VARY = "Authorization, Cookie"


def respond(answer: Answer, extra_headers: dict[str, str] | None = None) -> Response:
    headers = {"ETag": answer.etag, "Cache-Control": CACHE_CONTROL, "Vary": VARY, **(extra_headers or {})}
    if isinstance(answer, NotModified):
        return Response(status_code=304, headers=headers)
    if not answer.data:  # an empty tile: no content, but still cacheable and revalidatable
        return Response(status_code=204, headers=headers)
    return Response(answer.data, media_type=answer.media_type, headers=headers)
