"""One JSON shape for every error the API returns, whatever raised it:

    {"error": {"status": 404, "code": "not_found", "message": "no job 'x' ...", "details": []}}

``message`` is one line for a person (what, the value, the fix); ``code`` is for programs
and never changes meaning; ``details`` lists the fields a request body got wrong.

    ApiError (an HTTPException with a code)   raised by the routes and the auth check
    HTTPException from Starlette              404 routes, 405, 413 (body limit)
    RequestValidationError                    422 invalid_request
    UsageError, PayloadError                  422 invalid_request (the admin layer refused)
    Duplicate                                 409 duplicate
    OperationalError, a Redis error           503 unavailable (Redis down: try again)
    anything else                             500 internal (logged with its traceback)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from jobqueue.client import Duplicate
from jobqueue.engine import RedisError
from jobqueue.errors import JobQueueError, OperationalError
from jobqueue.observe.logs import get_logger

log: Any = get_logger("jobqueue.server")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "duplicate",
    413: "payload_too_large",
    422: "invalid_request",
    500: "internal",
    503: "unavailable",
}


METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


class ApiError(HTTPException):
    """An error a route means to return: status, stable code, one-line message."""

    def __init__(
        self, status: int, message: str, code: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code or CODES.get(status, "error")


def error_response(
    status: int,
    message: str,
    code: str = "",
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "status": status,
        "code": code or CODES.get(status, "error"),
        "message": message,
        "details": details or [],
    }
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = getattr(exc, "code", "")
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed(request)}
    return error_response(exc.status_code, str(exc.detail), code, headers=headers)


def _allowed(request: Request) -> str:
    """Every method a route takes at this path. Starlette names the first matching route's
    only, and a path that two routes share (GET and DELETE /api/v1/dlq) said Allow: GET."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    )


# pydantic names the branch of a union in an error's place (``body.list[JobSpec].1.kind``);
# our field names are lower case, its branch names are types.
_BRANCH = re.compile(r"^[A-Z]|\[")
_WRONG_SHAPE = frozenset({"model_type", "model_attributes_type", "list_type", "dict_type"})


def _field(error: Any) -> dict[str, Any]:
    """``body[1].kind``, as the caller wrote it."""
    if error.get("type") == "json_invalid":  # its place is a character offset
        *_, offset = error.get("loc", ("body", "?"))
        return {"field": "body", "message": f"{error.get('msg', '')} at character {offset}"}
    where = ""
    for part in error.get("loc", ()):
        if isinstance(part, int):
            where += f"[{part}]"
        elif not _BRANCH.search(part):
            where += f".{part}" if where else part
    return {"field": where, "message": str(error.get("msg", ""))}


def _relevant(errors: Sequence[Any]) -> list[Any]:
    """A body that is one job or a list of them fails as both; an error that says only that
    the body is not of a branch's shape (a list is not a job) is noise beside the other
    branch's: 'body.JobSpec: Input should be a valid dictionary' for a list with one bad job."""
    shaped = [
        e for e in errors if not (e.get("type") in _WRONG_SHAPE and len(e.get("loc", ())) == 2)
    ]
    return shaped or list(errors)


def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [_field(error) for error in _relevant(exc.errors())]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    message = f"{first['field']}: {first['message']}{more}"
    return error_response(422, message, details=details)


def _jobqueue(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, Duplicate):
        return error_response(409, str(exc))
    if isinstance(exc, OperationalError):
        return error_response(503, str(exc))
    return error_response(422, str(exc))


def _redis(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, f"Redis did not answer: {type(exc).__name__}: {exc}")


def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error", path=request.url.path, exc_info=exc)
    return error_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    """Route every failure through ``error_response``."""
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(JobQueueError, _jobqueue)
    for kind in RedisError:
        app.add_exception_handler(kind, _redis)
    app.add_exception_handler(Exception, _internal)
