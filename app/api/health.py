from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field
from sqlalchemy import text

from app.api.deps import SessionDep
from app.api.schemas import ApiModel

router = APIRouter(tags=["health"])


class Health(ApiModel):
    status: Literal["ok"]
    postgis: str = Field(description="the PostGIS library version the database runs")
    live: Literal["listening", "database"] = Field(
        description="'listening': this worker answers known callers and data versions from memory kept "
                    "exact by LISTEN/NOTIFY; 'database': it reads them from the database (starting, or "
                    "its listening connection was lost and is being made again)")
    live_generation: int = Field(description="how many times this worker has dropped and re-read that memory")


@router.get("/health", summary="Is the service up and can it reach its database?", response_model=Health)
async def health(request: Request, session: SessionDep) -> dict:
    postgis = (await session.execute(text("SELECT postgis_lib_version()"))).scalar_one()
    return {"status": "ok", "postgis": postgis, **request.app.state.live.status()}
