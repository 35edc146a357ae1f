"""The app floor: a bare FastAPI route returning one tile's bytes (the file BENCH_TILE), run under
the same uvicorn as SaferMap by bench/hot_bench.py. Whatever SaferMap spends above this on a cached
tile or a 304 is its own: authentication, routing, the ETag, the cache, its middleware."""
from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response

DATA = Path(os.environ["BENCH_TILE"]).read_bytes()
MVT = "application/vnd.mapbox-vector-tile"

app = FastAPI()


@app.get("/tile")
async def tile() -> Response:
    return Response(DATA, media_type=MVT)


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}
