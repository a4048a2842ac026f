"""Chunks on a real local Ray cluster: identical results whatever the chunking, and a dying worker loses
nothing."""
from __future__ import annotations

import os
from functools import partial

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from oracle_compare import NETWORKS

LTOWN = NETWORKS / "benchmarks" / "l-town.inp"
pytestmark = pytest.mark.skipif(not LTOWN.exists(), reason="../shared/networks is not beside the repository")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    import sys
    from ray import cloudpickle
    # Ray workers cannot import this test module: ship its functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _batch(net, n, seed):
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.scenarios.batch import ScenarioBatch
    from parktwin.scenarios.perturbations import PerturbationTable
    rng = np.random.default_rng(seed)
    leak = sp.csr_matrix((rng.uniform(2e-5, 5e-4, n), (np.arange(n), rng.integers(0, net.n_junctions, n))),
                         shape=(n, net.n_junctions))
    inputs = BatchInputs(batch_size=n, leak_area_m2=leak, demand_multiplier=rng.uniform(0.7, 1.3, (n, 1)))
    return ScenarioBatch(ids=tuple(f"s{i}" for i in range(n)), inputs=inputs,
                         perturbations=PerturbationTable.from_rows([]))


DATASETS = ("node/head", "node/pressure", "node/demand", "node/leak", "link/flow", "link/status",
            "solver/converged", "solver/iterations", "scenario/done")


def test_same_file_whatever_the_chunks_and_workers(tmp_path, ray_cluster):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.scenarios.executor import ExecutorOptions
    from parktwin.scenarios.runner import run_batch
    net = load_network(LTOWN)
    batch = _batch(net, 1200, seed=3)
    files = {}
    for name, chunk, executor in (("c100", 100, ExecutorOptions()), ("c1000", 1000, ExecutorOptions()),
                                  ("ray", 250, ExecutorOptions(workers=2))):
        files[name] = tmp_path / f"{name}.h5"
        run_batch(net, batch, SolverOptions(chunk_size=chunk), 0, files[name], executor=executor)
    with h5py.File(files["c100"]) as ref:
        for name in ("c1000", "ray"):
            with h5py.File(files[name]) as other:
                assert other.attrs["complete"]
                for ds in DATASETS:
                    np.testing.assert_array_equal(other[ds][...], ref[ds][...], err_msg=f"{name}: {ds}")


def _dies_once(solver, inputs, rows, marker, duration_s, time_s):
    """The first worker to get the chunk that holds scenario 0 dies before answering."""
    from parktwin.scenarios.runner import _solve_rows
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        os._exit(1)
    return _solve_rows(solver, inputs, rows, duration_s, time_s)


def test_a_dying_worker_loses_nothing(tmp_path, ray_cluster):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.scenarios.executor import ExecutorOptions, solve_chunks
    net = load_network(LTOWN)
    batch = _batch(net, 600, seed=4)
    chunks = [np.arange(i, i + 100) for i in range(0, 600, 100)]
    time_s = np.zeros(1, np.int64)
    solve = partial(_dies_once, marker=str(tmp_path / "died"), duration_s=0, time_s=time_s)
    seen = []
    heads = np.full((600, net.n_nodes), np.nan)
    for rows, res in solve_chunks(net, batch.inputs, chunks, SolverOptions(), solve, ExecutorOptions(workers=2)):
        seen.extend(rows.tolist())
        heads[rows] = res.head_m[:, 0]
    assert (tmp_path / "died").exists(), "no worker died: the test did not test anything"
    assert sorted(seen) == list(range(600)), "every scenario exactly once"
    reference = HydraulicSolver(net, SolverOptions()).run(batch.inputs).head_m[:, 0]
    np.testing.assert_array_equal(heads, reference)
