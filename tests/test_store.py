"""The HDF5 result store and the chunked batch runner (DESIGN: "HDF5 result layout", "Performance")."""
from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from parktwin.hydraulics.results import ResultSet
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
from parktwin.hydraulics.inputs import BatchInputs
from parktwin.scenarios.batch import ScenarioBatch
from parktwin.scenarios.store import ResultStore, StoreMismatch, is_complete, read_results

REPO = Path(__file__).resolve().parents[1]
NETWORKS = Path("/work/shared/networks/epanet-tests")
NET1 = NETWORKS / "network_one" / "NET1.inp"
OTHER = NETWORKS / "network_one" / "NET1-3.inp"


def load_net(path: Path):
    from parktwin.hydraulics.compile import load_network
    return load_network(path)


@pytest.fixture(scope="module")
def net1():
    return load_net(NET1)


class FakeTable:
    """Stands in for scenarios.perturbations.PerturbationTable: only `write_h5` is used by the store."""

    def __init__(self, ids):
        self.ids = list(ids)

    def write_h5(self, group):
        group.create_dataset("scenario", data=np.array(self.ids, dtype=object), dtype=h5py.string_dtype())

    def for_scenarios(self, ids):
        return FakeTable(ids)


def make_batch(net, n_scenarios: int, bad: tuple[int, ...] = ()) -> ScenarioBatch:
    """Distinct scenarios: a demand multiplier from 0.5 to 1.5 on every junction."""
    ids = tuple(f"s{i:05d}" for i in range(n_scenarios))
    mult = np.repeat(np.linspace(0.5, 1.5, n_scenarios)[:, None], net.n_junctions, axis=1)
    mult[list(bad)] = -1.0   # marks scenarios that the patched solver in test_failures refuses
    return ScenarioBatch(ids=ids, inputs=BatchInputs(batch_size=n_scenarios, demand_multiplier=mult),
                         perturbations=FakeTable(ids), seed=7)


def synthetic_results(net, rows: np.ndarray, time_s) -> ResultSet:
    """Results whose every value encodes (scenario, time, element), so misplaced rows show."""
    res = ResultSet.allocate(net.node_ids, net.link_ids, time_s, len(rows))
    b, t, n = res.head_m.shape
    code = rows[:, None, None] * 1000.0 + np.arange(t)[None, :, None] * 100.0
    res.head_m[:] = code + np.arange(n)
    res.pressure_m[:] = res.head_m - net.elevation_m
    res.demand_m3s[:] = 1e-3 * (code + np.arange(n))
    res.leak_m3s[:] = 0.0
    res.flow_m3s[:] = code + np.arange(net.n_links) + 0.5
    res.status[:] = (rows[:, None, None] + np.arange(net.n_links)) % 3
    res.converged[:] = rows[:, None] % 4 != 3
    res.iterations[:] = rows[:, None] % 7 + 1
    res.failure[:] = ["" if r % 5 else f"reason {r}" for r in rows]
    return res


ATTRS = {"backend": "numpy", "device": "cpu: test", "solver_chunk_size": 4, "solver_accuracy": None}


