"""Invariants: mass balance at every junction, the leak law, and source-sink balance of the network."""
from __future__ import annotations

import numpy as np
import pytest

from oracle_compare import NETWORKS

CASES = [("benchmarks/l-town.inp", 0), ("benchmarks/anytown.inp", 24 * 3600),
         ("epanet-tests/network_one/NET1-3.inp", 12 * 3600), ("benchmarks/hanoi.inp", 0)]


def _leaky_batch(net, n, seed):
    from parktwin.hydraulics.inputs import BatchInputs
    rng = np.random.default_rng(seed)
    leak = np.zeros((n, net.n_junctions))
    leak[np.arange(n), rng.integers(0, net.n_junctions, n)] = rng.uniform(2e-5, 5e-4, n)
    return BatchInputs(batch_size=n, leak_area_m2=leak, demand_multiplier=rng.uniform(0.7, 1.3, (n, 1)))


@pytest.mark.parametrize("name,duration_s", CASES, ids=[c[0] for c in CASES])
def test_mass_balance_at_every_junction(name, duration_s):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    path = NETWORKS / name
    if not path.exists():
        pytest.skip("../shared/networks is not beside the repository")
    net = load_network(path)
    # At EPANET's ACCURACY 1e-6 every law holds to well inside the tolerances below (the network's own
    # ACCURACY, often 1e-2 or 1e-3, leaves individual leak flows a percent or so from their law).
    res = HydraulicSolver(net, SolverOptions(backend="numba", accuracy=1e-6)).run(_leaky_batch(net, 16, 5), duration_s)
    nj = net.n_junctions
    inflow = np.zeros(res.head_m.shape)
    np.add.at(inflow.transpose(2, 0, 1), net.link_start, -res.flow_m3s.transpose(2, 0, 1))
    np.add.at(inflow.transpose(2, 0, 1), net.link_end, res.flow_m3s.transpose(2, 0, 1))
    imbalance = inflow[..., :nj] - res.demand_m3s[..., :nj] - res.leak_m3s[..., :nj]
    np.testing.assert_allclose(imbalance, 0.0, atol=1e-6, err_msg=f"{name}: junction continuity")
    # The whole network: what the tanks and reservoirs give equals what is consumed and leaked.
    supplied = -res.demand_m3s[..., nj:].sum(axis=-1)
    used = res.demand_m3s[..., :nj].sum(axis=-1) + res.leak_m3s.sum(axis=-1)
    np.testing.assert_allclose(supplied, used, atol=1e-5, rtol=1e-6, err_msg=f"{name}: network balance")
    # Every leak follows the orifice law at its junction's pressure, and never flows backwards.
    leak_area = _leaky_batch(net, 16, 5).leak_area_m2
    p = np.maximum(res.pressure_m[..., :nj], 0.0)
    expected = 0.75 * leak_area[:, None, :] * np.sqrt(2 * 9.81 * p)
    np.testing.assert_allclose(res.leak_m3s[..., :nj], expected, rtol=1e-4, atol=1e-8)
    assert (res.leak_m3s >= -1e-8).all()
