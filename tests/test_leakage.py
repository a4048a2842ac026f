"""EPANET 2.3's pipe leakage ([LEAKAGE], FAVAD) against EPANET 2.3.5, through the command line.

A [LEAKAGE] section is written into shared networks (NET1 in US units, KL and L-Town in SI units) and
each is solved by `parktwin solve` with its defaults, snapshot and 24 h, and compared with EPANET node by
node, link by link and in the leakage of every junction (EN_LEAKAGEFLOW, which ParkTwin adds into
node/leak). The perturbation attributes leak_favad_area_m2 / leak_favad_expansion are checked against the
same values set through the toolkit (EN_LEAK_AREA / EN_LEAK_EXPAN, in mm² where ParkTwin takes m²).
"""
from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from oracle_compare import (EPANET_ACCURACY, FLOW_ABS_TOL_M3S, FLOW_REL_TOL, NETWORKS, compared_nodes, describe,
                            mismatch)
from test_cli import cli, ok

NET1 = NETWORKS / "epanet-tests" / "network_one" / "NET1.inp"
KL = NETWORKS / "benchmarks" / "kl.inp"
LTOWN = NETWORKS / "benchmarks" / "l-town.inp"
pytestmark = pytest.mark.skipif(not NET1.is_file(), reason="../shared/networks is not beside the repository")
DAY_S = 86400


def _pipes(text: str) -> list[str]:
    out, sect = [], None
    for ln in text.splitlines():
        t = ln.split(";")[0].split()
        if not t:
            continue
        if t[0].startswith("["):
            sect = t[0].upper()
        elif sect == "[PIPES]":
            out.append(t[0])
    return out


def with_leakage(src, dst, seed=7, share=0.7, area_mm2=5.0, expansion_mm2=0.5, duration="24:00"):
    """The network with a [LEAKAGE] row for about `share` of its pipes and the given duration."""
    text = src.read_text(errors="surrogateescape")
    rng = np.random.default_rng(seed)
    rows = [f" {p} {rng.uniform(0, area_mm2):.4f} {rng.uniform(0, expansion_mm2):.4f}"
            for p in _pipes(text) if rng.random() < share]
    text = re.sub(r"(?im)^\s*duration\s+.*$", f" Duration {duration}", text)
    text = re.sub(r"(?im)^\[END\]", "[LEAKAGE]\n" + "\n".join(rows) + "\n[END]", text)
    dst.write_text(text, errors="surrogateescape")
    return dst


def _read(out, scenario=0):
    with h5py.File(out, "r") as f:
        assert f["solver/converged"][()].all()
        return ([s.decode() for s in f["node/ids"][()]], [s.decode() for s in f["link/ids"][()]],
                f["time_s"][()], *(f[k][scenario].astype(float) for k in ("node/head", "link/flow", "node/leak")))


def _compare(name, node_ids, link_ids, times, head, flow, leak, ep, ref):
    ni = [node_ids.index(n) for n in ep.node_ids]
    li = [link_ids.index(k) for k in ep.link_ids]
    rh, rq = np.atleast_2d(ref["head_m"]), np.atleast_2d(ref["flow_m3s"])
    rl = np.atleast_2d(ref["leakage_flow_m3s"])
    np.testing.assert_array_equal(times, np.atleast_1d(ref["time_s"]))
    mask = compared_nodes(ep.node_types, ep.link_nodes, ep.link_types, np.atleast_2d(ref["status"]))
    h, q, lk = head[:, ni], flow[:, li], leak[:, ni]
    mm = mismatch(h, q, rh, rq, mask)
    assert not mm.any, describe(name, ep.node_ids, ep.link_ids, h, q, rh, rq, mm, times)
    assert (rl > 0).any(), "nothing leaks: the test would not test leakage"
    np.testing.assert_allclose(lk, rl, rtol=FLOW_REL_TOL, atol=FLOW_ABS_TOL_M3S, err_msg=f"{name}: node leakage")
    np.testing.assert_allclose(lk.sum(axis=1), rl.sum(axis=1), rtol=FLOW_REL_TOL, err_msg=f"{name}: total leakage")


