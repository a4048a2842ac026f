"""Routes: Monte-Carlo jobs (submit, list, status, cancel, resume, summary, HDF5 result, picture)."""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from parktwin.api.server import models as m
from parktwin.api.server.errors import ApiError, error_responses, scrub

router = APIRouter(tags=["jobs"])


def _status(row: dict) -> dict:
    total = int(row["scenarios"])
    done = int(row["scenarios_done"] or 0)
    return {"id": row["id"], "status": row["status"], "target": row["target"], "scenarios": total,
            "scenarios_done": done, "progress": min(done / total, 1.0) if total else 0.0, "store": row["store"],
            "duration_s": int(row["duration_s"]), "created_utc": row["created_utc"],
            "started_utc": row["started_utc"], "finished_utc": row["finished_utc"],
            # the worker's message comes from any layer (h5py, WNTR, the OS) and can name server paths
            "error": scrub(row["error"]) if row["error"] else None}


def _target(request: Request, target: m.Target):
    """(label, .inp path) of the study's network."""
    registry = request.app.state.registry
    if target.network_id is not None:
        if target.park_id is not None or target.network is not None:
            raise ApiError(422, "target: give either network_id or park_id with network, not both", "target")
        try:
            return target.network_id, registry.network_path(target.network_id)
        except ApiError as exc:     # the study's field, like target.park_id below
            raise ApiError(422, f"target.network_id: {exc.detail}", "target.network_id") from None
    if target.park_id is None or target.network is None:
        raise ApiError(422, "target: give park_id and network (supply, reclaimed or discharge), or network_id",
                       "target")
    try:
        park = registry.park(target.park_id)
    except ApiError as exc:
        raise ApiError(422, f"target.park_id: {exc.detail}", "target.park_id") from None
    return f"{target.park_id}/{target.network}", park.network_path(target.network)


def _spec(body: m.StudyRequest, net_path):
    """The ScenarioSpec (checked against the network) and its JSON, or 422 naming the field."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.scenarios.spec import SpecError, spec_from_dict
    data = body.model_dump(exclude_none=True, exclude={"target", "store", "duration_s"})
    try:
        spec = spec_from_dict(data)
        spec.validate(load_network(net_path))
    except SpecError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    return spec, data


@router.post("/jobs", status_code=202, response_model=m.JobStatus,
             responses=error_responses(400, 401, 404, 413, 422))
def submit_job(body: m.StudyRequest, request: Request):
    """Submit a Monte-Carlo study (the fields of a scenario specification, scenarios/spec.py) on a park
    network or an uploaded one. Answers 202 at once; the job runs in a worker process."""
    cap = request.app.state.settings.max_study_scenarios
    if body.scenarios > cap:
        raise ApiError(422, f"scenarios: {body.scenarios} is over this server's cap of {cap} scenarios per study",
                       "scenarios")
    label, path = _target(request, body.target)
    _, data = _spec(body, path)
    job_id = request.app.state.jobs.submit(label, path, data, body.store, body.duration_s, body.scenarios)
    return _status(request.app.state.jobs.get(job_id))


@router.get("/jobs", response_model=list[m.JobStatus], responses=error_responses(401))
def list_jobs(request: Request):
    """The 100 most recent jobs."""
    return [_status(r) for r in request.app.state.jobs.list()]


@router.get("/jobs/{job_id}", response_model=m.JobStatus, responses=error_responses(401, 404))
def job_status(job_id: str, request: Request):
    """A job's state and progress (scenarios solved so far)."""
    return _status(request.app.state.jobs.get(job_id))


@router.post("/jobs/{job_id}/cancel", response_model=m.JobStatus, responses=error_responses(401, 404, 409))
def cancel_job(job_id: str, request: Request):
    """Stop a queued or running job (its worker is killed; the file stays resumable)."""
    return _status(request.app.state.jobs.cancel(job_id))


@router.post("/jobs/{job_id}/resume", status_code=202, response_model=m.JobStatus,
             responses=error_responses(401, 404, 409))
def resume_job(job_id: str, request: Request):
    """Queue an interrupted, cancelled or failed job again; it continues from its file."""
    return _status(request.app.state.jobs.resume(job_id))


def _done(request: Request, job_id: str) -> dict:
    row = request.app.state.jobs.get(job_id)
    if row["status"] != "done":
        raise ApiError(409, f"job {job_id} is {row['status']}, not done", "job_id")
    return row


@router.get("/jobs/{job_id}/summary", response_model=m.JobSummary, responses=error_responses(401, 404, 409))
def job_summary(job_id: str, request: Request):
    """Scenario counts, timing, and network-wide statistics with the worst junctions."""
    row = _done(request, job_id)
    return {"id": job_id, "status": row["status"], "summary": json.loads(row["summary_json"] or "{}")}


@router.get("/jobs/{job_id}/result", responses={
    200: {"content": {"application/x-hdf5": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the study's HDF5 file (DESIGN's layout, or the summary layout)"},
    **error_responses(401, 404, 409)})
def job_result(job_id: str, request: Request):
    """The job's HDF5 file."""
    _done(request, job_id)
    path = request.app.state.jobs.result_path(job_id)
    if not path.is_file():
        raise ApiError(404, f"job {job_id}: its result file is gone", "job_id")
    return FileResponse(path, media_type="application/x-hdf5", filename=f"{job_id}.h5")


@router.get("/jobs/{job_id}/picture", responses={
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
          "description": "a PNG picture of the job's result"}, **error_responses(401, 404, 409, 422, 501)})
def job_picture(job_id: str, request: Request,
                quantity: Annotated[str | None, Query(min_length=1, max_length=40, pattern=r"^[a-z_]+$",
                                                      description="what to colour by; default pressure (full "
                                                                  "store) or low_pressure_probability (summary "
                                                                  "store)")] = None):
    """A 3D picture of the job's result file coloured by `quantity` (needs the viz package's renderer)."""
    import tempfile
    from pathlib import Path

    from parktwin.api.server.routes_parks import RENDER_LOCK, _viz
    render_file = _viz("render_file")
    row = _done(request, job_id)
    if quantity is None:   # a summary file holds statistics, not pressures: each store its own default
        quantity = "low_pressure_probability" if row["store"] == "summary" else "pressure"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "picture.png"
        try:
            with RENDER_LOCK:
                render_file(request.app.state.jobs.result_path(job_id), quantity, out=out)
        except ValueError as exc:
            raise ApiError(422, f"quantity: {exc}", "quantity") from None
        return _png(out)


def _png(path):
    from fastapi.responses import Response
    return Response(path.read_bytes(), media_type="image/png")
