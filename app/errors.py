"""One place that maps exceptions to RFC 9457 problem+json answers, so handlers need no try/except.

STATUS_CODES is the one table from exception type to status and title: analysis, ingest and query
parsing raise domain errors (app/domain_errors.py) and know nothing of HTTP; the API's own refusals
(not signed in, not allowed, a conflict) are AppError subclasses in the same table. Database errors
and other surprises are logged with a request id and answered without detail: a client never sees
SQL or a stack trace.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import domain_errors as domain

log = logging.getLogger("safermap")
PROBLEM = "application/problem+json"


class AppError(domain.DomainError):
    """A refusal the HTTP layer makes itself. Its status and title come from STATUS_CODES; a subclass
    made elsewhere that declares `status, title = 428, "..."` is entered in the table as it is made."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        status = cls.__dict__.get("status")
        if isinstance(status, int):
            STATUS_CODES[cls] = (status, cls.__dict__.get("title") or HTTPStatus(status).phrase)

    @property
    def status(self) -> int:
        return status_of(self)[0]

    @property
    def title(self) -> str:
        return status_of(self)[1]


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    pass


class Forbidden(AppError):
    pass


class NotFound(AppError):
    pass


class Conflict(AppError):
    pass


class Gone(AppError):
    pass


class PayloadTooLarge(AppError):
    pass


class UnsupportedMediaType(AppError):
    pass


class Unprocessable(AppError):
    pass


class PreconditionRequired(AppError):
    pass


class Busy(AppError):
    """A moment's overload this process refuses itself (e.g. every export slot taken): 503 with
    Retry-After, as for a full database pool."""

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s or RETRY_AFTER_S


# Exception type -> (status, title). An exception takes the entry of the nearest type in its MRO.
STATUS_CODES: dict[type[Exception], tuple[int, str]] = {
    domain.DomainError: (400, "Bad request"),
    domain.InvalidValue: (400, "Bad request"),
    domain.InvalidPeriod: (400, "Bad request"),
    domain.TooLarge: (400, "Too much asked"),
    domain.OutOfArea: (400, "Outside the mapped area"),
    domain.UnknownItem: (404, "Not found"),
    domain.NotEnoughData: (422, "Not enough data"),
    domain.NoRoute: (422, "No route"),
    domain.ImportRefused: (422, "Import refused"),
    BadRequest: (400, "Bad request"),
    Unauthorized: (401, "Not signed in"),
    Forbidden: (403, "Not allowed"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    Gone: (410, "Gone"),
    PayloadTooLarge: (413, "Request too large"),
    UnsupportedMediaType: (415, "Unsupported media type"),
    Unprocessable: (422, "Invalid input"),
    PreconditionRequired: (428, "Precondition required"),
    Busy: (503, "Busy"),
}


def status_of(exc: BaseException) -> tuple[int, str]:
    for kind in type(exc).__mro__:
        if kind in STATUS_CODES:
            return STATUS_CODES[kind]
    return 500, "Internal error"


class Problem(BaseModel):
    """RFC 9457 problem details: how every error is answered. Some carry more (`errors` for invalid
    input, `request_id` for our own failures, or what the problem is about, e.g. `incident`)."""
    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem(request: Request, status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": str(request.url.path), **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="safermap"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def busy(response: JSONResponse, retry_after_s: int | None = None) -> JSONResponse:
    """A moment's overload (503): say when to come back rather than leave the client guessing."""
    response.headers["Retry-After"] = str(retry_after_s or RETRY_AFTER_S)
    return response


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


# Database errors a request can cause by its own values (or a moment's overload), and what the
# client is told. The rest are our fault: logged, and answered 500 without detail.
SQLSTATE_CLASSES = {
    "22": (400, "Bad request", "A value in the request is out of range or is not valid text."),
    "23": (409, "Conflict", "The change conflicts with data that already exists."),
    "53300": (503, "Busy", "The database has no connection free right now; try again in a moment."),
    "57014": (503, "Too slow", "The request took too long and was stopped; narrow it and try again."),
}
# Seconds a client is asked to wait after a 503.
RETRY_AFTER_S = 1
BUSY = "Every database connection is in use; try again in a moment."


def document_problems(app: FastAPI) -> None:
    """Say in the OpenAPI document that errors are problem+json: every operation's 4XX and 5XX, and
    its 422 in place of FastAPI's default (a list of pydantic errors, which this app never sends)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        answer = {"content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    responses["422"] = {"description": "Invalid input", **answer}
                responses.setdefault("4XX", {"description": "The request was refused", **answer})
                responses.setdefault("5XX", {"description": "Our failure (request id given)", **answer})
        if "HTTPValidationError" not in str(schema.get("paths")):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to shape the document


def install(app: FastAPI) -> None:
    document_problems(app)

    @app.exception_handler(domain.DomainError)
    async def domain_error(request: Request, exc: domain.DomainError) -> JSONResponse:
        status, title = status_of(exc)
        answer = problem(request, status, title, exc.detail, **exc.extra)
        return busy(answer, exc.retry_after_s) if isinstance(exc, Busy) else answer

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
    @app.exception_handler(asyncpg.PostgresError)  # from plain asyncpg, as exports read
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        code = sqlstate(exc)
        known = SQLSTATE_CLASSES.get(code) or SQLSTATE_CLASSES.get(code[:2])
        if known:
            log.info("request refused by the database (%s): %s %s", code, request.method, request.url.path)
            answer = problem(request, *known)
            return busy(answer) if code == "53300" else answer
        return await unexpected(request, exc)

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        # No connection within SAFERMAP_POOL_TIMEOUT_S: answer at once rather than let the client time out.
        log.warning("no database connection free: %s %s answered 503", request.method, request.url.path)
        return busy(problem(request, 503, "Busy", BUSY))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.exception("request %s failed: %s %s", request_id, request.method, request.url.path)
        return problem(request, 500, "Internal error",
                       f"Something went wrong on our side (request id {request_id}).",
                       request_id=request_id)
