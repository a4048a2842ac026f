"""The Monte-Carlo job worker: one spawned process per running job.

It reads its job from SQLite, solves it with `scenarios.montecarlo.run_monte_carlo` into
DATA_DIR/jobs/<id>/result.h5, writes progress back to SQLite (at most a few times a second), and at
the end a compact summary. It never outlives the server: on Linux the kernel kills it when the server
dies (PR_SET_PDEATHSIG), and the progress callback also exits if the parent has changed, so a job the
restarted server marks 'interrupted' is not still being written by an orphan.

This module is imported in a fresh interpreter (spawn), so it imports nothing of the web stack.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

PROGRESS_EVERY_S = 0.25
TOP_JUNCTIONS = 10


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def connect(db_path) -> sqlite3.Connection:
    con = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA busy_timeout = 30000")
    return con


def die_with_parent(parent_pid: int) -> None:
    """Make this process die with the server: the kernel sends SIGKILL when `parent_pid` ends (Linux)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)            # PR_SET_PDEATHSIG
    except OSError:
        pass                                     # not Linux: the progress callback's check remains
    if os.getppid() != parent_pid:               # the parent died before prctl took effect
        os._exit(1)


def run_job(db_path: str, job_id: str, result_path: str, parent_pid: int, ray_address: str | None,
            memory_bytes: int | None = None) -> None:
    die_with_parent(parent_pid)
    if memory_bytes:
        # The job was sized before it was accepted; this makes the estimate a bound (a MemoryError fails
        # the job, never the machine).
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    con = connect(db_path)
    try:
        _run(con, job_id, Path(result_path), parent_pid, ray_address)
    except Exception as exc:  # noqa: BLE001  recorded for the client; the worker's job is over either way
        traceback.print_exc()
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        message = message.replace(str(Path(result_path).parent.parent.parent), "")
        con.execute("UPDATE jobs SET status='failed', error=?, finished_utc=? WHERE id=? AND status='running'",
                    (message[:2000], utc_now(), job_id))
    finally:
        con.close()


def _run(con, job_id: str, out: Path, parent_pid: int, ray_address: str | None) -> None:
    from parktwin.hydraulics.compile import load_network
    from parktwin.scenarios.executor import ExecutorOptions
    from parktwin.scenarios.montecarlo import run_monte_carlo
    from parktwin.scenarios.spec import spec_from_dict
    row = con.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    spec = spec_from_dict(json.loads(row["spec_json"]))
    net = load_network(row["network_path"])
    out.parent.mkdir(parents=True, exist_ok=True)
    resume = bool(row["resume"]) and out.exists() and _readable(out)
    if not resume and out.exists():
        # A fresh run of a job whose earlier file is not to be resumed, or cannot be: a worker killed
        # while it created the file leaves one HDF5 cannot open, and resuming that would fail forever.
        out.unlink()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if os.getppid() != parent_pid:
            os._exit(1)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done >= total:
            last[0] = now
            con.execute("UPDATE jobs SET scenarios_done=? WHERE id=? AND status='running'", (int(done), job_id))

    executor = ExecutorOptions(ray_address=ray_address) if ray_address else ExecutorOptions()
    result = run_monte_carlo(net, spec, out, store=row["store"], duration_s=int(row["duration_s"]),
                             executor=executor, resume=resume, progress=progress)
    summary = {"scenarios": result.n_scenarios, "converged": result.n_converged, "failed": result.n_failed,
               "seconds": result.seconds, "scenarios_per_second": result.scenarios_per_second,
               "complete": bool(result.complete),
               "failures": dict(list(result.failures.items())[:TOP_JUNCTIONS]),
               **statistics(out, row["store"], net)}
    status = "done" if result.complete else "failed"
    con.execute("UPDATE jobs SET status=?, scenarios_done=?, summary_json=?, finished_utc=?, error=? "
                "WHERE id=? AND status='running'",
                (status, result.n_scenarios if result.complete else _done_in_file(out),
                 json.dumps(_finite(summary)), utc_now(),
                 None if result.complete else "the run ended without every scenario solved", job_id))


def _done_in_file(path: Path) -> int:
    """Scenarios the file holds as done: what a resume would skip (the row's count may be seconds old)."""
    import h5py
    with h5py.File(path, "r") as f:
        return int(np.count_nonzero(f["scenario/done"][()]))


def _readable(path: Path) -> bool:
    """Whether `path` is an HDF5 file whose creation finished (what a resume starts from): a worker killed
    while it wrote the scenarios' perturbation table leaves one that must start afresh."""
    import h5py

    from parktwin.scenarios.store import created
    try:
        with h5py.File(path, "r") as f:
            if not created(f):
                print(f"{path.name}: its creation did not finish; the job starts afresh", flush=True)
            return "scenario/done" in f and created(f)
    except OSError as exc:
        print(f"{path.name}: unreadable ({exc}); the job starts afresh", flush=True)
        return False


def _finite(x):
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


def statistics(path: Path, store: str, net) -> dict:
    """Network-wide figures and the junctions most often below service pressure (summary store) or with
    the lowest pressure of any scenario (full store)."""
    nj = net.n_junctions
    junctions = net.node_ids[:nj]
    if store == "summary":
        from parktwin.scenarios.summary_store import read_summary
        stats, meta = read_summary(path)
        pmin = np.nanmin(stats["pressure_min"][:, :nj], axis=0)
        prob = np.nanmax(stats["pressure_below_service_prob"][:, :nj], axis=0)
        order = np.argsort(-np.nan_to_num(prob, nan=-1.0), kind="stable")[:TOP_JUNCTIONS]
        return {"store": "summary", "service_pressure_m": meta["options"].service_pressure_m,
                "pressure_min_m": float(np.nanmin(pmin)) if nj else None,
                "pressure_mean_m": float(np.nanmean(stats["pressure_mean"][:, :nj])) if nj else None,
                "leak_mean_m3s": float(np.nansum(np.nanmean(stats["leak_mean"], axis=0))),
                "worst_junctions": [{"junction": junctions[i], "pressure_below_service_prob": prob[i],
                                     "pressure_min_m": pmin[i]} for i in order]}
    import h5py
    with h5py.File(path, "r") as f:
        pressure = f["node/pressure"]
        pmin = np.full(nj, np.inf)
        step = max(1, 2 ** 22 // max(pressure.shape[1] * pressure.shape[2], 1))   # ~16 MB of float32 a slice
        for start in range(0, pressure.shape[0], step):
            block = pressure[start:start + step, :, :nj]
            pmin = np.minimum(pmin, np.nanmin(block, axis=(0, 1)))
    order = np.argsort(pmin, kind="stable")[:TOP_JUNCTIONS]
    return {"store": "full", "pressure_min_m": float(pmin.min()) if nj else None,
            "worst_junctions": [{"junction": junctions[i], "pressure_min_m": pmin[i]} for i in order]}