def _epanet(path, duration_s, links=()):
    from parktwin.hydraulics.oracle import EpanetProject
    ep = EpanetProject(path, accuracy=EPANET_ACCURACY)
    for k, prop, value in links:
        ep.set_link_value(k, prop, value)
    ref = ep.solve_snapshot() if duration_s == 0 else ep.run_extended(max_time_s=duration_s)
    return ep, ref


CASES = [("NET1", NET1, 0), ("NET1", NET1, DAY_S), ("KL", KL, 0), ("L-Town", LTOWN, DAY_S)]


@pytest.mark.parametrize("name, src, duration_s", CASES, ids=[f"{c[0]}-{c[2]}s" for c in CASES])
def test_solve_with_leakage_matches_epanet(name, src, duration_s, tmp_path):
    path = with_leakage(src, tmp_path / f"{name}.inp")
    out = tmp_path / "result.h5"
    ok(cli("solve", path, "--out", out, "--accuracy", EPANET_ACCURACY,
           *(["--duration", duration_s] if duration_s else [])))
    ep, ref = _epanet(path, duration_s)
    try:
        _compare(name, *_read(out), ep, ref)
    finally:
        ep.close()


@pytest.mark.parametrize("src", [NET1, KL], ids=["NET1", "KL"])
def test_cold_solve_takes_epanets_iterations(src, tmp_path):
    """The same convergence test as EPANET's (leakagehasconverged()): the same count of trials."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    path = with_leakage(src, tmp_path / "net.inp")
    res = HydraulicSolver(load_network(path), SolverOptions(backend="numba", accuracy=EPANET_ACCURACY,
                                                            warm_start=False)).run()
    ep, ref = _epanet(path, 0)
    ep.close()
    assert res.iterations[0, 0] == ref["iterations"]


def test_backends_agree_with_leakage(tmp_path, monkeypatch):
    """numba's fused kernel carries pipe leakage and gives the numpy reference's answer bit for bit
    (the variable-area power comes from kernels.powers on both paths), the file's leakage over 6 h and a batch of
    leak_favad_* perturbations on L-Town."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.fused import FusedGradientSolver
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    fused_calls = []
    original = FusedGradientSolver.solve

    def spy(self, st, *args, **kwargs):
        fused_calls.append(st.favad_cfa is not None)
        return original(self, st, *args, **kwargs)
    monkeypatch.setattr(FusedGradientSolver, "solve", spy)
    net1 = load_network(with_leakage(NET1, tmp_path / "net1.inp"))
    ltown = load_network(LTOWN)
    rng = np.random.default_rng(5)
    b = 24
    pipes = np.flatnonzero(ltown.link_kind <= 1)
    area = np.full((b, ltown.n_links), np.nan)
    area[np.arange(b), rng.choice(pipes, b)] = rng.uniform(0.0, 1e-4, b)
    expansion = np.full((b, ltown.n_links), np.nan)
    expansion[np.arange(b), rng.choice(pipes, b)] = rng.uniform(0.0, 1e-5, b)
    batch = BatchInputs(b, leak_favad_area_m2=area, leak_favad_expansion=expansion)
    for net, inputs, duration_s in ((net1, None, 6 * 3600), (ltown, batch, 0)):
        fused_calls.clear()
        runs = [HydraulicSolver(net, SolverOptions(backend=name)).run(inputs, duration_s=duration_s)
                for name in ("numpy", "numba")]
        assert runs[1].converged.all()
        for name in ("head_m", "flow_m3s", "leak_m3s", "iterations"):
            np.testing.assert_array_equal(getattr(runs[1], name), getattr(runs[0], name), err_msg=name)
        # (L-Town's own base case, the warm start, has no leakage)
        assert fused_calls[-1], f"{net.name}: the fused kernel did not solve the leaking states"


# Per scenario: (pipe, attribute, value). Values in m² per 100 m (of head per 100 m).
TABLE = {
    "one_pipe": [("10p", "leak_favad_area_m2", 2e-5), ("10p", "leak_favad_expansion", 1e-6)],
    "three_pipes": [("11p", "leak_favad_area_m2", 4e-6), ("12p", "leak_favad_area_m2", 1e-5),
                    ("110p", "leak_favad_area_m2", 3e-6)],
    "expansion_only": [("21p", "leak_favad_expansion", 5e-7), ("122p", "leak_favad_expansion", 2e-7)],
    "stopped": [("10p", "leak_favad_area_m2", 0.0), ("10p", "leak_favad_expansion", 0.0),
                ("12p", "leak_favad_area_m2", 0.0), ("12p", "leak_favad_expansion", 0.0)],
}


