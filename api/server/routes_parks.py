"""Routes: health, parks (list, read, upload, indicators, balance, what-if, picture) and networks."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from parktwin.api.server import models as m
from parktwin.api.server.errors import ApiError, error_responses
from parktwin.api.server.registry import EXAMPLE_ID, safe_filename
from parktwin.api.server.uploads import network_counts

router = APIRouter()
Duration = Annotated[m.RunDuration, Query(description="86400 = the 24 h run (default); 0 = a snapshot of daily means")]
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
# Not text/plain: a web page can send that cross-site without a preflight; octet-stream it cannot.
INP_TYPES = ("application/octet-stream",)


def _binary_body(media: tuple[str, ...], what: str) -> dict:
    return {"requestBody": {"required": True, "description": what,
                            "content": {t: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                                        for t in media}}}


async def _read_body(request: Request, media: tuple[str, ...]) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in media:
        raise ApiError(415, f"content type {ctype or 'none'!r} not accepted (send {', '.join(media)})",
                       "Content-Type")
    data = await request.body()
    if not data:
        raise ApiError(422, "the request body is empty: send the file as the body", "file")
    return data


@router.get("/health", response_model=m.Health, tags=["service"])
async def health(request: Request):
    """Liveness; the one route that never needs the API key. Answered on the event loop itself, never
    behind the thread pool or a lock, so it answers while every solver thread is busy."""
    return {"status": "ok", "version": request.app.version}


# ---------------------------------------------------------------------- parks
def _summary(registry, park_id: str) -> dict:
    return {"id": park_id, **registry.park_summary(park_id), "bundled": park_id == EXAMPLE_ID}


@router.get("/parks", response_model=list[m.ParkSummary], tags=["parks"], responses=error_responses(401))
def list_parks(request: Request):
    """Every park: the bundled example and the uploaded ones."""
    registry = request.app.state.registry
    return [_summary(registry, pid) for pid in registry.park_ids()]


@router.post("/parks", status_code=201, response_model=m.ParkSummary, tags=["parks"],
             responses=error_responses(401, 413, 415, 422, 503),
             openapi_extra=_binary_body(ZIP_TYPES, "a zip of a park folder: park.toml, supply.inp, reclaimed.inp, "
                                                   "discharge.inp (at the top or in one folder)"))
async def upload_park(request: Request):
    """Upload a park. It is unpacked safely (no absolute paths, no '..', no links, bounded size and count),
    validated with the park loader, and stored under a new id."""
    data = await _read_body(request, ZIP_TYPES)
    registry = request.app.state.registry
    park_id = await run_in_threadpool(registry.add_park_zip, data)
    return await run_in_threadpool(_summary, registry, park_id)


def _enterprise(e) -> dict:
    return {"name": e.name, "sector": e.sector, "product": e.product, "annual_output": e.annual_output,
            "value_added_10k_yuan": e.value_added_10k_yuan,
            "needs": {f: getattr(e.needs, f) for f in e.needs.__dataclass_fields__},
            "recycling": {f: getattr(e.recycling, f) for f in e.recycling.__dataclass_fields__},
            "consumption_fraction": e.consumption_fraction, "discharge_fraction": e.discharge_fraction,
            "shift_hours": e.shift_hours, "junctions": dict(e.junctions)}


@router.get("/parks/{park_id}", response_model=m.ParkDetail, tags=["parks"], responses=error_responses(401, 404))
def read_park(park_id: str, request: Request):
    """A park: enterprises, plants, city links, targets and the sizes of its three networks."""
    from dataclasses import asdict

    from parktwin.hydraulics.compile import load_network
    from parktwin.twin.park_schema import NETWORKS
    park = request.app.state.registry.park(park_id)
    networks = {}
    for name in NETWORKS:
        net = load_network(park.network_path(name))
        networks[name] = {"id": f"{park_id}/{name}", "name": name, **network_counts(net)}
    t = park.targets      # asdict cannot copy its read-only quota mapping
    targets = {"reuse_rate_fraction": t.reuse_rate_fraction, "substitution_rate_fraction": t.substitution_rate_fraction,
               "sector_quotas_m3_per_unit": dict(t.sector_quotas_m3_per_unit)}
    return {"id": park_id, "name": park.name, "enterprises": [_enterprise(e) for e in park.enterprises],
            "plants": {"wastewater": asdict(park.wastewater_plant), "reclaimed": asdict(park.reclaimed_plant)},
            "city": asdict(park.city), "targets": targets, "networks": networks}


@router.get("/parks/{park_id}/indicators", response_model=m.Indicators, tags=["parks"],
            responses=error_responses(401, 404, 422, 501, 503))
def park_indicators(park_id: str, request: Request, duration_s: Duration = m.RunDuration.day):
    """The regulator's water-efficiency indicators of the park's base case."""
    from parktwin.twin.coupled import _plain
    result = request.app.state.registry.base_result(park_id, duration_s)
    return {"park_id": park_id, "duration_s": int(duration_s), "indicators": _plain(result.indicators)}


@router.get("/parks/{park_id}/balance", response_model=m.Balance, tags=["parks"],
            responses=error_responses(401, 404, 422, 501, 503))
def park_balance(park_id: str, request: Request, duration_s: Duration = m.RunDuration.day):
    """The park's water balance (m³/d): park, enterprises, plants, networks."""
    from parktwin.twin.coupled import _plain
    result = request.app.state.registry.base_result(park_id, duration_s)
    return {"park_id": park_id, "duration_s": int(duration_s), "balance": _plain(result.balance)}


