"""Typed dependencies, so every route reads the same way."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import SESSION_COOKIE, Principal, principal_from_session, principal_from_token
from app.catalog import Catalog
from app.errors import Unauthorized
from app.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for the request: autocommit for safe methods (no transaction round trips),
    a transaction for writes (committed by the handler, rolled back otherwise)."""
    maker = request.app.state.read_sessionmaker if request.method in SAFE_METHODS else request.app.state.sessionmaker
    async with maker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """The caller: a bearer token, else the signed session cookie. Nothing anonymous."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use 'Authorization: Bearer <token>'.")
        return await principal_from_token(session, token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await principal_from_session(session, request.app.state.sessions.decode(cookie))
    raise Unauthorized("Sign in, or send 'Authorization: Bearer <token>'.")


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def least_role(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits `role` and every role above it."""

    async def dep(principal: CurrentPrincipal) -> Principal:
        principal.require(role)
        return principal

    dep.least_role = role  # type: ignore[attr-defined]  # read by the route/role table test
    return dep


Viewer = Annotated[Principal, Depends(least_role("viewer"))]
Pcso = Annotated[Principal, Depends(least_role("pcso"))]
Operator = Annotated[Principal, Depends(least_role("operator"))]
Analyst = Annotated[Principal, Depends(least_role("analyst"))]
Admin = Annotated[Principal, Depends(least_role("admin"))]
