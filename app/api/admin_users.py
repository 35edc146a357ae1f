"""Administrators manage the people of their own partnership: the /admin/users page (plain form
posts, each with the CSRF token) and the same operations as JSON under /api/users."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from app import audit, passwords, users
from app.api.deps import Admin, SessionDep, SettingsDep
from app.api.maps import page_role
from app.auth import Principal, end_sessions
from app.errors import Conflict, Forbidden
from app.models import Partnership
from app.pages import admin_users as page
from app.security import check_csrf, client_ip, page_csrf_token

router = APIRouter(prefix="/admin", tags=["admin"])
api_router = APIRouter(prefix="/api/users", tags=["admin"])

PageAdmin = Annotated[Principal | None, Depends(page_role("admin"))]
NO_STORE = {"Cache-Control": "no-store"}
# Messages after a form post (post/redirect/get): the query names one of these, never free text.
DONE = {"role": "Role changed; their sessions were ended.", "disabled": "User disabled and signed out.",
        "enabled": "User enabled.", "signed-out": "Their sessions were ended.", "revoked": "Token revoked."}
CsrfField = Annotated[str, Form(max_length=200)]


def _to_sign_in() -> RedirectResponse:
    return RedirectResponse("/sign-in?next=" + quote("/admin/users", safe="/"), status_code=303)


async def _render(request: Request, session, settings, me: Principal, message: str = "",
                  secret: tuple[str, str] | None = None, status: int = 200) -> HTMLResponse:
    name = (await session.execute(select(Partnership.name).where(Partnership.id == me.partnership_id))).scalar_one()
    body = page.admin_users_html(
        settings.static_dir, csrf=page_csrf_token(request), me_id=me.id, me_name=me.name, partnership=name,
        users=list(await users.list_users(session, me.partnership_id)),
        tokens=list(await users.list_tokens(session, me.partnership_id)),
        roles=users.USER_ROLES, message=message, secret=secret)
    return HTMLResponse(body, status_code=status, headers={**NO_STORE, "Content-Security-Policy": page.CSP})


def _csrf_or_403(request: Request, token: str) -> None:
    if not check_csrf(request, token):
        raise Forbidden("The form has expired or did not come from this site; reload the page and try again.")


def _back(done: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/users?done={done}", status_code=303)


@router.get("/users", response_class=HTMLResponse, summary="The users page (administrators)")
async def users_page(request: Request, session: SessionDep, settings: SettingsDep, me: PageAdmin,
                     done: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    if me is None:
        return _to_sign_in()
    return await _render(request, session, settings, me, DONE.get(done or "", ""))


@router.post("/users", response_class=HTMLResponse, summary="Add a user (form post)")
async def add_user_form(request: Request, session: SessionDep, settings: SettingsDep, me: PageAdmin,
                        csrf_token: CsrfField = "", name: Annotated[str, Form(max_length=200)] = "",
                        email: Annotated[str, Form(max_length=254)] = "",
                        role: Annotated[str, Form(max_length=20)] = "viewer",
                        agency: Annotated[str, Form(max_length=200)] = "") -> Response:
    if me is None:
        return _to_sign_in()
    _csrf_or_403(request, csrf_token)
    password = passwords.generate()
    uid = await users.add_user(session, me.partnership_id, name=name, email=email, role=role,
                               agency=agency, password=password)
    await audit.record(session, "user.add", principal=me, target=f"principal:{uid}",
                       detail={"name": name, "email": email, "role": role, "agency": agency},
                       ip=client_ip(request.scope))
    await session.commit()
    return await _render(request, session, settings, me, f"Added {name}.", ("Their password", password))


async def _target(session, me: Principal, user_id: int) -> users.User:
    return await users.get_user(session, me.partnership_id, user_id)


@router.post("/users/{user_id}/role", summary="Change a user's role (form post)")
async def role_form(user_id: int, request: Request, session: SessionDep, me: PageAdmin,
                    csrf_token: CsrfField = "", role: Annotated[str, Form(max_length=20)] = "") -> Response:
    if me is None:
        return _to_sign_in()
    _csrf_or_403(request, csrf_token)
    await _change_role(request, session, me, user_id, role)
    return _back("role")


async def _change_role(request: Request, session, me: Principal, user_id: int, role: str) -> None:
    user = await _target(session, me, user_id)
    if user.id == me.id and role != "admin":
        raise Conflict("You cannot take away your own admin role; ask another administrator.")
    await users.set_role(session, user.id, role)
    await audit.record(session, "user.update", principal=me, target=f"principal:{user.id}",
                       detail={"role": {"before": user.role, "after": role}}, ip=client_ip(request.scope))
    await session.commit()


async def _set_disabled(request: Request, session, me: Principal, user_id: int, disabled: bool) -> None:
    user = await _target(session, me, user_id)
    if user.id == me.id and disabled:
        raise Conflict("You cannot disable yourself.")
    await users.set_disabled(session, user.id, disabled)
    await audit.record(session, "user.disable" if disabled else "user.update", principal=me,
                       target=f"principal:{user.id}",
                       detail={"disabled": {"before": user.disabled, "after": disabled}}, ip=client_ip(request.scope))
    await session.commit()


@router.post("/users/{user_id}/disable", summary="Disable a user and end their sessions (form post)")
async def disable_form(user_id: int, request: Request, session: SessionDep, me: PageAdmin,
                       csrf_token: CsrfField = "") -> Response:
    if me is None:
        return _to_sign_in()
    _csrf_or_403(request, csrf_token)
    await _set_disabled(request, session, me, user_id, True)
    return _back("disabled")


@router.post("/users/{user_id}/enable", summary="Enable a disabled user (form post)")
async def enable_form(user_id: int, request: Request, session: SessionDep, me: PageAdmin,
                      csrf_token: CsrfField = "") -> Response:
    if me is None:
        return _to_sign_in()
    _csrf_or_403(request, csrf_token)
    await _set_disabled(request, session, me, user_id, False)
    return _back("enabled")


@router.post("/users/{user_id}/reset-password", response_class=HTMLResponse,
             summary="Give a user a new password, shown once (form post)")
async def reset_password_form(user_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                              me: PageAdmin, csrf_token: CsrfField = "") -> Response:
    if me is None:
        return _to_sign_in()
    _csrf_or_403(request, csrf_token)
    user = await _target(session, me, user_id)
    password = passwords.generate()
    await users.set_password(session, user.id, password)
    await audit.record(session, "user.update", principal=me, target=f"principal:{user.id}",
                       detail={"password": "reset"}, ip=client_ip(request.scope))
    await session.commit()
    return await _render(request, session, settings, me, f"New password for {user.name}.",
                         ("Their new password", password))


@router.post("/users/{user_id}/sign-out", summary="End every session of a user (form post)")
async def sign_out_user_form(user_id: int, request: Request, session: SessionDep, me: PageAdmin,
                             csrf_token: CsrfField = "") -> Response:
    if me is None:
        return _to_sign_in()
    _csrf_or_403(request, csrf_token)
    user = await _target(session, me, user_id)
    await end_sessions(session, user.id)
    await audit.record(session, "user.update", principal=me, target=f"principal:{user.id}",
                       detail={"sessions": "ended"}, ip=client_ip(request.scope))
    await session.commit()
    return _back("signed-out")


@router.post("/tokens/{token_id}/revoke", summary="Revoke any API token of the partnership (form post)")
async def revoke_token_form(token_id: int, request: Request, session: SessionDep, me: PageAdmin,
                            csrf_token: CsrfField = "") -> Response:
    if me is None:
        return _to_sign_in()
    _csrf_or_403(request, csrf_token)
    owner = await users.revoke_token(session, me.partnership_id, token_id)
    await audit.record(session, "token.revoke", principal=me, target=f"token:{token_id}",
                       detail={"owner": owner}, ip=client_ip(request.scope))
    await session.commit()
    return _back("revoked")


# -- the same as JSON --------------------------------------------------------------------------------

class UserOut(BaseModel):
    id: int
    name: str
    email: str | None
    role: str
    agency: str | None
    disabled_at: datetime | None
    last_sign_in_at: datetime | None
    locked: bool | None
    created_at: datetime


class UserIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)
    email: str = Field(..., max_length=254)
    role: str = Field(..., max_length=20)
    agency: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=1024, description="Generated and returned once when omitted")


class UserAdded(BaseModel):
    id: int
    password: str | None = Field(None, description="The generated password, shown this once (absent when "
                                 "you gave one)")


class UserPatch(BaseModel):
    role: str | None = Field(None, max_length=20)
    disabled: bool | None = None


@api_router.get("", summary="Users of your partnership (at most 1000)", response_model=list[UserOut])
async def list_users(session: SessionDep, me: Admin) -> list[UserOut]:
    return [UserOut(**r) for r in await users.list_users(session, me.partnership_id)]


# (answered as a JSONResponse for its no-store header: the model documents the answer)
@api_router.post("", status_code=201, summary="Add a user; a generated password is returned once",
                 response_model=UserAdded)
async def add_user(body: UserIn, request: Request, session: SessionDep, me: Admin) -> JSONResponse:
    password = body.password or passwords.generate()
    uid = await users.add_user(session, me.partnership_id, name=body.name, email=body.email, role=body.role,
                               agency=body.agency, password=password)
    await audit.record(session, "user.add", principal=me, target=f"principal:{uid}",
                       detail={"name": body.name, "email": body.email, "role": body.role, "agency": body.agency},
                       ip=client_ip(request.scope))
    await session.commit()
    out = {"id": uid, **({} if body.password else {"password": password})}
    return JSONResponse(out, status_code=201, headers=NO_STORE)


@api_router.patch("/{user_id}", status_code=204,
                  summary="Change a user's role or disable/enable them (ends their sessions)")
async def patch_user(user_id: int, body: UserPatch, request: Request, session: SessionDep, me: Admin) -> Response:
    if body.role is not None:
        await _change_role(request, session, me, user_id, body.role)
    if body.disabled is not None:
        await _set_disabled(request, session, me, user_id, body.disabled)
    if body.role is None and body.disabled is None:
        await _target(session, me, user_id)
    return Response(status_code=204)