# ---------------------------------------------------------------------------------------------- layout
def test_layout_matches_design(net1, tmp_path):
    xy = net1.xy_m.copy()
    xy[3] = np.nan   # a node without coordinates must be NaN in node/xyz
    net = dataclasses.replace(net1, xy_m=xy)
    b, time_s = 7, [0, 3600]
    ids = [f"case {i}" for i in range(b)]
    path = tmp_path / "layout.h5"
    store = ResultStore.create(path, net, ids, time_s, FakeTable(ids), ATTRS)
    store.write(slice(0, 4), synthetic_results(net, np.arange(4), time_s))
    store.write(np.arange(4, 7), synthetic_results(net, np.arange(4, 7), time_s))
    assert store.close(complete=True)

    n, l, t = net.n_nodes, net.n_links, 2
    with h5py.File(path, "r") as f:
        expected = {
            "node/ids": ((n,), "str"), "link/ids": ((l,), "str"), "scenario/ids": ((b,), "str"),
            "time_s": ((t,), np.int64),
            "node/head": ((b, t, n), np.float64), "node/pressure": ((b, t, n), np.float64),
            "node/demand": ((b, t, n), np.float64), "node/leak": ((b, t, n), np.float64),
            "link/flow": ((b, t, l), np.float64), "link/status": ((b, t, l), np.int8),
            "solver/converged": ((b, t), np.bool_), "solver/iterations": ((b, t), np.int32),
            "node/xyz": ((n, 3), np.float64), "link/nodes": ((l, 2), np.int32),
            "scenario/done": ((b,), np.bool_), "scenario/failure": ((b,), "str"),
            "network/inp": ((NET1.stat().st_size,), np.uint8),
        }
        for name, (shape, dtype) in expected.items():
            ds = f[name]
            assert ds.shape == shape, name
            if dtype == "str":
                assert h5py.check_string_dtype(ds.dtype).encoding == "utf-8", name
            else:
                assert ds.dtype == np.dtype(dtype), name
        for name in ("node/head", "link/flow", "link/status", "solver/converged"):
            assert f[name].chunks[0] <= 256 and f[name].chunks[1:] == f[name].shape[1:], name
            assert f[name].compression is None
        assert list(f["node/ids"].asstr()[()]) == list(net.node_ids)
        assert list(f["scenario/ids"].asstr()[()]) == ids
        assert list(f["scenario/perturbations/scenario"].asstr()[()]) == ids
        assert f["network/inp"][()].tobytes() == NET1.read_bytes()
        xyz = f["node/xyz"][()]
        assert np.isnan(xyz[3, :2]).all() and not np.isnan(xyz[np.arange(n) != 3, :2]).any()
        np.testing.assert_array_equal(xyz[:, 2], net.elevation_m)
        np.testing.assert_array_equal(f["link/nodes"][()], np.column_stack([net.link_start, net.link_end]))
        a = f.attrs
        for key in ("parktwin_version", "network_sha256", "backend", "device", "created_utc", "complete"):
            assert key in a, key
        assert a["network_sha256"] == hashlib.sha256(NET1.read_bytes()).hexdigest()
        assert a["backend"] == "numpy" and a["solver_chunk_size"] == 4 and a["solver_accuracy"] == "none"
        assert bool(a["complete"]) and f["scenario/done"][()].all()
    assert is_complete(path)

    res, meta = read_results(path)
    ref = synthetic_results(net, np.arange(b), time_s)
    for field in ("head_m", "pressure_m", "demand_m3s", "leak_m3s", "flow_m3s", "status", "converged",
                  "iterations"):
        np.testing.assert_array_equal(getattr(res, field), getattr(ref, field), err_msg=field)
    assert list(res.failure) == list(ref.failure)
    assert meta["complete"] and meta["scenario_ids"] == tuple(ids)
    one, meta_one = read_results(path, scenarios=["case 5", "case 2"])
    np.testing.assert_array_equal(one.head_m, ref.head_m[[5, 2]])
    assert meta_one["scenario_ids"] == ("case 5", "case 2")


def test_float32_and_compression_options(net1, tmp_path):
    ids = [str(i) for i in range(5)]
    path = tmp_path / "small.h5"
    store = ResultStore.create(path, net1, ids, [0], None, ATTRS, compression="gzip", float_dtype=np.float32)
    store.write(slice(None), synthetic_results(net1, np.arange(5), [0]))
    store.close()
    with h5py.File(path, "r") as f:
        assert f["node/head"].dtype == np.float32 and f["node/head"].compression == "gzip"
        assert f.attrs["float_dtype"] == "float32"
    res, _ = read_results(path)
    assert res.head_m.dtype == np.float64
    np.testing.assert_allclose(res.head_m, synthetic_results(net1, np.arange(5), [0]).head_m, rtol=1e-7)


