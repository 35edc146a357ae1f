from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy import text

from app.api.deps import SessionDep
from app.api.schemas import ApiModel

router = APIRouter(tags=["health"])


class Health(ApiModel):
    status: Literal["ok"]
    postgis: str = Field(description="the PostGIS library version the database runs")


@router.get("/health", summary="Is the service up and can it reach its database?", response_model=Health)
async def health(session: SessionDep) -> dict:
    postgis = (await session.execute(text("SELECT postgis_lib_version()"))).scalar_one()
    return {"status": "ok", "postgis": postgis}
