"""EPANET 2.3's positional control valve (PCV) against EPANET itself, on edited copies of 2PRVs.inp.

Valve 4 becomes a PCV (percent open, minor loss 5 when fully open, optionally a Kv-ratio curve) and
valve 5 a TCV beside it, so the PCV's loss moves the flow split as well as the heads.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from oracle_compare import EPANET_ACCURACY, NETWORKS, describe, mismatch

SOURCE = NETWORKS / "epanet-tests" / "valves" / "2PRVs.inp"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="../shared/networks is not beside the repository")

CURVE = " KV1  10  2\n KV1  30  10\n KV1  50  30\n KV1  80  70\n"


def _network(tmp_path, name, pcv="40  5", status="", controls="", rules="", duration=None, curves="",
             report_step=None):
    text = SOURCE.read_text()
    text = re.sub(r"(?m)^ 4 .*PRV.*$", " 4  2  3  6  PCV  " + pcv, text)
    text = re.sub(r"(?m)^ 5 .*PRV.*$", " 5  2  4  6  TCV  20  0", text)
    for section, body in (("STATUS", status), ("CURVES", curves), ("CONTROLS", controls), ("RULES", rules)):
        if body:
            text = re.sub(r"(?m)^\[%s\][^\n]*\n" % section, lambda m: m.group(0) + body, text, count=1)
    if duration is not None:
        text = re.sub(r"(?m)^ Duration .*$", " Duration  %s" % duration, text)
    if report_step is not None:
        text = re.sub(r"(?m)^ Report Timestep .*$", " Report Timestep  %s" % report_step, text)
    path = tmp_path / f"{name}.inp"
    path.write_text(text)
    return path


def _compare(path, backend):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.oracle import EpanetProject
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    net = load_network(path, use_cache=False)
    solver = HydraulicSolver(net, SolverOptions(backend=backend, accuracy=EPANET_ACCURACY, warm_start=False))
    with EpanetProject(path, accuracy=EPANET_ACCURACY) as ep:
        duration = ep.duration_s
        ref = ep.solve_snapshot() if duration == 0 else ep.run_extended()
        ni = np.array([net.node_index(n) for n in ep.node_ids])
        li = np.array([net.link_index(k) for k in ep.link_ids])
    res = solver.run(duration_s=duration)
    if duration:
        np.testing.assert_array_equal(res.time_s, ref["time_s"])
    assert res.converged.all()
    h, q = res.head_m[0][:, ni], res.flow_m3s[0][:, li]
    rh, rq = np.atleast_2d(ref["head_m"]), np.atleast_2d(ref["flow_m3s"])
    # every node: each of these networks keeps all its nodes joined to the reservoir
    mm = mismatch(h, q, rh, rq, np.ones(rh.shape, bool))
    assert not mm.any, describe(path.name, ep.node_ids, ep.link_ids, h, q, rh, rq, mm, res.time_s)
    return net, res, ref


CASES = {
    "linear": dict(),
    "curve": dict(pcv="40  5  KV1", curves=CURVE),
    "curve-extrapolated": dict(pcv="90  5  KV1", curves=CURVE),
    "curve-below-first-point": dict(pcv="5  5  KV1", curves=CURVE),
    "fixed-open": dict(status=" 4  OPEN\n"),
    "status-setting": dict(pcv="40  5  KV1", curves=CURVE, status=" 4  25\n"),
    "closed": dict(status=" 4  CLOSED\n"),
    # a time control and a rule give new settings; EPANET recomputes the loss coefficient each time
    "timed": dict(pcv="40  5  KV1", curves=CURVE, duration="2:00", report_step="0:15",
                  controls=" LINK 4 70 AT TIME 1\n LINK 4 CLOSED AT TIME 1.5\n LINK 4 15 AT TIME 1.75\n",
                  rules="RULE R1\nIF SYSTEM TIME >= 0:30\nTHEN VALVE 4 SETTING IS 55\n"),
    # pswitch() gives a new setting but keeps the loss coefficient inithyd() computed from the file's 40
    "pressure-control": dict(status=" 4  OPEN\n", controls=" LINK 4 90 IF NODE 5 BELOW 1000\n"),
}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", list(CASES))
def test_pcv_matches_epanet(tmp_path, case, backend):
    net, res, ref = _compare(_network(tmp_path, case, **CASES[case]), backend)
    from parktwin.hydraulics.network import LinkKind
    k = net.link_index("4")
    assert net.link_kind[k] == LinkKind.PCV
    if case != "closed":
        assert np.abs(res.flow_m3s[0][:, k]).max() > 1e-4, "the PCV must carry flow"


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("pcv", ["40 5", "40 5 KV1", "65 0.5 KV1"])
def test_pcv_beside_a_gpv_in_si_units(tmp_path, backend, pcv):
    """LPS units (minor loss conversion from mm diameters) and a GPV curve, converted as flow and head,
    next to the PCV's percent curve, which is not."""
    text = (SOURCE.parent / "2PRVs-aquis.inp").read_text()
    text = re.sub(r"(?m)^ VP_4 (\S+) (\S+) (\S+) GPV .*$", r" VP_4 \1 \2 \3 PCV " + pcv, text)
    text = text.replace("[CURVES]\n", "[CURVES]\n" + CURVE, 1)
    path = tmp_path / "aquis-pcv.inp"
    path.write_text(text)
    net, res, _ = _compare(path, backend)
    from parktwin.hydraulics.network import LinkKind
    k = net.link_index("VP_4")
    assert net.flow_units == "LPS" and net.link_kind[k] == LinkKind.PCV
    assert net.link_kind[net.link_index("VP_5")] == LinkKind.GPV and np.abs(res.flow_m3s[0, 0, k]) > 1e-3