def test_partial_file_says_so(net1, tmp_path):
    """Rows never written read as NaN / -1, are not flagged done, and the file is not complete."""
    ids = [str(i) for i in range(10)]
    path = tmp_path / "partial.h5"
    store = ResultStore.create(path, net1, ids, [0], None, ATTRS)
    store.write(np.array([7, 2, 5]), synthetic_results(net1, np.array([7, 2, 5]), [0]))
    np.testing.assert_array_equal(store.pending_rows(), [0, 1, 3, 4, 6, 8, 9])
    assert not store.close(complete=True)   # asked for, but not every scenario is done
    assert not is_complete(path)
    res, meta = read_results(path)
    assert not meta["complete"]
    np.testing.assert_array_equal(np.flatnonzero(meta["done"]), [2, 5, 7])
    np.testing.assert_array_equal(res.head_m[[2, 5, 7]], synthetic_results(net1, np.array([2, 5, 7]), [0]).head_m)
    assert np.isnan(res.head_m[[0, 1, 3]]).all() and (res.status[[0, 1, 3]] == -1).all()


def test_resume_refuses_other_network_ids_or_times(net1, tmp_path):
    ids = [str(i) for i in range(4)]
    path = tmp_path / "r.h5"
    ResultStore.create(path, net1, ids, [0], None, ATTRS).close(complete=False)
    with pytest.raises(StoreMismatch, match="network"):
        ResultStore.open_for_resume(path, "0" * 64, ids)
    with pytest.raises(StoreMismatch, match="ids"):
        ResultStore.open_for_resume(path, net1.source_sha256, ids[::-1])
    with pytest.raises(StoreMismatch, match="times"):
        ResultStore.open_for_resume(path, net1.source_sha256, ids, [0, 3600])
    store = ResultStore.open_for_resume(path, net1.source_sha256, ids, [0])
    assert len(store.pending_rows()) == 4
    store.close(complete=False)

    other = load_net(OTHER)
    assert other.source_sha256 != net1.source_sha256
    from parktwin.scenarios.runner import run_batch
    with pytest.raises(StoreMismatch):
        run_batch(other, make_batch(other, 4), SolverOptions(backend="numpy"), 0, path, resume=True)
    assert not is_complete(path)


# ---------------------------------------------------------------------------------------------- runner
class Stop(RuntimeError):
    pass


def _stop_after(n_chunks: int):
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if len(calls) == n_chunks:
            raise Stop("interrupted by the test")
    return progress, calls


