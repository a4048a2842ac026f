"""The API under abuse: safe defaults at start-up, uploads and jobs refused by their limits (naming the
limit and, for jobs, the estimated size) while /health keeps answering, workers that fail alone, the
Host check, DELETE and retention of jobs, lock waits that end in 503.

The live server runs with the default limits, as `parktwin serve` starts.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest

from test_api_whatif import EXAMPLE, REPO, ApiServer, free_port

WEEK_S = 7 * 86400


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("limits") / "data").start()
    yield srv
    srv.stop()


def serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k != "PARKTWIN_API_KEY"}
    return subprocess.run([sys.executable, "-m", "parktwin.api.cli", "serve", "--port", str(free_port()), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_public_bind_without_a_key_refuses_to_start(tmp_path):
    done = serve("--host", "0.0.0.0", "--data-dir", str(tmp_path / "data"))
    assert done.returncode != 0
    assert "PARKTWIN_API_KEY" in done.stderr and "--insecure" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_two_servers_cannot_share_a_data_directory(server):
    done = serve("--data-dir", str(server.data_dir))
    assert done.returncode != 0 and "in use by another ParkTwin server" in done.stderr, done.stderr
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200


def big_network(junctions: int) -> bytes:
    lines = ["[JUNCTIONS]", *(f"J{i} 10 0.001" for i in range(junctions)), "[RESERVOIRS]", "R1 100", "[PIPES]",
             *(f"P{i} J{i} J{i + 1} 100 200 100" for i in range(junctions - 1)), "PR R1 J0 100 200 100", "[END]"]
    return "\n".join(lines).encode()


class HealthWatch:
    """Polls /health from another thread while a request runs; keeps the slowest answer."""

    def __init__(self, url: str):
        self.url, self.slowest_s, self.failures = url, 0.0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with httpx.Client(timeout=5) as c:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = c.get(self.url + "/health").status_code == 200
                except httpx.HTTPError as exc:
                    ok = False
                    self.failures.append(repr(exc))
                self.slowest_s = max(self.slowest_s, time.perf_counter() - started)
                if not ok:
                    self.failures.append("not 200")
                time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_a_300000_junction_upload_is_refused_quickly_while_health_answers(server):
    data = big_network(300_000)
    assert len(data) < 32 * 2 ** 20           # within the upload cap: the element limit is what refuses it
    with HealthWatch(server.url) as watch, server.client() as c:
        started = time.perf_counter()
        r = c.post("/networks", params={"filename": "huge.inp"}, content=data,
                   headers={"content-type": "application/octet-stream"})
        took_s = time.perf_counter() - started
    assert r.status_code == 413, r.text
    assert r.json()["field"] == "file" and "300001 nodes" in r.json()["detail"], r.json()
    assert "PARKTWIN_MAX_NETWORK_NODES" in r.json()["detail"]
    assert took_s < 10, took_s
    assert not watch.failures and watch.slowest_s < 1.0, (watch.slowest_s, watch.failures)
    assert not [p for p in (server.data_dir / "networks").iterdir()], "a refused upload left files"
    print(f"300,000 junctions refused in {took_s:.2f} s; slowest /health {watch.slowest_s * 1e3:.0f} ms")


def test_a_one_second_time_grid_is_refused(server):
    inp = (EXAMPLE / "supply.inp").read_text()
    assert "PATTERN TIMESTEP     01:00:00" in inp
    inp = inp.replace("PATTERN TIMESTEP     01:00:00", "PATTERN TIMESTEP     01:00:01")
    with server.client() as c:
        r = c.post("/networks", params={"filename": "fine.inp"}, content=inp.encode(),
                   headers={"content-type": "application/octet-stream"})
    assert r.status_code == 422 and r.json()["field"] == "file", r.text
    assert "every 1 s" in r.json()["detail"] and "PARKTWIN_MIN_TIME_STEP_S" in r.json()["detail"], r.json()


def test_a_million_scenario_week_job_is_refused_with_its_size(server):
    study = {"target": {"park_id": "example", "network": "supply"}, "scenarios": 1_000_000, "seed": 1,
             "store": "full", "duration_s": WEEK_S,
             "leaks": {"count": 1, "area": {"distribution": "fixed", "value_m2": 1e-4}}}
    with HealthWatch(server.url) as watch, server.client() as c:
        started = time.perf_counter()
        r = c.post("/jobs", json=study)
        took_s = time.perf_counter() - started
        assert r.status_code == 413 and r.json()["field"] == "scenarios", r.text
        detail = r.json()["detail"]
        assert "1000000 scenarios x 169 report times" in detail and "GiB on disk" in detail, detail
        assert "PARKTWIN_MAX_JOB_" in detail, detail
        # 0.94 MB a scenario (DESIGN's layout in float32): about 878 GiB in all
        disk_gib = float(detail.split(" GiB on disk")[0].rsplit(" ", 1)[1])
        assert 850 < disk_gib < 900, detail
        assert c.get("/jobs").json() == [], "a refused job was recorded"
    assert took_s < 10 and not watch.failures and watch.slowest_s < 1.0, (took_s, watch.slowest_s)


def test_the_host_header_is_checked(server):
    # DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1 reaches this server by name
    r = httpx.get(server.url + "/parks", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 400 and r.json()["field"] == "Host", r.text
    assert httpx.get(f"http://localhost:{server.port}/health", timeout=10).status_code == 200


def test_undocumented_methods_name_the_documented_ones(server):
    with server.client() as c:
        r = c.put("/jobs")
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST", r.headers
        assert c.patch("/jobs/j-000000000000").headers["allow"] == "DELETE, GET"


def test_delete_a_job(server):
    study = {"target": {"park_id": "example", "network": "supply"}, "scenarios": 20, "seed": 1,
             "leaks": {"count": 1, "area": {"distribution": "fixed", "value_m2": 1e-4}}}
    with server.client() as c:
        job = c.post("/jobs", json=study).json()
        deadline = time.time() + 120
        while c.get(f"/jobs/{job['id']}").json()["status"] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.1)
        assert (server.data_dir / "jobs" / job["id"] / "result.h5").is_file()
        assert c.delete(f"/jobs/{job['id']}").status_code == 204
        assert c.get(f"/jobs/{job['id']}").status_code == 404
        assert not (server.data_dir / "jobs" / job["id"]).exists()
        assert c.delete(f"/jobs/{job['id']}").status_code == 404


# ---------------------------------------------------------------------- in-process
def test_finished_jobs_expire_after_the_retention_time(tmp_path):
    from parktwin.api.server.jobs import JobManager
    from parktwin.api.server.settings import Settings
    manager = JobManager(Settings(data_dir=tmp_path, job_retention_s=3600))
    manager.start()
    manager.stop()          # the table exists; no scheduler runs while the test changes rows
    old = manager.submit("example/supply", EXAMPLE / "supply.inp", {}, "summary", 0, 10)
    new = manager.submit("example/supply", EXAMPLE / "supply.inp", {}, "summary", 0, 10)
    assert manager._set(old, "queued", status="done", finished_utc="2020-01-01T00:00:00Z")
    assert manager._set(new, "queued", status="done", finished_utc="2999-01-01T00:00:00Z")
    (manager.jobs_dir / old).mkdir()
    (manager.jobs_dir / old / "result.h5").write_bytes(b"x" * 100)
    manager._next_retention = 0.0      # the scheduler's pass at start-up was moments ago: due again now
    manager._expire()
    assert [j["id"] for j in manager.list()] == [new]
    assert not (manager.jobs_dir / old).exists()


def test_a_wait_for_a_busy_base_run_ends_in_503(tmp_path):
    from parktwin.api.server.errors import ApiError
    from parktwin.api.server.registry import EXAMPLE_ID, Registry
    registry = Registry(tmp_path / "data", EXAMPLE, 2 ** 27, 64, lock_timeout_s=0.2)
    busy = threading.Lock()
    busy.acquire()                                     # another request is running the base case
    registry._run_locks[(EXAMPLE_ID, 0)] = busy
    started = time.perf_counter()
    with pytest.raises(ApiError) as refused:
        registry.base_result(EXAMPLE_ID, 0)
    assert refused.value.status == 503 and time.perf_counter() - started < 5
    with pytest.raises(ApiError) as unknown:           # an unknown park never gets a lock of its own
        registry.base_result("p-000000000000", 0)
    assert unknown.value.status == 404 and ("p-000000000000", 0) not in registry._run_locks


def test_the_sandbox_survives_what_kills_its_worker():
    from parktwin.api.server.sandbox import Sandbox, SandboxFailure
    sandbox = Sandbox("test", 2 * 2 ** 30)
    try:
        first = sandbox.call("os:getpid", (), 60, 1)
        with pytest.raises(SandboxFailure) as memory:
            sandbox.call("builtins:bytearray", (3 * 2 ** 30,), 60, 1)      # over its address space
        assert memory.value.reason == "memory"
        with pytest.raises(SandboxFailure) as slow:
            sandbox.call("time:sleep", (30,), 0.5, 1)
        assert slow.value.reason == "timeout"
        with pytest.raises(SandboxFailure) as crash:
            sandbox.call("os:_exit", (7,), 60, 1)
        assert crash.value.reason == "crashed" and "exit code 7" in str(crash.value)
        assert sandbox.call("os:getpid", (), 60, 1) not in (first, None)   # a fresh worker answers
    finally:
        sandbox.stop()


@pytest.mark.parametrize("section, lines, words", [
    ("[JUNCTIONS]", ["J1 1 0", "J2 1 0", "J3 1 0"], "3 nodes"),
    ("[PATTERNS]", ["P1 1 1 1 1"], "4 pattern multipliers"),
    ("[CONTROLS]", ["LINK P1 OPEN AT TIME 1", "LINK P1 CLOSED AT TIME 2"], "2 lines of controls"),
])
def test_upload_counts_are_checked_before_the_file_is_read(tmp_path, section, lines, words):
    from parktwin.api.server.errors import ApiError
    from parktwin.api.server.settings import UploadLimits
    from parktwin.api.server.uploads import read_network
    path = tmp_path / "net.inp"
    # not a valid network: the counts alone must refuse it, before the reader sees it
    path.write_text(f"{section}\n; a comment line is not counted\n" + "\n".join(lines) + "\n[END]\n")
    limits = UploadLimits(max_nodes=2, max_pattern_values=3, max_control_lines=1)
    with pytest.raises(ApiError) as refused:
        read_network(str(path), "net.inp", limits)
    assert refused.value.status == 413 and words in refused.value.detail, refused.value.detail


def test_the_total_disk_and_the_queue_are_capped(tmp_path):
    from types import SimpleNamespace

    from parktwin.api.server.errors import ApiError
    from parktwin.api.server.jobs import JobManager
    from parktwin.api.server.routes_jobs import _check_size
    from parktwin.api.server.settings import Settings
    from parktwin.api.server.sizing import JobSize
    settings = Settings(data_dir=tmp_path, max_queued_jobs=1, max_total_disk_bytes=10_000)
    jobs = JobManager(settings)
    jobs.start()
    jobs.stop()             # the table exists; nothing runs the queued job below
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=settings, jobs=jobs)))
    _check_size(request, JobSize(10, 1, 5, 5, 10, memory_bytes=1000, disk_bytes=4000))       # fits
    jobs.submit("example/supply", EXAMPLE / "supply.inp", {}, "full", 0, 10, est_disk_bytes=4000)
    (jobs.jobs_dir / "j-000000000000").mkdir()                        # a finished job's file: 3000 B
    (jobs.jobs_dir / "j-000000000000" / "result.h5").write_bytes(b"x" * 3000)
    assert jobs.disk_in_use() == 7000
    with pytest.raises(ApiError) as disk:
        _check_size(request, JobSize(10, 1, 5, 5, 10, memory_bytes=1000, disk_bytes=3001))
    assert disk.value.status == 413 and "PARKTWIN_MAX_TOTAL_DISK_BYTES" in disk.value.detail, disk.value.detail
    with pytest.raises(ApiError) as queue:
        _check_size(request, JobSize(10, 1, 5, 5, 10, memory_bytes=1000, disk_bytes=3000))
    assert queue.value.status == 429 and "PARKTWIN_MAX_QUEUED_JOBS" in queue.value.detail, queue.value.detail


def test_a_park_with_more_enterprises_than_the_cap_is_refused(tmp_path):
    import shutil

    from parktwin.api.server.errors import ApiError
    from parktwin.api.server.settings import UploadLimits
    from parktwin.api.server.uploads import read_park
    folder = tmp_path / "park"
    shutil.copytree(EXAMPLE, folder)
    assert read_park(str(folder), UploadLimits(max_enterprises=11))["enterprises"] == 11
    with pytest.raises(ApiError) as refused:
        read_park(str(folder), UploadLimits(max_enterprises=10))
    assert refused.value.status == 413 and "11 enterprises" in refused.value.detail
    assert "PARKTWIN_MAX_ENTERPRISES" in refused.value.detail and refused.value.field == "enterprises"


def test_the_default_limits_refuse_none_of_the_shared_networks():
    """The limits bound abuse, not use: every validation network (benchmarks up to BWSN-2's 12,527 nodes,
    EPANET's own cases) passes the upload checks with the server's defaults."""
    from parktwin.api.server.settings import UploadLimits
    from parktwin.api.server.uploads import read_network
    networks = sorted((REPO.parent / "shared" / "networks").rglob("*.inp"))
    assert len(networks) >= 40, "../shared/networks is not beside the repository"
    sizes = [read_network(str(path), path.name, UploadLimits())["nodes"] for path in networks]
    assert max(sizes) >= 12_000


def test_the_docs_list_every_limit_with_its_variable_and_default():
    """docs/api.md's table of settings names every PARKTWIN_* variable the server reads, each on a row
    that gives its default."""
    import dataclasses
    import re

    from parktwin.api.server import settings as st
    docs = (REPO / "docs" / "api.md").read_text()
    rows = [line for line in docs.splitlines() if line.startswith("| ")]
    source = "\n".join(p.read_text() for p in (REPO / "api" / "server").glob("*.py"))
    read = set(re.findall(r"PARKTWIN_[A-Z_]+", source)) - {"PARKTWIN_"}
    assert read >= set(st.ENV_INTS.values()) | set(st.UPLOAD_ENV_INTS.values())
    for var in sorted(read):
        assert any(f"`{var}`" in row for row in rows), f"{var} is not in docs/api.md's table of settings"
    defaults = {f.name: f.default for f in dataclasses.fields(st.Settings)}
    defaults.update({f.name: f.default for f in dataclasses.fields(st.UploadLimits)})

    def spelled(value: int) -> set[str]:
        out = {f"{value:,}", f"{value} s", f"{value:,} s"}
        for unit, size in (("GiB", st.GIB), ("MiB", st.MIB)):
            if value % size == 0:
                out.add(f"{value // size} {unit}")
        if value % st.DAY_S == 0:
            out.add(f"{value // st.DAY_S} days")
        return out

    for setting, var in {**st.ENV_INTS, **st.UPLOAD_ENV_INTS}.items():
        row = next(row for row in rows if f"`{var}`" in row)
        default = row.rsplit("|", 2)[-2]
        assert any(s in default for s in spelled(defaults[setting])), \
            f"{var}: default {defaults[setting]} not in its row {row!r}"
