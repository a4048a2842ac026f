"""Water quality in batches (issue 14): a batch equals a loop of single runs, the perturbation attributes
source_quality and bulk_coeff, and the HDF5 files of `parktwin solve` / `parktwin run`."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from quality_variants import library_network, write_variant

DAY_S = 24 * 3600


def _mixed_rows(net, n_scenarios: int, seed: int = 7) -> list[dict]:
    """Scenarios that differ in everything the quality engine sees: demands (flows and directions), tank
    levels (the clock of tank events), closed pipes, pump speed, source strengths and bulk coefficients."""
    rng = np.random.default_rng(seed)
    pipes = [net.link_ids[k] for k in np.flatnonzero(net.link_kind <= 1)]
    tank = net.node_ids[net.tank_node[0]]
    lo, hi = net.tank_min_level_m[0], net.tank_max_level_m[0]
    rows = []
    for s in range(n_scenarios):
        sid = f"s{s:02d}"
        rows.append(dict(scenario=sid, element="*", attribute="demand_multiplier", value=f"{rng.uniform(0.6, 1.4):.4f}"))
        if s % 2:
            rows.append(dict(scenario=sid, element=tank, attribute="tank_level_m", value=f"{rng.uniform(lo, hi):.3f}"))
        if s % 3 == 0:
            rows.append(dict(scenario=sid, element=str(rng.choice(pipes)), attribute="status", value="closed"))
        if s % 4 == 1:
            rows.append(dict(scenario=sid, element="9", attribute="source_quality", value=f"{rng.uniform(0.5, 3):.3f}"))
        if s % 4 == 2:
            rows.append(dict(scenario=sid, element="22", attribute="source_quality", value=f"{rng.uniform(0.5, 3):.3f}"))
        if s % 5 == 0:
            for pipe in rng.choice(pipes, 3, replace=False):
                rows.append(dict(scenario=sid, element=str(pipe), attribute="bulk_coeff",
                                 value=f"{rng.uniform(-3, -0.1):.3f}"))
    return rows


def test_batch_equals_loop(tmp_path):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.quality import solve_with_quality
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbations import PerturbationTable
    path = write_variant("net1-mass", tmp_path)
    net = load_network(path)
    batch = build_batch(PerturbationTable.from_rows(_mixed_rows(net, 64)), net)
    solver = HydraulicSolver(net, SolverOptions(backend="numba"))
    together = solve_with_quality(solver, batch.inputs, DAY_S)
    assert together.node_quality.shape == (64, 25, net.n_nodes)
    assert np.isfinite(together.node_quality).all() and np.isfinite(together.link_quality).all()
    # the scenarios really differ (else the comparison below could not fail)
    assert np.ptp(together.node_quality[:, -1], axis=0).max() > 0.1
    for b in range(64):
        alone = solve_with_quality(HydraulicSolver(net, SolverOptions(backend="numba")), batch.inputs.subset([b]),
                                   DAY_S)
        np.testing.assert_allclose(together.node_quality[b], alone.node_quality[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(together.link_quality[b], alone.link_quality[0], rtol=1e-9, atol=1e-12)


def test_source_quality_and_bulk_coeff_against_epanet(tmp_path):
    """A perturbed scenario equals EPANET run on the file changed the same way."""
    from quality_compare import EPANET_ACCURACY, epanet

    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.quality import solve_with_quality
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbations import PerturbationTable
    path = write_variant("net1-mass", tmp_path)
    net = load_network(path)
    rows = [dict(scenario="a", element="9", attribute="source_quality", value="40"),
            dict(scenario="a", element="12", attribute="source_quality", value="2.5"),
            dict(scenario="a", element="111", attribute="bulk_coeff", value="-4"),
            dict(scenario="b", element="9", attribute="source_quality", value="0")]
    batch = build_batch(PerturbationTable.from_rows(rows), net)
    res = solve_with_quality(HydraulicSolver(net, SolverOptions(backend="numba", accuracy=EPANET_ACCURACY,
                                                                warm_start=False)), batch.inputs, DAY_S)
    # the same changes written into the file: node 9's MASS source at 40, a CONCEN source at 12, pipe 111's Kb
    text = path.read_text().replace("9 MASS 120 1", "9 MASS 40 1").replace("[SOURCES]\n", "[SOURCES]\n12 CONCEN 2.5\n")
    text = text.replace("[REACTIONS]\n", "[REACTIONS]\nBULK 111 -4\n")
    changed = tmp_path / "changed.inp"
    changed.write_text(text)
    ref = epanet(changed, DAY_S, EPANET_ACCURACY)
    ni = [net.node_index(n) for n in ref["node_ids"]]
    np.testing.assert_allclose(res.node_quality[0][:, ni], ref["node_quality"], atol=0.01, rtol=1e-3)
    assert not np.allclose(res.node_quality[0], res.node_quality[1])


def test_quality_rows_need_a_quality_model(tmp_path):
    from parktwin.hydraulics.compile import load_network
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbations import PerturbationError, PerturbationTable
    text = library_network("Net1.inp").read_text().replace("Chlorine mg/L", "None")
    plain = tmp_path / "plain.inp"
    plain.write_text(text)
    net = load_network(plain)
    with pytest.raises(PerturbationError, match="source_quality needs a network with a QUALITY option"):
        build_batch(PerturbationTable.from_rows([dict(scenario="a", element="9", attribute="source_quality",
                                                      value="1")]), net)


def test_cli_run_records_quality(tmp_path):
    from parktwin.api.cli import app
    path = write_variant("net1-mass", tmp_path)
    table = tmp_path / "p.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["scenario", "element", "attribute", "value"])
        writer.writeheader()
        writer.writerows([dict(scenario="base", element="9", attribute="source_quality", value="120"),
                          dict(scenario="strong", element="9", attribute="source_quality", value="240")])
    out = tmp_path / "r.h5"
    result = CliRunner().invoke(app, ["run", str(path), "--scenarios", str(table), "--out", str(out),
                                      "--duration", str(DAY_S)])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f.attrs["quality_kind"] == "chemical" and f.attrs["quality_units"] == "mg/L"
        q = f["node/quality"][()]
        assert q.shape == (2, 25, len(f["node/ids"])) and f["link/quality"].shape[:2] == (2, 25)
    assert np.abs(q[1] - q[0]).max() > 0.01, "the stronger source shows"
    # the file holds what the same table gives in memory (float32 in the file by default)
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.quality import solve_with_quality
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbation_files import read_perturbations
    from parktwin.scenarios.store import read_results
    net = load_network(path)
    mem = solve_with_quality(HydraulicSolver(net, SolverOptions()), build_batch(read_perturbations(table), net).inputs,
                             DAY_S)
    np.testing.assert_allclose(q, mem.node_quality, rtol=1e-6, atol=1e-7)
    res, _ = read_results(out)
    np.testing.assert_allclose(res.node_quality, q.astype(float))
    np.testing.assert_allclose(res.link_quality, mem.link_quality, rtol=1e-6, atol=1e-7)


def test_cli_solve_snapshot_has_no_quality(tmp_path):
    from parktwin.api.cli import app
    out = tmp_path / "s.h5"
    result = CliRunner().invoke(app, ["solve", str(library_network("Net1.inp")), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert "quality_kind" not in f.attrs and "node/quality" not in f


def test_cli_refuses_quality_rows_in_a_snapshot(tmp_path):
    """`parktwin run` as a user runs it: one error line, before anything is solved."""
    import subprocess
    import sys
    from pathlib import Path
    table = tmp_path / "p.csv"
    table.write_text("scenario,element,attribute,value\na,9,source_quality,2\n")
    out = tmp_path / "r.h5"
    proc = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "run", str(library_network("Net1.inp")),
                           "--scenarios", str(table), "--out", str(out)], cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "NO_COLOR": "1"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "need an extended-period run" in lines[0], proc.stderr


def test_segment_pool_grows_during_an_oracle_checked_run(tmp_path):
    """Water age keeps a new segment per pipe and step: the pool must grow (several times) mid-run, and
    the run still matches EPANET (the same variant passes the oracle in test_quality_oracle)."""
    from quality_compare import compare

    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.quality import run_with_quality
    path = write_variant("net1-age", tmp_path)
    _, engine = run_with_quality(load_network(path), duration_s=DAY_S)
    assert engine.seg_v.shape[1] >= 4 * (2 * engine.need + 16)
    assert compare(path, DAY_S) == ""
