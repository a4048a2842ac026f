"""`parktwin mc`: reproducible files whatever the chunking and workers, sampling chunk by chunk (never the
whole job), resume after a killed driver, replay of any stored scenario, and bad specifications refused
before anything runs."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from oracle_compare import NETWORKS

LTOWN = NETWORKS / "benchmarks" / "l-town.inp"
NET1 = NETWORKS / "epanet-tests" / "network_one" / "NET1.inp"
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not LTOWN.exists(), reason="../shared/networks is not beside the repository")

RESULT_SETS = {"full": ("node/head", "node/pressure", "node/demand", "node/leak", "link/flow", "link/status",
                        "solver/converged", "solver/iterations", "scenario/done", "scenario/failure"),
               "summary": ("summary/pressure_mean", "summary/pressure_min", "summary/pressure_max",
                           "summary/pressure_below_service_prob", "summary/leak_mean", "summary/flow_mean",
                           "scenario/done")}


def mc(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "mc", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def same_content(a: Path, b: Path, names) -> None:
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert fa.attrs["complete"] and fb.attrs["complete"]
        for name in names + ("scenario/perturbations/scenario", "scenario/perturbations/value"):
            if name in fa:
                np.testing.assert_array_equal(fa[name][()], fb[name][()], err_msg=name)


@pytest.mark.parametrize("store", ["full", "summary"])
def test_same_seed_same_file_whatever_the_chunks_and_workers(tmp_path, store):
    common = (LTOWN, "--scenarios", 1500, "--seed", 11, "--store", store, "--leaks", 1, "--leak-median-m2",
              1e-4, "--leak-sigma", 0.8, "--demand-min", 0.8, "--demand-max", 1.2)
    runs = {"c100": ("--chunk-size", 100), "c1000": ("--chunk-size", 1000),
            "ray": ("--chunk-size", 250, "--workers", 2)}
    for name, extra in runs.items():
        mc(*common, *extra, "--out", tmp_path / f"{name}.h5")
    for name in ("c1000", "ray"):
        same_content(tmp_path / "c100.h5", tmp_path / f"{name}.h5", RESULT_SETS[store])


def test_a_study_is_sampled_chunk_by_chunk_and_equals_one_sampled_whole(tmp_path, monkeypatch):
    # Issue 16: 20,000 scenarios of per-junction demand noise and roughness peaked at 12.3 GB because the
    # whole job was sampled up front. Now no call draws more than a chunk of scenarios, every scenario is
    # drawn twice in all (its rows for the file, its inputs when its chunk is solved), and the file is the
    # one the whole job sampled at once and solved in one chunk gives.
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.scenarios import samplers
    from parktwin.scenarios.montecarlo import run_monte_carlo
    from parktwin.scenarios.runner import run_batch
    from parktwin.scenarios.spec import spec_from_dict
    net = load_network(NET1)
    n = 300
    spec = spec_from_dict({"scenarios": n, "seed": 4, "sampler": "lhs",
                           "leaks": {"count": 1, "area": {"distribution": "lognormal", "median_m2": 1e-4, "sigma": 0.5}},
                           "demand": {"distribution": "normal", "mean": 1.0, "sd": 0.1, "junction_sd": 0.05},
                           "roughness": {"fraction": 0.1}, "breaks": {"count": 1}, "pump_outages": {"probability": 0.3}})
    run_batch(net, samplers.sample_batch(spec, net), SolverOptions(chunk_size=n), 0, tmp_path / "whole.h5",
              float_dtype=np.float32)
    real, drawn = samplers.sample_unit, []

    def counting(*args, **kwargs):
        unit = real(*args, **kwargs)
        drawn.append(len(unit))
        return unit
    monkeypatch.setattr(samplers, "sample_unit", counting)
    for chunk in (32, 100):
        drawn.clear()
        run_monte_carlo(net, spec, tmp_path / f"c{chunk}.h5", options=SolverOptions(chunk_size=chunk))
        assert max(drawn) <= chunk, drawn
        assert sum(drawn) == 2 * n + 1, drawn      # + the first scenario, asked whether quality varies
        same_content(tmp_path / "whole.h5", tmp_path / f"c{chunk}.h5",
                     RESULT_SETS["full"] + ("scenario/perturbations/element", "scenario/perturbations/attribute"))


def test_a_file_whose_creation_was_stopped_is_not_resumed(tmp_path):
    # A sampled study writes its table a chunk at a time while it creates the file; stopped then, the file
    # has done flags but only part of the table, and resuming it would leave the table short.
    import gc

    from parktwin.hydraulics.compile import load_network
    from parktwin.scenarios.store import ResultStore, StoreMismatch

    class StoppedWhileWritten:
        def write_h5(self, group):
            raise KeyboardInterrupt

    net, out, ids = load_network(NET1), tmp_path / "torn.h5", ["s0", "s1"]
    with pytest.raises(KeyboardInterrupt) as stopped:
        ResultStore.create(out, net, ids, np.zeros(1, np.int64), StoppedWhileWritten(),
                           {"backend": "numpy", "device": "cpu"})
    del stopped
    gc.collect()                 # the half-made file's handle, held by the exception's frame, closes
    with pytest.raises(StoreMismatch, match="creation did not finish.*cannot be resumed"):
        ResultStore.open_for_resume(out, net.source_sha256, ids, np.zeros(1, np.int64))


# The driver kills itself (SIGKILL, no clean-up) right after its k-th write to disk returns, so the test
# does not depend on how fast the machine solves: a timer-based kill let a fast CI machine finish first.
_KILLED_DRIVER = """
import os, runpy, signal, sys
from parktwin.scenarios.store import ResultStore
from parktwin.scenarios.summary_store import SummaryStore
owner, method, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
cls = {"full": ResultStore, "summary": SummaryStore}[owner]
original = getattr(cls, method)
calls = [0]
def write_then_die(self, *args, **kwargs):
    original(self, *args, **kwargs)
    calls[0] += 1
    if calls[0] == after:
        os.kill(os.getpid(), signal.SIGKILL)
