"""Extended-period runs into reused result memory: a batch where some scenarios halt (UNBALANCED STOP)
at different steps gives the same arrays, NaN where a halted scenario has no result, whether it is
written into fresh memory, into a buffer full of an earlier chunk's values, or solved alone."""
from __future__ import annotations

import re

import numpy as np
import pytest

from oracle_compare import NETWORKS

SAMPLETOWN = NETWORKS / "epanet-tests" / "small" / "sampletown.inp"
pytestmark = pytest.mark.skipif(not SAMPLETOWN.exists(), reason="../shared/networks is not beside the repository")
# With 6 trials and UNBALANCED STOP, these demand multipliers halt at t=0 (1.0), at the 7th step (2, 3)
# or never: the mixed batch the blanking must handle.
MULTIPLIERS = np.array([0.05, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0, 5.0])[:, None]
ARRAYS = ("head_m", "pressure_m", "demand_m3s", "leak_m3s", "flow_m3s", "status", "converged", "iterations",
          "failure")


@pytest.fixture(scope="module")
def solver(tmp_path_factory):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    text = SAMPLETOWN.read_text()
    text = re.sub(r"(?m)^\s*Trials\s+\S+", " Trials 6", text)
    text = re.sub(r"(?m)^\s*Unbalanced\s+.*$", " Unbalanced STOP", text)
    path = tmp_path_factory.mktemp("stop") / "sampletown-stop.inp"
    path.write_text(text)
    return HydraulicSolver(load_network(path), SolverOptions(backend="numba", warm_start=False))


def test_halted_scenarios_leave_nan_the_same_in_fresh_and_reused_memory(solver):
    from parktwin.hydraulics.extended import report_times, run_extended
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.results import ResultSet
    inputs = BatchInputs(len(MULTIPLIERS), demand_multiplier=MULTIPLIERS)
    fresh = run_extended(solver, inputs, 86400)
    halted = np.isnan(fresh.head_m[:, :, 0])
    counts = halted.sum(axis=1)                      # report times without a result, per scenario
    assert (counts == 0).any() and len(set(counts.tolist())) >= 3, f"the batch is not mixed any more: {counts}"
    assert not fresh.converged[halted].any() and (fresh.status[halted] == 0).all()

    times = report_times(solver.net, 86400)
    dirty = ResultSet.allocate(solver.net.node_ids, solver.net.link_ids, times, len(MULTIPLIERS), prefill=False)
    for name in ARRAYS:
        getattr(dirty, name)[...] = {"status": 5, "converged": True, "iterations": 99, "failure": "old"}.get(name, 7.0)
    reused = run_extended(solver, inputs, 86400, out=dirty)
    assert reused is dirty
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(reused, name), getattr(fresh, name), err_msg=name)
    for b in range(len(MULTIPLIERS)):
        alone = run_extended(solver, BatchInputs(1, demand_multiplier=MULTIPLIERS[b:b + 1]), 86400)
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(alone, name)[0], getattr(fresh, name)[b], err_msg=f"{b} {name}")


def test_a_buffer_of_another_shape_is_refused(solver):
    from parktwin.hydraulics.extended import report_times, run_extended
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.results import ResultSet
    small = ResultSet.allocate(solver.net.node_ids, solver.net.link_ids, report_times(solver.net, 86400), 2)
    with pytest.raises(ValueError, match="cannot take 3 x 25"):
        run_extended(solver, BatchInputs.base(3), 86400, out=small)


def test_recording_only_pressures_gives_the_same_pressures(solver):
    from parktwin.hydraulics.extended import report_times, run_extended
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.results import ResultSet
    inputs = BatchInputs(len(MULTIPLIERS), demand_multiplier=MULTIPLIERS)
    full = run_extended(solver, inputs, 86400)
    times = report_times(solver.net, 86400)
    lean = run_extended(solver, inputs, 86400, out=ResultSet.allocate(
        solver.net.node_ids, solver.net.link_ids, times, len(MULTIPLIERS), prefill=False, quantities=("pressure_m",)))
    np.testing.assert_array_equal(lean.pressure_m, full.pressure_m)
    for name in ("converged", "iterations", "status", "failure"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name), err_msg=name)
    assert lean.head_m.shape == (len(MULTIPLIERS), len(times), 0) and lean.flow_m3s.shape[-1] == 0
    with pytest.raises(ValueError, match=r"quantities: unknown \['velocity'\]"):
        ResultSet.allocate(solver.net.node_ids, solver.net.link_ids, times, 1, quantities=("velocity",))
