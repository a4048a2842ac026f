"""Monte-Carlo jobs: recorded in SQLite (WAL) under the data directory, solved in spawned worker processes.

States: queued -> running -> done | failed; cancel from queued/running/interrupted -> cancelled;
a job that was running when the server stopped is 'interrupted' at the next start, and resume (from
interrupted, cancelled or failed) queues it again with run_monte_carlo(resume=True) on its file.

One scheduler thread starts queued jobs while fewer than `max_workers` run, reaps finished workers and,
once a minute, deletes jobs finished longer ago than the retention time (their rows and files); the
workers write their own progress and result rows (api.server.worker). Each request opens its own
short-lived SQLite connection: sqlite3 connections must not cross threads, and WAL lets readers and the
workers' writers proceed together.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import secrets
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from parktwin.api.server.errors import ApiError
from parktwin.api.server.worker import connect, utc_now

log = logging.getLogger("parktwin.api.jobs")
JOB_RE = re.compile(r"^j-[0-9a-f]{12}$")
POLL_S = 0.1
WORKER_BASE_BYTES = 3 * 2 ** 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    target TEXT NOT NULL,
    network_path TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    store TEXT NOT NULL,
    duration_s INTEGER NOT NULL,
    scenarios INTEGER NOT NULL,
    scenarios_done INTEGER NOT NULL DEFAULT 0,
    created_utc TEXT NOT NULL,
    started_utc TEXT,
    finished_utc TEXT,
    error TEXT,
    summary_json TEXT,
    resume INTEGER NOT NULL DEFAULT 0,
    est_disk_bytes INTEGER NOT NULL DEFAULT 0
)"""
RETENTION_EVERY_S = 60.0
UNFINISHED = ("queued", "running")


