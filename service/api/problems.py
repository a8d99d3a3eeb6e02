"""Errors as RFC 9457 problem details with a stable machine-readable code; never a stack trace."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from service.store.capped_sets import LimitReached

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    411: "LENGTH_REQUIRED",
    413: "PAYLOAD_TOO_LARGE",
    422: "INVALID_REQUEST",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
}


def problem(
    status: int, detail: str, code: str | None = None, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem-details response (with `headers`, such as `Retry-After`)."""
    body = {
        "type": f"https://docs.orders.example/problems/{(code or _CODES.get(status, 'ERROR')).lower()}",
        "title": (code or _CODES.get(status, "ERROR")).replace("_", " ").capitalize(),
        "status": status,
        "code": code or _CODES.get(status, "ERROR"),
        "detail": detail,
        **extra,
    }
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app can raise, answered as problem details."""

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400 and isinstance(error.__cause__, ValueError | RecursionError):
            # FastAPI answers 422 for a body that is not JSON, but 400 when decoding it fails otherwise (not
            # UTF-8, nested too deep): all of them are a body that is not JSON, answered alike.
            errors = [{"loc": ["body"], "msg": "the body is not JSON", "type": "json_invalid"}]
            return problem(422, "the request does not match the contract", errors=errors)
        return problem(error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(LimitReached)
    async def limit_reached(_: Request, error: LimitReached) -> JSONResponse:
        return problem(409, f"{error}: remove one before adding another", "LIMIT_REACHED", limit=error.limit)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        return problem(422, "the request does not match the contract", errors=errors)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("api.unexpected_error")
        return problem(500, "internal error", "INTERNAL")


class Problem(BaseModel):
    """An RFC 9457 problem details object (`application/problem+json`); branch on `code` and `status`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    code: str = Field(examples=["RATE_LIMITED"])
    detail: str


AUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "`UNAUTHENTICATED`: no valid API key."},
    429: {
        "model": Problem,
        "description": "`RATE_LIMITED`: the API key is over its request rate (docs/api.md#bounds).",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before the next request.",
                "schema": {"type": "integer"},
            }
        },
    },
}
"""The answers every route behind an API key may give, declared in the OpenAPI document."""
