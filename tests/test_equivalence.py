"""Equivalence: a batch equals a loop of single solves; the backends agree with each other."""
from __future__ import annotations

import numpy as np
import pytest

from oracle_compare import NETWORKS

LTOWN = NETWORKS / "benchmarks" / "l-town.inp"
NET1_3 = NETWORKS / "epanet-tests" / "network_one" / "NET1-3.inp"
RTOL = 1e-9


def _backends():
    from parktwin.kernels.registry import available_backends
    return [name for name, state in available_backends().items() if state == "available"]


def _mixed_scenarios(net, n, seed):
    """Leaks, demand changes, closures, roughness, tank levels, pump speeds and valve settings."""
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.network import LinkKind
    rng = np.random.default_rng(seed)
    nj, nl = net.n_junctions, net.n_links
    leak = np.zeros((n, nj))
    leak[np.arange(n), rng.integers(0, nj, n)] = rng.uniform(2e-5, 5e-4, n)
    mult = np.repeat(rng.uniform(0.7, 1.3, n)[:, None], nj, axis=1)
    pipes = np.flatnonzero(net.link_kind == LinkKind.PIPE)
    rough = np.full((n, nl), np.nan)
    rough[np.arange(n), rng.choice(pipes, n)] = net.roughness[pipes].mean() * rng.uniform(0.6, 1.0, n)
    status = np.full((n, nl), -1, np.int8)
    closing = rng.random(n) < 0.3
    status[np.flatnonzero(closing), rng.choice(pipes, int(closing.sum()))] = 0
    tank = None
    if len(net.tank_node):
        lo, hi = net.tank_min_level_m, net.tank_max_level_m
        tank = lo + (hi - lo) * rng.uniform(0.2, 0.8, (n, len(net.tank_node)))
    speed = rng.uniform(0.8, 1.1, (n, len(net.pump_link))) if len(net.pump_link) else None
    return BatchInputs(batch_size=n, demand_multiplier=mult, leak_area_m2=leak, roughness=rough,
                       link_status=status, tank_level_m=tank, pump_speed=speed)


def _solve(path, backend, inputs, duration_s=0):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    solver = HydraulicSolver(load_network(path), SolverOptions(backend=backend))
    return solver, solver.run(inputs, duration_s)


def _assert_same(a, b, what):
    for name in ("head_m", "flow_m3s", "demand_m3s", "leak_m3s"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=RTOL, atol=1e-12,
                                   err_msg=f"{what}: {name}")
    np.testing.assert_array_equal(a.status, b.status, err_msg=f"{what}: status")
    np.testing.assert_array_equal(a.converged, b.converged, err_msg=f"{what}: converged")


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("path,duration_s", [(LTOWN, 0), (NET1_3, 6 * 3600)], ids=["l-town-snapshot", "net1-3-6h"])
def test_batch_equals_loop_of_single_solves(backend, path, duration_s):
    from parktwin.hydraulics.compile import load_network
    net = load_network(path)
    inputs = _mixed_scenarios(net, 64, seed=7)
    solver, batch = _solve(path, backend, inputs, duration_s)
    assert batch.converged.mean() > 0.9
    for b in range(inputs.batch_size):
        single = solver.run(inputs.subset(np.array([b])), duration_s)
        _assert_same(batch.scenario(b), single, f"scenario {b}")


@pytest.mark.parametrize("path,duration_s", [(LTOWN, 0), (NET1_3, 6 * 3600)], ids=["l-town-snapshot", "net1-3-6h"])
def test_backends_agree(path, duration_s):
    from parktwin.hydraulics.compile import load_network
    names = _backends()
    assert "numpy" in names and "numba" in names
    inputs = _mixed_scenarios(load_network(path), 64, seed=11)
    _, reference = _solve(path, "numpy", inputs, duration_s)
    for name in names:
        if name != "numpy":
            _assert_same(_solve(path, name, inputs, duration_s)[1], reference, f"{name} vs numpy")


def test_gpu_equals_cpu():
    from parktwin.kernels.registry import available_backends
    state = available_backends().get("cupy", "unknown")
    if state != "available":
        pytest.skip(f"cupy backend: {state}")
    inputs = _mixed_scenarios(__import__("parktwin.hydraulics.compile").compile.load_network(LTOWN), 256, seed=3)
    _assert_same(_solve(LTOWN, "cupy", inputs)[1], _solve(LTOWN, "numba", inputs)[1], "cupy vs numba")
