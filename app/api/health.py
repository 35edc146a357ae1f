from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from app.api.deps import SessionDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the service up and can it reach its database?")
async def health(session: SessionDep) -> dict:
    postgis = (await session.execute(text("SELECT postgis_lib_version()"))).scalar_one()
    return {"status": "ok", "postgis": postgis}
