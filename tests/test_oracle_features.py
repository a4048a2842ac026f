"""Features no shared network exercises, checked against EPANET on edited copies of shared networks."""
from __future__ import annotations

import re

import numpy as np
import pytest

from oracle_compare import EPANET_ACCURACY, NETWORKS

NET1 = NETWORKS / "epanet-tests" / "network_one" / "NET1.inp"


def _with_options(tmp_path, source, extra: str):
    text = source.read_text()
    edited = re.sub(r"(\[OPTIONS\][^\n]*\n)", lambda m: m.group(1) + extra, text, count=1, flags=re.I)
    assert edited != text
    path = tmp_path / source.name
    path.write_text(edited)
    return path


@pytest.mark.skipif(not NET1.exists(), reason="../shared/networks is not beside the repository")
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pressure_driven_demand_matches_epanet(tmp_path, backend):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.oracle import EpanetProject
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    # Required pressure above most of NET1's pressures: most junctions get a reduced demand.
    path = _with_options(tmp_path, NET1, " DEMAND MODEL PDA\n MINIMUM PRESSURE 60\n REQUIRED PRESSURE 120\n"
                                         " PRESSURE EXPONENT 0.5\n")
    net = load_network(path, use_cache=False)
    assert net.options.demand_model_pda
    res = HydraulicSolver(net, SolverOptions(backend=backend, accuracy=EPANET_ACCURACY, warm_start=False)).run()
    with EpanetProject(path, accuracy=EPANET_ACCURACY) as ep:
        ref = ep.solve_snapshot()
        ni = np.array([net.node_index(n) for n in ep.node_ids])
        li = np.array([net.link_index(k) for k in ep.link_ids])
        junction = np.asarray(ep.node_types) == 0
    np.testing.assert_allclose(res.head_m[0, 0, ni], ref["head_m"], atol=1e-3)
    np.testing.assert_allclose(res.flow_m3s[0, 0, li], ref["flow_m3s"], atol=1e-5, rtol=1e-3)
    delivered = res.demand_m3s[0, 0, ni][junction]
    np.testing.assert_allclose(delivered, ref["demand_m3s"][junction], atol=1e-6)
    full = HydraulicSolver(load_network(NET1), SolverOptions(backend=backend)).run().demand_m3s[0, 0, ni][junction]
    assert (delivered < full - 1e-6).sum() >= 3, "the case must actually reduce demands"