def test_pcv_compiles_with_epanet_meaning(tmp_path):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.network import STATUS_ACTIVE, STATUS_OPEN, LinkKind
    net = load_network(_network(tmp_path, "c", pcv="140  5  KV1", curves=CURVE), use_cache=False)
    k = net.link_index("4")
    assert net.link_kind[k] == LinkKind.PCV and net.initial_status[k] == STATUS_ACTIVE
    assert net.initial_setting[k] == 100.0            # valvedata() caps the setting when a curve is given
    x, y = net.curves.points(int(net.valve_curve[k]))
    np.testing.assert_array_equal(x, [10, 30, 50, 80])  # percentages, not converted as flows or heads
    np.testing.assert_array_equal(y, [2, 10, 30, 70])
    assert net.minor_loss[k] == 5.0
    net = load_network(_network(tmp_path, "o", status=" 4  OPEN\n"), use_cache=False)
    k = net.link_index("4")
    assert net.initial_status[k] == STATUS_OPEN and net.valve_curve[k] == -1


def test_pcv_setting_changes_the_answer(tmp_path):
    """Guards the comparison above against a PCV that the solver ignores."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    flows = []
    for s in ("20", "60"):
        net = load_network(_network(tmp_path, "s" + s, pcv=s + "  5"), use_cache=False)
        res = HydraulicSolver(net, SolverOptions(backend="numpy", warm_start=False)).run()
        flows.append(res.flow_m3s[0, 0, net.link_index("4")])
    assert flows[1] > flows[0] * 1.5


@pytest.mark.parametrize("pcv, code", [("40  5  NOCURVE", 206), ("40  -5", 202), ("forty  5", 202)])
def test_malformed_pcv_line_is_one_clear_error(tmp_path, pcv, code):
    from parktwin.hydraulics.inp_reader import InpError, read_inp
    path = _network(tmp_path, "bad", pcv=pcv, curves=CURVE)
    with pytest.raises(InpError) as err:
        read_inp(path)
    assert err.value.code == code
    assert err.value.line is not None and "PCV" in str(err.value)


def test_pcv_valve_setting_perturbation_equals_the_file_setting(tmp_path):
    """A scenario's valve_setting (percent open) is the setting EPANET would read from the file,
    batched with the base case, on both backends."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    base = load_network(_network(tmp_path, "p40", pcv="40  5  KV1", curves=CURVE), use_cache=False)
    other = load_network(_network(tmp_path, "p65", pcv="65  5  KV1", curves=CURVE), use_cache=False)
    vs = np.full((2, base.n_links), np.nan)
    vs[1, base.link_index("4")] = 65.0
    for backend in ("numpy", "numba"):
        opts = SolverOptions(backend=backend, accuracy=EPANET_ACCURACY, warm_start=False)
        res = HydraulicSolver(base, opts).run(BatchInputs(batch_size=2, valve_setting=vs))
        one = HydraulicSolver(other, opts).run()
        single = HydraulicSolver(base, opts).run()
        np.testing.assert_allclose(res.flow_m3s[1], one.flow_m3s[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.flow_m3s[0], single.flow_m3s[0], rtol=0, atol=1e-12)
        k = base.link_index("4")
        assert abs(res.flow_m3s[1, 0, k] - res.flow_m3s[0, 0, k]) > 1e-4