def test_interrupted_run_resumes_to_the_uninterrupted_answer(net1, tmp_path):
    from parktwin.scenarios.runner import run_batch
    batch = make_batch(net1, 11)
    options = SolverOptions(backend="numpy", chunk_size=3)
    full = run_batch(net1, batch, options, 0, tmp_path / "full.h5")
    assert full.complete and full.n_scenarios == 11 and full.n_converged == 11 and full.n_failed == 0
    assert is_complete(tmp_path / "full.h5")

    path = tmp_path / "cut.h5"
    progress, calls = _stop_after(2)
    with pytest.raises(Stop):
        run_batch(net1, batch, options, 0, path, progress=progress)
    assert calls == [(3, 11), (6, 11)]
    assert not is_complete(path)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["scenario/done"][()], np.arange(11) < 6)
        assert not f.attrs["complete"]

    resumed = run_batch(net1, batch, options, 0, path, resume=True)
    assert resumed.complete and resumed.n_solved == 5 and resumed.n_converged == 11
    assert is_complete(path)
    a, _ = read_results(tmp_path / "full.h5")
    b, meta = read_results(path)
    for field in ("head_m", "pressure_m", "demand_m3s", "leak_m3s", "flow_m3s", "status", "converged",
                  "iterations"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert meta["attrs"]["backend"] == "numpy"
    # And the file agrees with one in-memory solve of the whole batch.
    direct = HydraulicSolver(net1, SolverOptions(backend="numpy")).run(batch.inputs, 0)
    np.testing.assert_allclose(b.head_m, direct.head_m, rtol=1e-12, atol=0)


def test_hard_kill_leaves_a_resumable_file(net1, tmp_path):
    """A process that dies without closing (os._exit after 2 chunks) leaves a readable, honest file."""
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
        from test_store import load_net, make_batch
        from parktwin.hydraulics.solver import SolverOptions
        from parktwin.scenarios.runner import run_batch
        net = load_net(__import__("pathlib").Path({str(NET1)!r}))
        calls = []
        def progress(done, total):
            calls.append(done)
            if len(calls) == 2:
                os._exit(3)
        run_batch(net, make_batch(net, 10), SolverOptions(backend="numpy", chunk_size=4), 0,
                  {str(path)!r}, progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert not is_complete(path)
    res, meta = read_results(path)
    np.testing.assert_array_equal(meta["done"], np.arange(10) < 8)
    assert not np.isnan(res.head_m[:8]).any() and np.isnan(res.head_m[8:]).all()

    from parktwin.scenarios.runner import run_batch
    batch = make_batch(net1, 10)
    summary = run_batch(net1, batch, SolverOptions(backend="numpy", chunk_size=4), 0, path, resume=True)
    assert summary.complete and summary.n_solved == 2 and is_complete(path)
    direct = HydraulicSolver(net1, SolverOptions(backend="numpy")).run(batch.inputs, 0)
    res, _ = read_results(path)
    np.testing.assert_allclose(res.flow_m3s, direct.flow_m3s, rtol=1e-12, atol=1e-15)


def test_failures_are_recorded_not_raised(net1, tmp_path, monkeypatch):
    from parktwin.scenarios.runner import run_batch
    original = HydraulicSolver.run

    def picky_run(self, inputs=None, duration_s=0):
        if inputs is not None and inputs.demand_multiplier is not None and (inputs.demand_multiplier < 0).any():
            raise FloatingPointError("negative demand multiplier")
        return original(self, inputs, duration_s)

    monkeypatch.setattr(HydraulicSolver, "run", picky_run)
    batch = make_batch(net1, 9, bad=(4,))
    summary = run_batch(net1, batch, SolverOptions(backend="numpy", chunk_size=5), 0, tmp_path / "f.h5")
    assert summary.complete and summary.n_failed == 1 and summary.n_converged == 8
    assert summary.failures == {"s00004": "solver error: FloatingPointError: negative demand multiplier"}
    res, meta = read_results(tmp_path / "f.h5")
    assert meta["done"].all() and np.isnan(res.head_m[4]).all() and not np.isnan(res.head_m[[3, 5]]).any()
    good = np.arange(9) != 4
    direct = HydraulicSolver(net1, SolverOptions(backend="numpy")).run(batch.inputs.subset(np.flatnonzero(good)), 0)
    np.testing.assert_allclose(res.head_m[good], direct.head_m, rtol=1e-12)


def test_memory_stays_bounded_for_20000_scenarios(net1, tmp_path, monkeypatch):
    """Every solve and every write holds one chunk, and going from 2,000 to 20,000 scenarios adds far less
    traced memory than the extra result arrays would take if they were materialised."""
    from parktwin.scenarios.runner import run_batch
    chunk = 1000
    sizes = {"solve": [], "write": []}
    original_run, original_write = HydraulicSolver.run, ResultStore.write

    def spy_run(self, inputs=None, duration_s=0):
        sizes["solve"].append(inputs.batch_size)
        return original_run(self, inputs, duration_s)

    def spy_write(self, rows, results):
        sizes["write"].append(results.batch_size)
        return original_write(self, rows, results)

    monkeypatch.setattr(HydraulicSolver, "run", spy_run)
    monkeypatch.setattr(ResultStore, "write", spy_write)
    options = SolverOptions(backend="numpy", chunk_size=chunk)
    peak_bytes = {}
    for b in (2_000, 20_000):
        batch = make_batch(net1, b)   # the inputs themselves are O(B); only the run is traced
        sizes["solve"].clear(), sizes["write"].clear()
        tracemalloc.start()
        try:
            summary = run_batch(net1, batch, options, 0, tmp_path / f"m{b}.h5")
            peak_bytes[b] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert summary.complete and summary.n_converged == b
        assert max(sizes["solve"]) == chunk and max(sizes["write"]) == chunk and sum(sizes["write"]) == b
    n, l = net1.n_nodes, net1.n_links
    bytes_per_scenario = 4 * n * 8 + l * 8 + l + 1 + 8     # node floats, flow, status, converged, iterations
    growth = peak_bytes[20_000] - peak_bytes[2_000]
    assert growth < 0.25 * 18_000 * bytes_per_scenario, (peak_bytes, bytes_per_scenario)
