"""Monte-Carlo jobs through the HTTP API: submission to results, bad studies, cancel, and a server killed
with a job in flight, restarted on the same data directory, the job resumed to the uninterrupted answer."""
from __future__ import annotations

import signal
import time

import h5py
import numpy as np
import psutil
import pytest

from test_api_whatif import ApiServer

CAP = 200_000
LEAK_STUDY = {"target": {"park_id": "example", "network": "supply"}, "seed": 7, "sampler": "mc",
              "leaks": {"count": 1, "area": {"distribution": "lognormal", "median_m2": 1e-4, "sigma": 1.0}},
              "demand": {"distribution": "uniform", "min": 0.8, "max": 1.2}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("jobs") / "data", "--max-study-scenarios", str(CAP)).start()
    yield srv
    srv.stop()


def wait_for(client, job_id: str, until, timeout_s: float = 180) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job} after {timeout_s} s")


def finished(job) -> bool:
    return job["status"] not in ("queued", "running")


def job_workers(server: ApiServer, before: tuple = ()) -> list:
    """The server's live spawned worker processes, less those in `before` (the upload and picture workers
    are spawned interpreters too: a test takes them as its baseline before it starts a job)."""
    return [p for p in psutil.Process(server.proc.pid).children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(p.cmdline())
            and p.pid not in {q.pid for q in before}]


