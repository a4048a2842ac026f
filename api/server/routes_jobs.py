"""Routes: Monte-Carlo jobs (submit, list, status, cancel, resume, delete, summary, HDF5 result, picture)."""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from parktwin.api.server import models as m
from parktwin.api.server.errors import ApiError, error_responses, scrub
from parktwin.api.server.settings import env_name
from parktwin.api.server.sizing import human

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


def _target(request: Request, target: m.ParkTarget | m.NetworkTarget):
    """(label, .inp path) of the study's network."""
    registry = request.app.state.registry
    if isinstance(target, m.NetworkTarget):
        try:
            return target.network_id, registry.network_path(target.network_id)
        except ApiError as exc:     # the study's field, like target.park_id below
            raise ApiError(422, f"target.network_id: {exc.detail}", "target.network_id") from None
    try:
        park = registry.park(target.park_id)
    except ApiError as exc:
        raise ApiError(422, f"target.park_id: {exc.detail}", "target.park_id") from None
    return f"{target.park_id}/{target.network}", park.network_path(target.network)


def _spec(body: m.StudyRequest, net):
    """The ScenarioSpec (checked against the network) and its JSON, or 422 naming the field."""
    from parktwin.scenarios.spec import spec_from_dict
    from parktwin.scenarios.spec_errors import SpecError
    data = body.model_dump(exclude_none=True, exclude={"target", "store", "duration_s"})
    try:
        spec = spec_from_dict(data)
        spec.validate(net)
    except SpecError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    return spec, data


def _check_size(request: Request, size) -> None:
    """413 naming the cap when the job's estimated memory or disk is over a cap; 429 when the queue is full."""
    settings, jobs = request.app.state.settings, request.app.state.jobs
    caps = (("memory", size.memory_bytes, settings.max_job_memory_bytes, "max_job_memory_bytes", "per job"),
            ("disk", size.disk_bytes, settings.max_job_disk_bytes, "max_job_disk_bytes", "per job"))
    for what, need, cap, setting, scope in caps:
        if need > cap:
            raise ApiError(413, f"job too large: {size.describe()}; its {what} is over this server's cap of "
                                f"{human(cap)} {scope} ({env_name(setting)})", "scenarios")
    in_use = jobs.disk_in_use()
    if in_use + size.disk_bytes > settings.max_total_disk_bytes:
        raise ApiError(413, f"job too large for the disk left: {size.describe()}; job files take {human(in_use)} of "
                            f"this server's {human(settings.max_total_disk_bytes)} "
                            f"({env_name('max_total_disk_bytes')}); delete finished jobs (DELETE /jobs/{{id}})",
                       "scenarios")
    if jobs.unfinished() >= settings.max_queued_jobs:
        raise ApiError(429, f"{settings.max_queued_jobs} jobs are queued or running, this server's cap "
                            f"({env_name('max_queued_jobs')}); try again when one has finished")


@router.post("/jobs", status_code=202, response_model=m.JobStatus,
             responses=error_responses(400, 401, 404, 413, 422, 429))
def submit_job(body: m.StudyRequest, request: Request):
    """Submit a Monte-Carlo study (the fields of a scenario specification, scenarios/spec.py) on a park
    network or an uploaded one. Its memory and result file are estimated first and refused (413, with the
    estimate) over the server's caps. Answers 202 at once; the job runs in a worker process."""
    from parktwin.api.server.sizing import estimate_job
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import SolverOptions
    cap = request.app.state.settings.max_study_scenarios
    if body.scenarios > cap:
        raise ApiError(422, f"scenarios: {body.scenarios} is over this server's cap of {cap} scenarios per study "
                            f"({env_name('max_study_scenarios')})", "scenarios")
    label, path = _target(request, body.target)
    net = load_network(path)
    spec, data = _spec(body, net)
    size = estimate_job(net, spec, body.store, body.duration_s, SolverOptions().chunk_size)
    _check_size(request, size)
    job_id = request.app.state.jobs.submit(label, path, data, body.store, body.duration_s, body.scenarios,
                                           size.disk_bytes)
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


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 404, 409))
def delete_job(job_id: str, request: Request):
    """Forget a job: a queued or running one is stopped first; its row and files are removed."""
    request.app.state.jobs.delete(job_id)
    return Response(status_code=204)


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
          "description": "a PNG picture of the job's result"}, **error_responses(401, 404, 409, 422, 501, 503)})
def job_picture(job_id: str, request: Request,
                quantity: Annotated[m.ResultQuantity | None, Query(description="what to colour by; default pressure (full "
                                                                  "store) or low_pressure_probability (summary "
                                                                  "store)")] = None):
    """A 3D picture of the job's result file coloured by `quantity` (drawn in the picture worker)."""
    from parktwin.api.server.app import render
    from parktwin.api.server.routes_parks import _viz_available
    _viz_available()
    row = _done(request, job_id)
    if quantity is None:   # a summary file holds statistics, not pressures: each store its own default
        quantity = m.ResultQuantity("low_pressure_probability" if row["store"] == "summary" else "pressure")
    png = render(request.app, "parktwin.api.server.uploads:result_picture",
                 (str(request.app.state.jobs.result_path(job_id)), quantity.value))
    return Response(png, media_type="image/png")
