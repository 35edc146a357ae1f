"""One place that maps exceptions to RFC 9457 problem+json answers, so handlers need no try/except.

Database errors and other surprises are logged with a request id and answered without detail:
a client never sees SQL or a stack trace.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("safermap")
PROBLEM = "application/problem+json"


class AppError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(AppError):
    status, title = 400, "Bad request"


class Unauthorized(AppError):
    status, title = 401, "Not signed in"


class Forbidden(AppError):
    status, title = 403, "Not allowed"


class NotFound(AppError):
    status, title = 404, "Not found"


class Conflict(AppError):
    status, title = 409, "Conflict"


class Gone(AppError):
    status, title = 410, "Gone"


class PayloadTooLarge(AppError):
    status, title = 413, "Request too large"


class UnsupportedMediaType(AppError):
    status, title = 415, "Unsupported media type"


class Unprocessable(AppError):
    status, title = 422, "Invalid input"


def problem(request: Request, status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": str(request.url.path), **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="safermap"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _describe(errors: Sequence[Any]) -> tuple[str, list[dict]]:
    items = []
    for e in errors:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        items.append({"field": loc or "request", "message": e.get("msg", "invalid")})
    first = items[0] if items else {"field": "request", "message": "invalid"}
    return f"{first['field']}: {first['message']}", items


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a database error, however deeply the driver wrapped it ('' if none)."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "sqlstate", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return ""


# Database errors a request can cause by its own values, and what the client is told. The rest
# are our fault: logged, and answered 500 without detail.
SQLSTATE_CLASSES = {
    "22": (400, "Bad request", "A value in the request is out of range or is not valid text."),
    "23": (409, "Conflict", "The change conflicts with data that already exists."),
    "57014": (503, "Too slow", "The request took too long and was stopped; narrow it and try again."),
}


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem(request, exc.status, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, items = _describe(exc.errors())
        return problem(request, 422, "Invalid input", detail, errors=items)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem(request, exc.status_code, title, detail)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        code = sqlstate(exc)
        known = SQLSTATE_CLASSES.get(code) or SQLSTATE_CLASSES.get(code[:2])
        if known:
            log.info("request refused by the database (%s): %s %s", code, request.method, request.url.path)
            return problem(request, *known)
        return await unexpected(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.exception("request %s failed: %s %s", request_id, request.method, request.url.path)
        return problem(request, 500, "Internal error",
                       f"Something went wrong on our side (request id {request_id}).",
                       request_id=request_id)