def test_a_job_from_submission_to_results(server, tmp_path):
    with server.client() as c:
        r = c.post("/jobs", json={**LEAK_STUDY, "scenarios": 1500, "store": "full"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running") and job["target"] == "example/supply"
        assert c.get(f"/jobs/{job['id']}/summary").status_code in (409, 200)
        job = wait_for(c, job["id"], finished)
        assert job["status"] == "done", job
        assert job["scenarios_done"] == 1500 and job["progress"] == 1.0
        summary = c.get(f"/jobs/{job['id']}/summary").json()["summary"]
        assert summary["scenarios"] == 1500 and summary["converged"] == 1500 and summary["complete"]
        assert len(summary["worst_junctions"]) == 10
        result = c.get(f"/jobs/{job['id']}/result")
        assert result.status_code == 200 and result.headers["content-type"] == "application/x-hdf5"
        path = tmp_path / "result.h5"
        path.write_bytes(result.content)
        with h5py.File(path) as f:
            assert f.attrs["complete"] and f["node/pressure"].shape[0] == 1500
            worst = summary["worst_junctions"][0]
            j = list(f["node/ids"].asstr()[()]).index(worst["junction"])
            assert float(np.min(f["node/pressure"][:, :, j])) == pytest.approx(worst["pressure_min_m"], rel=1e-6)
        assert job["id"] in [j["id"] for j in c.get("/jobs").json()]
        picture = c.get(f"/jobs/{job['id']}/picture", params={"quantity": "pressure"})
        assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG", picture.text[:300]


@pytest.mark.parametrize("change, field", [
    ({"scenarios": CAP + 1}, "scenarios"),
    ({"leaks": {"count": 1, "area": {"distribution": "lognormal", "median_m2": 1e-4, "sigma": -1}}},
     "leaks.area.sigma"),
    ({"leaks": {"count": 1, "junctions": ["NOPE"], "area": {"distribution": "fixed", "value_m2": 1e-4}}},
     "leaks.junctions"),
    ({"target": {"park_id": "example"}}, "target.network"),
    ({"target": {"park_id": "p-000000000000", "network": "supply"}}, "target.park_id"),
    ({"target": {"network_id": "n-000000000000"}}, "target.network_id"),
])
def test_bad_studies_are_422_naming_the_field(server, change, field):
    with server.client() as c:
        r = c.post("/jobs", json={**LEAK_STUDY, "scenarios": 100, **change})
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field, r.json()


def test_cancel_stops_the_worker(server):
    with server.client() as c:
        others = tuple(job_workers(server))
        job = c.post("/jobs", json={**LEAK_STUDY, "scenarios": CAP}).json()
        wait_for(c, job["id"], lambda j: j["scenarios_done"] > 0 or finished(j))
        assert job_workers(server, others), "no worker process while the job runs"
        cancelled = c.post(f"/jobs/{job['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        time.sleep(1.0)
        assert not job_workers(server, others), "the worker still runs after cancel"
        after = c.get(f"/jobs/{job['id']}").json()
        assert after["status"] == "cancelled" and after["scenarios_done"] < CAP
        assert c.post(f"/jobs/{job['id']}/cancel").status_code == 409
        assert c.get(f"/jobs/{job['id']}/result").status_code == 409
        assert c.get("/jobs/j-000000000000").status_code == 404


def test_restart_with_a_job_in_flight(tmp_path):
    n = 30000
    first = ApiServer(tmp_path / "data").start()
    try:
        with first.client() as c:
            job = c.post("/jobs", json={**LEAK_STUDY, "scenarios": n}).json()
            wait_for(c, job["id"], lambda j: j["scenarios_done"] > 0 or finished(j))
            assert c.get(f"/jobs/{job['id']}").json()["status"] == "running", "finished before the kill: make it longer"
            workers = job_workers(first)
        first.stop(signal.SIGKILL)
        # the worker dies with its server (PR_SET_PDEATHSIG): nothing writes the file any more
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, "a job worker outlived its server"
    finally:
        first.stop(signal.SIGKILL)

    second = ApiServer(tmp_path / "data").start()
    try:
        with second.client() as c:
            job = c.get(f"/jobs/{job['id']}").json()
            assert job["status"] == "interrupted" and 0 < job["scenarios_done"] < n, job
            assert c.get(f"/jobs/{job['id']}/summary").status_code == 409
            r = c.post(f"/jobs/{job['id']}/resume")
            assert r.status_code == 202 and r.json()["status"] in ("queued", "running")
            resumed = wait_for(c, job["id"], finished)
            assert resumed["status"] == "done", resumed
            # the same study run without interruption gives the same statistics, bit for bit
            ref = c.post("/jobs", json={**LEAK_STUDY, "scenarios": n}).json()
            ref = wait_for(c, ref["id"], finished)
            assert ref["status"] == "done", ref
            files = {}
            for name, j in (("resumed", resumed), ("ref", ref)):
                files[name] = tmp_path / f"{name}.h5"
                files[name].write_bytes(c.get(f"/jobs/{j['id']}/result").content)
            with h5py.File(files["resumed"]) as a, h5py.File(files["ref"]) as b:
                assert a.attrs["complete"] and b.attrs["complete"]
                for ds in ("summary/pressure_mean", "summary/pressure_min", "summary/pressure_below_service_prob",
                           "summary/leak_mean", "scenario/done"):
                    np.testing.assert_array_equal(a[ds][()], b[ds][()], err_msg=ds)
            s1 = c.get(f"/jobs/{resumed['id']}/summary").json()["summary"]
            s2 = c.get(f"/jobs/{ref['id']}/summary").json()["summary"]
            assert s1["worst_junctions"] == s2["worst_junctions"]
            # a summary holds statistics: its picture's default quantity is one of them
            picture = c.get(f"/jobs/{ref['id']}/picture")
            assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG", picture.text[:300]
            bad = c.get(f"/jobs/{ref['id']}/picture", params={"quantity": "pressure"})
            assert bad.status_code == 422 and "low_pressure_probability" in bad.json()["detail"], bad.text
            assert str(tmp_path) not in bad.json()["detail"], bad.json()
    finally:
        second.stop()


def test_a_failed_jobs_error_names_no_server_path():
    """The worker records whatever its failure said (h5py, WNTR, the OS); the status never shows a path."""
    from parktwin.api.server.errors import register_root
    from parktwin.api.server.routes_jobs import _status
    register_root("/srv/parktwin-data")
    row = {"id": "j-0123456789ab", "status": "failed", "target": "example/supply", "scenarios": 10,
           "scenarios_done": 3, "store": "summary", "duration_s": 0, "created_utc": "t", "started_utc": None,
           "finished_utc": None,
           "error": "OSError: Unable to open file (name = '/srv/parktwin-data/jobs/j-0123456789ab/result.h5') "
                    "while reading /opt/venv/lib/python3.11/site-packages/wntr/network/io.py"}
    error = _status(row)["error"]
    assert "/srv" not in error and "/opt" not in error and "site-packages" not in error, error
    assert "result.h5" in error and "io.py" in error
    assert _status({**row, "error": None})["error"] is None
