"""The FastAPI application: `create_app(settings)`.

Request handling, outermost first: CORS (only when origins are configured; it answers preflights
itself, which carry no key), then `Guard` (Host header, API key, body-size caps), then FastAPI's routing
with the JSON error handlers of api.server.errors. On start-up the job table is recovered (running ->
interrupted), the upload and picture workers are spawned (api.server.sandbox: uploads are read and
pictures drawn there, never in this process), and the example park's base case is run once, which also
compiles the solver kernels, so the first what-if is as fast as any other.
"""
from __future__ import annotations

import hmac
import importlib
import json
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from parktwin.api.server.errors import ApiError, install_handlers, register_root
from parktwin.api.server.sandbox import Sandbox, SandboxFailure
from parktwin.api.server.settings import Settings, env_name, host_names

log = logging.getLogger("parktwin.api")
UPLOAD_PATHS = ("/parks", "/networks")
OPEN_PATHS = ("/health",)


class _TooLarge(StarletteHTTPException):
    """A body over its cap. An HTTPException, because FastAPI turns any other error raised while it reads
    a JSON body into a 400 "error parsing the body": this one it re-raises, and the handler answers 413."""

    field = "body"

    def __init__(self, limit: int):
        super().__init__(413, _too_large(limit)["detail"])


async def _send_json(send, status: int, body: dict, headers: tuple = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


class Guard:
    """Pure ASGI middleware: the Host header, the API key (X-API-Key or Authorization: Bearer) and the
    body-size caps.

    The Host check stops DNS rebinding: a web page whose name an attacker points at 127.0.0.1 reaches a
    loopback server, but its requests carry the attacker's name. Sizes are checked on Content-Length when
    given and on the bytes actually received otherwise (chunked uploads), so a client cannot get past the
    cap by leaving the header out."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings
        self.key = settings.api_key.encode() if settings.api_key else None
        hosts = host_names(settings)
        self.hosts = None if "*" in hosts else {h.lower().strip("[]") for h in hosts}

    def _host_allowed(self, headers: dict) -> bool:
        if self.hosts is None:
            return True
        host = headers.get(b"host", b"").decode("latin-1").lower()
        name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return name in self.hosts

    def _authorised(self, headers: dict) -> bool:
        supplied = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if supplied is None and auth[:7].lower() == b"bearer ":
            supplied = auth[7:].strip()
        return supplied is not None and hmac.compare_digest(supplied, self.key)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not self._host_allowed(headers):
            return await _send_json(send, 400, {"detail": "the Host header names a host this server does not "
                                                          "serve (PARKTWIN_ALLOWED_HOSTS)", "field": "Host"})
        if self.key is not None and scope["path"] not in OPEN_PATHS and not self._authorised(headers):
            return await _send_json(send, 401, {"detail": "missing or wrong API key (X-API-Key header)",
                                                "field": "X-API-Key"}, ((b"www-authenticate", b"ApiKey"),))
        upload = scope["method"] == "POST" and (scope["path"] in UPLOAD_PATHS or scope["path"].endswith("/readings"))
        limit = self.settings.max_upload_bytes if upload else self.settings.max_request_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_json(send, 413, _too_large(limit))
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, _too_large(limit))


def _too_large(limit: int) -> dict:
    return {"detail": f"request body larger than the cap of {limit} bytes", "field": "body"}


def create_app(settings: Settings) -> FastAPI:
    from parktwin.api.demo import example_park_dir
    from parktwin.api.server.jobs import JobManager
    from parktwin.api.server.registry import Registry
    from parktwin.api.server.routes_jobs import router as jobs_router
    from parktwin.api.server.routes_meters import router as meters_router
    from parktwin.api.server.routes_parks import router as parks_router
    from parktwin.scenarios.store import parktwin_version

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    register_root(settings.data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        uploads = Sandbox("upload-reader", settings.worker_memory_bytes, ("parktwin.api.server.uploads",
                                                                          "parktwin.hydraulics.compile"))
        pictures = Sandbox("renderer", settings.worker_memory_bytes, ("parktwin.api.server.uploads",
                                                                      "parktwin.twin.coupled", "parktwin.viz.park_scene",
                                                                      "parktwin.viz.views", "pyvista"))
        app.state.pictures = pictures
        app.state.registry = Registry(settings.data_dir, example_park_dir(), settings.max_unzipped_bytes,
                                      settings.max_zip_files, settings.max_cached_parks, settings.upload_limits,
                                      untrusted_runner(uploads, settings), settings.lock_timeout_s)
        app.state.jobs = JobManager(settings)
        app.state.jobs.start()
        try:
            # Warm-up: loads, compiles the kernels, caches the base case of both modes. Inside the try:
            # a failed start-up still stops the job workers it has started.
            for duration_s in (86400, 0):
                app.state.registry.base_result("example", duration_s)
            uploads.start()         # after the warm-up, so that their imports do not slow the start
            pictures.start()
            # What a job submission imports: loaded now, not under the first request, where a C
            # extension's import would hold the interpreter (and /health with it) for a second or more.
            for module in ("parktwin.scenarios.spec", "parktwin.scenarios.samplers", "parktwin.scenarios.runner",
                           "parktwin.api.server.sizing"):
                importlib.import_module(module)
            log.info("ParkTwin API ready, data in %s", settings.data_dir)
            yield
        finally:
            app.state.jobs.stop()
            uploads.stop()
            pictures.stop()

    app = FastAPI(title="ParkTwin API", version=parktwin_version(), lifespan=lifespan,
                  description="What-if questions, Monte-Carlo studies and indicators of industrial park water "
                              "networks. Units are in the field names (m, m³/d, m³/s, s). Errors are JSON "
                              "{detail, field}.")
    app.state.settings = settings
    install_handlers(app)
    app.include_router(parks_router)
    app.include_router(jobs_router)
    app.include_router(meters_router)
    app.add_middleware(Guard, settings=settings)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    from parktwin.api.server import openapi
    openapi.install(app, keyed=bool(settings.api_key), open_paths=OPEN_PATHS)
    return app


def untrusted_runner(sandbox: Sandbox, settings: Settings):
    """Runs an api.server.uploads function on an upload in `sandbox`; its failures as client errors that
    name the limit the upload ran into."""
    def run(target: str, args: tuple):
        try:
            return sandbox.call(target, args, settings.parse_timeout_s, settings.lock_timeout_s)
        except TimeoutError:
            raise ApiError(503, "the upload reader is busy with other uploads; try again shortly") from None
        except SandboxFailure as exc:
            if exc.reason == "timeout":
                raise ApiError(413, f"reading the upload took longer than this server's limit of "
                                    f"{settings.parse_timeout_s} s ({env_name('parse_timeout_s')})", "file") from None
            if exc.reason == "memory":
                raise ApiError(413, f"reading the upload needs more memory than this server's limit of "
                                    f"{settings.worker_memory_bytes} bytes ({env_name('worker_memory_bytes')})",
                               "file") from None
            raise ApiError(422, f"the upload could not be read: {exc}", "file") from None
    return run


def render(app: FastAPI, target: str, args: tuple) -> bytes:
    """A picture drawn in the picture worker (VTK never runs in the server process)."""
    settings = app.state.settings
    try:
        return app.state.pictures.call(target, args, settings.render_timeout_s, settings.lock_timeout_s)
    except TimeoutError:
        raise ApiError(503, "the renderer is busy with other pictures; try again shortly") from None
    except SandboxFailure as exc:
        if exc.reason == "timeout":
            raise ApiError(503, f"the picture took longer than this server's limit of {settings.render_timeout_s} s "
                                f"({env_name('render_timeout_s')})") from None
        raise ApiError(503, f"the picture could not be drawn: {exc}") from None
