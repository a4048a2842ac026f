"""5,000 random single-leak scenarios on L-Town through `parktwin run`, against EPANET one by one.

Leak area 2e-5 to 5e-4 m2 at a random junction (an orifice, Cd 0.75, EPANET emitter with exponent 0.5 and
no backflow) and a global demand multiplier 0.7 to 1.3, the scheme of bench/toolkit_loop.py.
"""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from oracle_compare import EPANET_ACCURACY, NETWORKS, compared_nodes, describe, mismatch

LTOWN = NETWORKS / "benchmarks" / "l-town.inp"
N_SCENARIOS = 5000


@pytest.mark.skipif(not LTOWN.exists(), reason="../shared/networks is not beside the repository")
def test_ltown_leak_scenarios_match_epanet(tmp_path):
    from bench.toolkit_loop import junction_ids_of, make_leak_scenarios, run_toolkit_loop
    from parktwin.hydraulics.oracle import EpanetProject
    from parktwin.scenarios.store import is_complete, read_results

    with EpanetProject(LTOWN, accuracy=EPANET_ACCURACY) as ep:
        junction_ids = junction_ids_of(ep)
        junction, area, mult = make_leak_scenarios(N_SCENARIOS, seed=20240601, junction_ids=junction_ids)
        ref = run_toolkit_loop(ep, junction, area, mult, keep_results=True)
        node_ids, link_ids = ep.node_ids, ep.link_ids
        base = ep.solve_snapshot()
        mask = compared_nodes(ep.node_types, ep.link_nodes, ep.link_types, base["status"])

    table = tmp_path / "leaks.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scenario", "element", "attribute", "value"])
        for i in range(N_SCENARIOS):
            w.writerow([f"s{i}", junction_ids[junction[i]], "leak_area_m2", repr(float(area[i]))])
            w.writerow([f"s{i}", "*", "demand_multiplier", repr(float(mult[i]))])
    out = tmp_path / "leaks.h5"
    cmd = [sys.executable, "-m", "parktwin.api.cli", "run", str(LTOWN), "--scenarios", str(table), "--out", str(out),
           "--accuracy", str(EPANET_ACCURACY)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert is_complete(out)

    res, meta = read_results(out)
    assert list(meta["scenario_ids"]) == [f"s{i}" for i in range(N_SCENARIOS)]
    assert res.converged.all()
    from parktwin.hydraulics.compile import load_network
    net = load_network(LTOWN)
    ni = np.array([net.node_index(n) for n in node_ids])
    li = np.array([net.link_index(k) for k in link_ids])
    h, q = res.head_m[:, 0][:, ni], res.flow_m3s[:, 0][:, li]
    mm = mismatch(h, q, ref["head_m"], ref["flow_m3s"], mask[None, :])
    assert not mm.any, describe("l-town leaks", node_ids, link_ids, h, q, ref["head_m"], ref["flow_m3s"], mm,
                                [f"s{i}" for i in range(N_SCENARIOS)])
    # The leak itself: the orifice law at the leak node.
    leak = res.leak_m3s[np.arange(N_SCENARIOS), 0, ni[np.flatnonzero(np.isin(node_ids, junction_ids))][junction]]
    p = res.pressure_m[np.arange(N_SCENARIOS), 0, ni[np.flatnonzero(np.isin(node_ids, junction_ids))][junction]]
    expected = 0.75 * area * np.sqrt(2 * 9.81 * np.maximum(p, 0.0))
    np.testing.assert_allclose(leak, expected, rtol=1e-6, atol=1e-8)


def test_warm_leaks_start_at_their_orifice_flow_and_end_at_the_cold_answer():
    """A warm-started leak starts at sqrt(p / Ke) at the base case's pressure (not inithyd()'s 1 cfs):
    fewer trials, the same answer as a cold solve."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    net = load_network(LTOWN)
    rng = np.random.default_rng(11)
    n, nj = 64, net.n_junctions
    leak = np.zeros((n, nj))
    leak[np.arange(n), rng.integers(0, nj, n)] = rng.uniform(2e-5, 5e-4, n)
    inputs = BatchInputs(batch_size=n, leak_area_m2=leak)
    solver = HydraulicSolver(net, SolverOptions(backend="numba", accuracy=1e-5))
    assert solver.base_flows() is not None, "L-Town warm-starts"
    st = solver._initial(inputs, np.repeat(solver.base_flows(), n, axis=1))
    j, b = np.nonzero(st.leak_ke)
    np.testing.assert_allclose(st.leak_flow[j, b], np.sqrt(np.maximum(solver._base_pressure_ft[j, 0], 0) / st.leak_ke[j, b]))
    warm = solver.snapshot(inputs)
    warm_trials = solver.last_outcome.iterations.copy()
    cold = solver.snapshot(inputs, warm=False)
    cold_trials = solver.last_outcome.iterations.copy()
    assert warm.converged.all() and cold.converged.all()
    np.testing.assert_allclose(warm.head_m, cold.head_m, rtol=0, atol=1e-4)
    np.testing.assert_allclose(warm.leak_m3s, cold.leak_m3s, rtol=1e-4, atol=1e-8)
    assert warm_trials.mean() < 0.5 * cold_trials.mean(), (warm_trials.mean(), cold_trials.mean())
