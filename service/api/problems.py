"""Errors as RFC 9457 problem details with a stable machine-readable code; never a stack trace."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

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
    503: "UNAVAILABLE",
}


def problem(status: int, detail: str, code: str | None = None, **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body = {
        "type": f"https://docs.orders.example/problems/{(code or _CODES.get(status, 'ERROR')).lower()}",
        "title": (code or _CODES.get(status, "ERROR")).replace("_", " ").capitalize(),
        "status": status,
        "code": code or _CODES.get(status, "ERROR"),
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
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
        return problem(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        return problem(422, "the request does not match the contract", errors=errors)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("api.unexpected_error")
        return problem(500, "internal error", "INTERNAL")
