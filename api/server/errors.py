"""Error bodies and handlers: every error is JSON {"detail": ..., "field": ...}, never a path or a traceback.

`ApiError` carries the status, the message for the client and the request field it is about. Messages
that come from the model layers (ParkError, InpError, SpecError, WhatIfError) can name files on the
server, so `scrub` rewrites every known server directory out of them before they are sent.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("parktwin.api")


class ErrorBody(BaseModel):
    detail: str = Field(description="what is wrong, one line, for a person")
    field: str | None = Field(None, description="the request field the error is about (dotted path), if any")


class ApiError(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


# Responses every route may give; documented so that clients (and schemathesis) know them.
def error_responses(*codes: int) -> dict:
    text = {400: "bad request", 401: "missing or wrong API key", 404: "no such resource",
            409: "the resource is not in a state that allows this", 413: "request or upload too large",
            415: "unsupported media type", 422: "invalid input; `field` names it",
            429: "too many jobs queued: try again later", 501: "not implemented yet",
            503: "busy (a lock or worker not free within the server's wait), or too many connections"}
    return {c: {"model": ErrorBody, "description": text[c]} for c in codes}


_ROOTS: list[str] = []


def register_root(path: str | Path) -> None:
    """A server directory whose name must never reach a client (data dir, install dir, temp dirs)."""
    text = str(path).rstrip("/")
    if text and text not in _ROOTS:
        _ROOTS.append(text)
        _ROOTS.sort(key=len, reverse=True)     # longest first, so a parent never half-replaces a child


_ABSOLUTE = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+([\w.@+-]+)")


def scrub(message: str) -> str:
    """The message without server paths: known roots are cut, any other absolute path keeps its last
    component only (an .inp reader error still names the file, never where it lives)."""
    for root in _ROOTS:
        message = message.replace(root + "/", "").replace(root, "")
    return _ABSOLUTE.sub(lambda m: m.group(1), message)


def _body(detail: str, field: str | None) -> dict:
    return {"detail": scrub(" ".join(str(detail).split())), "field": field}


def _loc_field(loc) -> str | None:
    # ("body", "operations", 0, "capacity_m3d") -> "operations.0.capacity_m3d"; a discriminated union
    # adds its tag ("plant_capacity") as a step, a plain union the variant's class ("ParkTarget"): both
    # name the variant rather than a field, and are dropped.
    from parktwin.api.server.models import OPERATION_TAGS, UNION_VARIANTS
    parts, previous = [], None
    for p in loc:
        if p in ("body", "query", "path", "header") and previous is None:
            pass
        elif not ((isinstance(previous, int) and p in OPERATION_TAGS) or p in UNION_VARIANTS):
            parts.append(str(p))
        previous = p
    return ".".join(parts) or None


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path: Starlette's 405 names only the first route that
    matched the path, and one path here has several routes (GET and POST /jobs)."""
    from starlette.routing import Match

    def leaves(routes):
        for route in routes:
            inner = getattr(getattr(route, "original_router", route), "routes", None)   # an included router
            if inner is not None:
                yield from leaves(inner)
            elif getattr(route, "methods", None):
                yield route
    return sorted({m for route in leaves(request.app.routes) if route.matches(request.scope)[0] != Match.NONE
                   for m in route.methods})


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return JSONResponse(_body(exc.detail, exc.field), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _loc_field(first.get("loc", ()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return JSONResponse(_body(f"{field or 'request'}: {first.get('msg', 'invalid')}{more}", field),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return JSONResponse(_body(str(exc.detail), getattr(exc, "field", None)), status_code=exc.status_code,
                            headers=headers)

    @app.exception_handler(NotImplementedError)
    async def _not_implemented(_request: Request, exc: NotImplementedError):
        return JSONResponse(_body(str(exc) or "not implemented yet", None), status_code=501)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        # The traceback stays in the server's log; the client learns only that it is the server's fault.
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error (see the server log)", "field": None},
                            status_code=500)