setattr(cls, method, write_then_die)
sys.argv = ["parktwin"] + sys.argv[4:]
runpy.run_module("parktwin.api.cli", run_name="__main__")
"""


@pytest.mark.parametrize("store, method, writes", [("full", "write", 5), ("summary", "save", 2)])
def test_killed_driver_then_resume_gives_the_uninterrupted_file(tmp_path, store, method, writes):
    from parktwin.scenarios.store import is_complete
    common = (LTOWN, "--scenarios", 24000, "--seed", 5, "--store", store, "--chunk-size", 400)
    mc(*common, "--out", tmp_path / "ref.h5")
    out = tmp_path / "killed.h5"
    proc = subprocess.run([sys.executable, "-c", _KILLED_DRIVER, store, method, str(writes), "mc",
                           *map(str, common), "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not is_complete(out)
    with h5py.File(out) as f:
        assert not f.attrs["complete"]
        done_before = int(f["scenario/done"][()].sum())
    # full: 5 chunks of 400 written; summary: the state is saved every 8 chunks, so 2 saves count 16 chunks.
    assert done_before == {"full": 5 * 400, "summary": 16 * 400}[store]
    mc(*common, "--out", out, "--resume")
    same_content(tmp_path / "ref.h5", out, RESULT_SETS[store])


@pytest.mark.parametrize("store", ["full", "summary"])
def test_resuming_a_file_hdf5_cannot_open_is_one_error_naming_it(tmp_path, store):
    out = tmp_path / "torn.h5"
    out.write_bytes(b"\x89HDF\r\n" + bytes(4000))            # what a driver killed while creating it may leave
    proc = mc(LTOWN, "--scenarios", 10, "--seed", 1, "--store", store, "--out", out, "--resume", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(out) in proc.stderr and "cannot be resumed" in proc.stderr, proc.stderr


def test_any_stored_scenario_replays_with_parktwin_run(tmp_path):
    from parktwin.scenarios.perturbations import PerturbationTable
    from parktwin.scenarios.store import read_results
    out = tmp_path / "mc.h5"
    mc(LTOWN, "--scenarios", 50, "--seed", 3, "--breaks", 1, "--leaks", 2, "--leak-median-m2", 2e-4,
       "--leak-sigma", 0.5, "--out", out)
    res, meta = read_results(out)
    with h5py.File(out) as f:
        table = PerturbationTable.read_h5(f["scenario/perturbations"])
    for k in (0, 17, 49):
        sid = meta["scenario_ids"][k]
        rows = table.for_scenarios([sid])
        assert len(rows) >= 3
        csv = tmp_path / f"{sid}.csv"
        rows.to_csv(csv)
        replay = tmp_path / f"{sid}.h5"
        done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "run", str(LTOWN), "--scenarios", str(csv),
                               "--out", str(replay)], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        again, _ = read_results(replay)
        for name in ("head_m", "flow_m3s", "leak_m3s", "status"):
            np.testing.assert_array_equal(getattr(again, name)[0], getattr(res, name)[k], err_msg=f"{sid} {name}")


@pytest.mark.parametrize("args, needle", [
    (("--scenarios", 0, "--seed", 1), "scenarios"),
    (("--scenarios", 10, "--seed", 1, "--leaks", 1, "--leak-median-m2", -1e-4, "--leak-sigma", 1), "median_m2"),
    (("--scenarios", 10, "--seed", 1, "--pump-outage-probability", 1.5), "probability"),
], ids=["zero-scenarios", "negative-area", "probability-above-one"])
def test_bad_options_are_refused_naming_the_field(tmp_path, args, needle):
    proc = mc(LTOWN, *args, "--out", tmp_path / "r.h5", check=False)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("toml, needle", [
    ("scenarios = 10\nseed = 1\n[leaks.area]\ndistribution = 'gamma'\n", "leaks.area.distribution"),
    ("scenarios = 10\nseed = 1\n[leaks]\njunctions = ['J-99']\n[leaks.area]\nvalue_m2 = 1e-4\n"
     "distribution = 'fixed'\n", "J-99"),
], ids=["unknown-distribution", "unknown-junction"])
def test_bad_specifications_are_refused_naming_the_field(tmp_path, toml, needle):
    spec = tmp_path / "spec.toml"
    spec.write_text(toml)
    proc = mc(LTOWN, "--spec", spec, "--out", tmp_path / "r.h5", check=False)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.h5").exists()


def test_long_extended_studies_keep_summary_state_bounded():
    from parktwin.hydraulics.compile import load_network
    from parktwin.scenarios.montecarlo import HISTOGRAM_BUDGET_BYTES, summary_options_for
    net = load_network(LTOWN)
    snapshot = summary_options_for(net, 1)
    week = summary_options_for(net, 7 * 288 + 1)          # 5-minute report steps for a week
    assert snapshot.pressure_bin_m == 0.05
    assert week.pressure_bin_m > snapshot.pressure_bin_m
    _, _, n_bins = week.histogram_units()
    assert (7 * 288 + 1) * net.n_nodes * 4 * (n_bins + 2) <= HISTOGRAM_BUDGET_BYTES