class JobManager:
    def __init__(self, settings):
        self.settings = settings
        self.db_path = settings.data_dir / "jobs.sqlite"
        self.jobs_dir = settings.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.max_workers, self.ray_address = settings.max_workers, settings.ray_address
        self._next_retention = 0.0
        self._ctx = multiprocessing.get_context("spawn")   # fork would copy the server's threads and locks
        self._running: dict[str, multiprocessing.process.BaseProcess] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        con = connect(self.db_path)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)
            columns = {r["name"] for r in con.execute("PRAGMA table_info(jobs)")}
            if "est_disk_bytes" not in columns:          # a job table from before job sizing
                con.execute("ALTER TABLE jobs ADD COLUMN est_disk_bytes INTEGER NOT NULL DEFAULT 0")
            # Jobs that were running when the last server stopped: their workers died with it.
            n = con.execute("UPDATE jobs SET status='interrupted', error='the server stopped while it ran' "
                            "WHERE status='running'").rowcount
        finally:
            con.close()
        if n:
            log.warning("%d job(s) were running when the server last stopped: marked interrupted", n)
        self._thread = threading.Thread(target=self._loop, name="parktwin-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Graceful shutdown: workers are stopped and their jobs left 'interrupted' (resumable)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            running = dict(self._running)
            self._running.clear()
        for job_id, proc in running.items():
            proc.kill()
            proc.join(timeout=10)
            self._set(job_id, "running", status="interrupted", error="the server stopped while it ran")

    # ------------------------------------------------------------------ requests
    def submit(self, target: str, network_path: Path, spec_json: dict, store: str, duration_s: int,
               scenarios: int, est_disk_bytes: int = 0) -> str:
        job_id = "j-" + secrets.token_hex(6)
        con = connect(self.db_path)
        try:
            con.execute("INSERT INTO jobs (id, status, target, network_path, spec_json, store, duration_s, scenarios,"
                        " created_utc, est_disk_bytes) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                        (job_id, target, str(network_path), json.dumps(spec_json), store, int(duration_s),
                         int(scenarios), utc_now(), int(est_disk_bytes)))
        finally:
            con.close()
        self._wake.set()
        return job_id

    def get(self, job_id: str) -> dict:
        if not JOB_RE.fullmatch(job_id):   # fullmatch: '$' would let a trailing newline in
            raise ApiError(404, f"no job {job_id!r}", "job_id")
        con = connect(self.db_path)
        try:
            row = con.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        finally:
            con.close()
        if row is None:
            raise ApiError(404, f"no job {job_id!r}", "job_id")
        return dict(row)

    def list(self, limit: int = 100) -> list[dict]:
        con = connect(self.db_path)
        try:
            rows = con.execute("SELECT * FROM jobs ORDER BY created_utc DESC, id LIMIT ?", (limit,)).fetchall()
        finally:
            con.close()
        return [dict(r) for r in rows]

    def unfinished(self) -> int:
        """Jobs queued or running (the queue the server's cap bounds)."""
        con = connect(self.db_path)
        try:
            return con.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
        finally:
            con.close()

    def disk_in_use(self) -> int:
        """Bytes of the job files kept, plus what unfinished jobs will still write: a queued job its
        estimated file, a running one its estimate less what it has written so far."""
        def size(job_id: str) -> int:
            return sum(f.stat().st_size for f in (self.jobs_dir / job_id).glob("*") if f.is_file())
        con = connect(self.db_path)
        try:
            unfinished = [dict(r) for r in con.execute("SELECT id, est_disk_bytes FROM jobs WHERE status IN "
                                                       "('queued', 'running')")]
        finally:
            con.close()
        on_disk = sum(size(d.name) for d in self.jobs_dir.iterdir() if d.is_dir())
        return int(on_disk + sum(max(0, r["est_disk_bytes"] - size(r["id"])) for r in unfinished))

    def delete(self, job_id: str) -> None:
        """Forget a job: its worker is stopped (when it runs), its row and its files removed."""
        job = self.get(job_id)
        if job["status"] in ("queued", "running"):
            self.cancel(job_id)
        with self._lock:
            proc = self._running.get(job_id)
        if proc is not None:                     # finished or killed, but not reaped yet: let it exit first
            proc.join(timeout=10)
            if proc.is_alive():
                raise ApiError(409, f"job {job_id}: its worker is still stopping; try again", "job_id")
        con = connect(self.db_path)
        try:
            con.execute("DELETE FROM jobs WHERE id=?", (job_id,))
        finally:
            con.close()
        shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)

    def _expire(self) -> None:
        """Delete jobs finished (or interrupted) longer ago than the retention time, at most once a minute."""
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + RETENTION_EVERY_S
        cutoff = (datetime.now(timezone.utc) - timedelta(seconds=self.settings.job_retention_s)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        con = connect(self.db_path)
        try:
            old = [r["id"] for r in con.execute(
                "SELECT id FROM jobs WHERE (status IN ('done', 'failed', 'cancelled') AND finished_utc < ?) "
                "OR (status='interrupted' AND created_utc < ?)", (cutoff, cutoff))]
        finally:
            con.close()
        for job_id in old:
            log.info("job %s: older than the retention time, deleted", job_id)
            self.delete(job_id)

    def result_path(self, job_id: str) -> Path:
        return self.jobs_dir / job_id / "result.h5"

    def cancel(self, job_id: str) -> dict:
        # The row first: a worker that finishes meanwhile updates only rows still 'running'. The update is
        # conditional on the status read, so a job that moved on (queued -> running) is read again.
        while True:
            job = self.get(job_id)
            if job["status"] not in ("queued", "running", "interrupted"):
                raise ApiError(409, f"job {job_id} is {job['status']}: only a queued, running or interrupted job "
                                    "can be cancelled", "job_id")
            if self._set(job_id, job["status"], status="cancelled", finished_utc=utc_now()):
                break
        # The process stays registered until it is dead: _start_queued does not start a job whose
        # previous worker is still registered, so a resume racing this cancel never puts two workers
        # on one HDF5 file.
        with self._lock:
            proc = self._running.get(job_id)
        if proc is not None:
            proc.kill()            # SIGKILL: the HDF5 file stays resumable by design
            proc.join(timeout=10)
            with self._lock:
                if self._running.get(job_id) is proc and not proc.is_alive():
                    del self._running[job_id]
        return self.get(job_id)

    def resume(self, job_id: str) -> dict:
        job = self.get(job_id)
        if job["status"] not in ("interrupted", "cancelled", "failed"):
            raise ApiError(409, f"job {job_id} is {job['status']}: only an interrupted, cancelled or failed job "
                                "can be resumed", "job_id")
        self._set(job_id, job["status"], status="queued", resume=1, error=None, finished_utc=None)
        self._wake.set()
        return self.get(job_id)

    # ------------------------------------------------------------------ scheduler
    def _set(self, job_id: str, expected_status: str, **values) -> bool:
        cols = ", ".join(f"{k}=?" for k in values)
        con = connect(self.db_path)
        try:
            return con.execute(f"UPDATE jobs SET {cols} WHERE id=? AND status=?",
                               (*values.values(), job_id, expected_status)).rowcount == 1
        finally:
            con.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._start_queued()
                self._expire()
            except Exception:  # noqa: BLE001  the scheduler must outlive one bad job; logged with traceback
                log.exception("job scheduler")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def _reap(self) -> None:
        with self._lock:
            finished = [(j, p) for j, p in self._running.items() if not p.is_alive()]
            for job_id, _ in finished:
                del self._running[job_id]
        for job_id, proc in finished:
            proc.join()
            # A worker that exits normally has written done/failed itself; this catches crashes.
            self._set(job_id, "running", status="failed", finished_utc=utc_now(),
                      error=f"the worker process ended unexpectedly (exit code {proc.exitcode})")

    def _memory_limit(self) -> int | None:
        """The job worker's address-space limit: the per-job memory cap plus what an interpreter with the
        solver's libraries reserves before it allocates anything. None on a Ray cluster (work is remote)."""
        return None if self.ray_address else self.settings.max_job_memory_bytes + WORKER_BASE_BYTES

    def _start_queued(self) -> None:
        with self._lock:
            free = self.max_workers - len(self._running)
        if free <= 0:
            return
        con = connect(self.db_path)
        try:
            ids = [r["id"] for r in con.execute("SELECT id FROM jobs WHERE status='queued' ORDER BY created_utc, id "
                                                "LIMIT ?", (free,))]
        finally:
            con.close()
        from parktwin.api.server.worker import run_job
        for job_id in ids:
            # Under the lock from the status change to the registration, so that a cancel that sees
            # 'running' always finds the process to kill.
            with self._lock:
                if job_id in self._running:
                    continue           # its previous worker (failed or cancelled, resumed) has not exited yet
                if not self._set(job_id, "queued", status="running", started_utc=utc_now()):
                    continue           # cancelled in the meantime
                proc = self._ctx.Process(target=run_job, name=f"parktwin-job-{job_id}", daemon=True,
                                         args=(str(self.db_path), job_id, str(self.result_path(job_id)),
                                               os.getpid(), self.ray_address, self._memory_limit()))
                proc.start()
                self._running[job_id] = proc