@pytest.mark.parametrize("duration_s", [0, DAY_S], ids=["snapshot", "24h"])
def test_perturbation_table_matches_toolkit_settings(duration_s, tmp_path):
    from parktwin.hydraulics.oracle import EN_LEAK_AREA, EN_LEAK_EXPAN
    # the file's own [LEAKAGE] on some pipes, so that rows both add and override leakage
    path = with_leakage(NET1, tmp_path / "net1.inp", share=0.3)
    csv = tmp_path / "table.csv"
    csv.write_text("scenario,element,attribute,value\n" + "".join(
        f"{s},{pipe},{attr},{value!r}\n" for s, rows in TABLE.items() for pipe, attr, value in rows))
    out = tmp_path / "run.h5"
    ok(cli("run", path, "--scenarios", csv, "--out", out, "--accuracy", EPANET_ACCURACY,
           *(["--duration", duration_s] if duration_s else [])))
    with h5py.File(out, "r") as f:
        ids = [s.decode() for s in f["scenario/ids"][()]]
    prop = {"leak_favad_area_m2": EN_LEAK_AREA, "leak_favad_expansion": EN_LEAK_EXPAN}
    for s, rows in TABLE.items():
        from parktwin.hydraulics.oracle import EpanetProject
        with EpanetProject(path) as probe:
            links = [(probe.link_ids.index(pipe), prop[attr], value * 1e6) for pipe, attr, value in rows]
        ep, ref = _epanet(path, duration_s, links)
        try:
            _compare(s, *_read(out, ids.index(s)), ep, ref)
        finally:
            ep.close()


def test_favad_rows_on_a_pump_are_refused(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("scenario,element,attribute,value\na,9,leak_favad_area_m2,1e-5\n")
    proc = cli("run", NET1, "--scenarios", csv, "--out", tmp_path / "bad.h5")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "leak_favad_area_m2" in proc.stderr and "pipe" in proc.stderr


@pytest.mark.cudasim
def test_cupy_backend_solves_leakage_on_the_device(tmp_path):
    """The device kernels carry pipe leakage: the cupy backend (here numba's CUDA simulator) solves such a
    state on the device, with no fall-back warning, and gives the numpy answer."""
    import json
    import os
    import subprocess
    import sys
    path = with_leakage(NET1, tmp_path / "net.inp")
    code = (
        "import json, sys, warnings, numpy as np\n"
        "from parktwin.hydraulics.compile import load_network\n"
        "from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions\n"
        "net = load_network(sys.argv[1])\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    gpu = HydraulicSolver(net, SolverOptions(backend='cupy')).run(duration_s=3 * 3600)\n"
        "cpu = HydraulicSolver(net, SolverOptions(backend='numpy')).run(duration_s=3 * 3600)\n"
        "print(json.dumps({'warnings': [str(w.message) for w in caught],\n"
        "                  'diff': max(float(np.abs(getattr(gpu, k) - getattr(cpu, k)).max())\n"
        "                              for k in ('head_m', 'flow_m3s', 'leak_m3s'))}))\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [w for w in out["warnings"] if "host" in w or "pipe leakage" in w], out["warnings"]
    assert out["diff"] <= 1e-9


def test_water_quality_with_leakage_matches_epanet(tmp_path):
    """Chlorine over 24 h on a network that leaks along its pipes: the flows that carry it include the
    leakage. (A junction's outflow does not change its concentration, so this does not check that the
    leakage is also counted as the junction's outflow in the quality engine, as EPANET's NodeDemand does.)"""
    from quality_compare import compare
    from quality_variants import library_network
    path = with_leakage(library_network("Net1.inp"), tmp_path / "net.inp", area_mm2=50.0)   # chlorine
    assert compare(path, DAY_S) == ""