@router.post("/parks/{park_id}/whatif", response_model=m.WhatIfResponse, tags=["what-if"],
             responses=error_responses(400, 401, 404, 413, 422, 501, 503))
def whatif(park_id: str, body: m.WhatIfRequest, request: Request):
    """Apply operations to the park, run it, and compare with the base case: indicators (before, after,
    change), both balances, and per network the service violations and their change."""
    from parktwin.api.server.whatif import run_whatif
    cap = request.app.state.settings.max_operations
    if len(body.operations) > cap:
        raise ApiError(422, f"operations: {len(body.operations)} operations, more than the cap of {cap}",
                       "operations")
    return run_whatif(request.app.state.registry, park_id, body, request.app.state.settings.lock_timeout_s)


@router.get("/parks/{park_id}/picture", tags=["parks"], responses={
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
          "description": "a PNG picture of the park's base case"}, **error_responses(401, 404, 422, 501, 503)})
def park_picture(park_id: str, request: Request,
                 quantity: Annotated[m.ParkQuantity, Query(description="what to colour by")] = m.ParkQuantity.pressure):
    """A 3D picture of the park's networks in its snapshot base case, coloured by `quantity` (drawn in the
    picture worker, within the server's time limit)."""
    from parktwin.api.server.app import render
    _viz_available()
    folder = request.app.state.registry.park_dir(park_id)
    png = render(request.app, "parktwin.api.server.uploads:park_picture", (str(folder), quantity.value))
    return Response(png, media_type="image/png")


def _viz_available() -> None:
    from parktwin import viz
    problem = viz.offscreen_problem()     # asked once, of a child process (cached)
    if problem:
        raise NotImplementedError(f"pictures are not available on this server: {problem}")


# ---------------------------------------------------------------------- networks
@router.get("/networks", response_model=list[m.NetworkInfo], tags=["networks"], responses=error_responses(401))
def list_networks(request: Request):
    """Uploaded networks (a park's own networks are listed with the park)."""
    registry = request.app.state.registry
    return [{"id": nid, **registry.network_meta(nid)} for nid in registry.network_ids()]


@router.post("/networks", status_code=201, response_model=m.NetworkInfo, tags=["networks"],
             responses=error_responses(401, 413, 415, 422, 503),
             openapi_extra=_binary_body(INP_TYPES, "an EPANET .inp file"))
async def upload_network(request: Request,
                         filename: Annotated[str, Query(max_length=200, description="the file's name, for messages")]
                         = "network.inp"):
    """Upload an EPANET network; it is read and compiled now, so a file that does not parse is refused
    with the line and the problem."""
    data = await _read_body(request, INP_TYPES)
    registry = request.app.state.registry
    name = safe_filename(filename, "network.inp")
    network_id = await run_in_threadpool(registry.add_network, data, name)
    return {"id": network_id, **registry.network_meta(network_id)}


@router.get("/networks/{network_id}", response_model=m.NetworkInfo, tags=["networks"],
            responses=error_responses(401, 404))
def read_network(network_id: str, request: Request):
    """An uploaded network's size."""
    return {"id": network_id, **request.app.state.registry.network_meta(network_id)}
