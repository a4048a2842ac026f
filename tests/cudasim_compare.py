"""Helpers of tests/test_cudasim.py: the cases, the solve under numba's CUDA simulator (run as a child
process, since numba reads NUMBA_ENABLE_CUDASIM once, on import) and the CPU solve it is compared with.

    NUMBA_ENABLE_CUDASIM=1 python tests/cudasim_compare.py CASES.json OUT_DIR
"""
from __future__ import annotations

import contextlib
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from oracle_compare import NETWORKS  # noqa: E402

TESTS = NETWORKS / "epanet-tests"
QUANTITIES = ("head_m", "flow_m3s", "demand_m3s", "leak_m3s")


def psv_tcv_network(folder: Path) -> Path:
    """2PRVs.inp with valve 4 a PSV and valve 5 a TCV: no shared network has either."""
    text = (TESTS / "valves" / "2PRVs.inp").read_text()
    text = re.sub(r"(?m)^ 4 .*PRV.*$", " 4  2  3  6  PSV  40  0", text)
    text = re.sub(r"(?m)^ 5 .*PRV.*$", " 5  2  4  6  TCV  20  0", text)
    path = folder / "psv-tcv.inp"
    path.write_text(text)
    return path


def dead_end_prv_network(folder: Path) -> Path:
    """NET1 with a PRV whose upstream node is a dead end, and DAMPLIMIT set: an active PRV leaves that
    node without a diagonal term, so the factorisation fails and EPANET's badvalve() opens the PRV."""
    text = (TESTS / "network_one" / "NET1.inp").read_text()
    text = re.sub(r"(\[JUNCTIONS\][^\n]*\n[^\n]*\n)", lambda m: m.group(1) + " 99  700  0\n", text, count=1)
    text = re.sub(r"(\[VALVES\][^\n]*\n[^\n]*\n)", lambda m: m.group(1) + " V99  99  12  12  PRV  40  0\n", text,
                  count=1)
    text, count = re.subn(r"(?m)^ DAMPLIMIT .*$", " DAMPLIMIT  0.05", text)
    assert count == 1
    path = folder / "NET1-dead-end-prv.inp"
    path.write_text(text)
    return path


def pump_network(folder: Path, kind: str) -> Path:
    """NET1-3 (tank controls on the pump) with pump 9 on a 4-point curve (EPANET's CUSTOM, piecewise
    linear) or a constant-power pump (POWER 50 hp)."""
    text = (TESTS / "network_one" / "NET1-3.inp").read_text()
    if kind == "custom":
        text, n = re.subn(r"(?m)^ 1 +\t1500 +\t250 *$", " 1  0  320\n 1  1000  290\n 1  1500  250\n 1  2500  120", text)
    else:
        text, n = re.subn(r"(?m)^ 9 +\t9 +\t10 +\tHEAD 1\tSPEED 1\t;$", " 9  9  10  POWER 50", text)
    assert n == 1, kind
    path = folder / f"NET1-3-{kind}-pump.inp"
    path.write_text(text)
    return path


def laminar_network(folder: Path) -> Path:
    """5fcvs.inp (Darcy-Weisbach) with a dead end drawing 0.1 gpm through a pipe with a minor loss: a flow
    below Reynolds 2000, EPANET's laminar branch."""
    text = (TESTS / "valves" / "5fcvs.inp").read_text()
    text = re.sub(r"(\[JUNCTIONS\][^\n]*\n)", lambda m: m.group(1) + " 99  96.0  0.1\n", text, count=1)
    text = re.sub(r"(\[PIPES\][^\n]*\n)", lambda m: m.group(1) + " 99p  14  99  100  1.0  0.005  4.0\n", text,
                  count=1)
    path = folder / "5fcvs-laminar.inp"
    path.write_text(text)
    return path


def pda_network(folder: Path) -> Path:
    """NET1 with pressure-driven demands: a feature the device kernels do not carry."""
    text = (TESTS / "network_one" / "NET1.inp").read_text()
    text = re.sub(r"(\[OPTIONS\][^\n]*\n)", lambda m: m.group(1) + " DEMAND MODEL PDA\n MINIMUM PRESSURE 60\n"
                  " REQUIRED PRESSURE 120\n", text, count=1, flags=re.I)
    path = folder / "NET1-pda.inp"
    path.write_text(text)
    return path


def pipe_leakage_network(folder: Path) -> Path:
    """NET1 with EPANET 2.3's pipe leakage ([LEAKAGE], FAVAD) on every other pipe, fixed and variable area,
    and ACCURACY 0.05."""
    text = (TESTS / "network_one" / "NET1.inp").read_text()
    pipes = re.search(r"(?s)\[PIPES\][^\n]*\n(.*?)\n\s*\n?\[", text).group(1)
    ids = [ln.split()[0] for ln in pipes.splitlines() if ln.split() and not ln.lstrip().startswith(";")]
    assert len(ids) > 4
    rows = [f" {p}  {1.0 + 0.5 * i:.2f}  {0.1 * (i % 3):.2f}" for i, p in enumerate(ids) if i % 2 == 0]
    text, count = re.subn(r"(?im)^\[END\]", "[LEAKAGE]\n" + "\n".join(rows) + "\n\n[END]", text)
    assert count == 1
    # A loose ACCURACY: the flows settle before the leakage does, so leakagehasconverged() decides.
    text, count = re.subn(r"(?im)^\s*accuracy\s+.*$", " Accuracy  0.05", text)
    assert count == 1
    path = folder / "NET1-leakage.inp"
    path.write_text(text)
    return path


def favad_perturbations(net, inputs, seed: int):
    """leak_favad_area_m2 / leak_favad_expansion on two random pipes of every scenario but the first
    (which keeps the file's pipe leakage, or none)."""
    from dataclasses import replace

    from parktwin.hydraulics.network import LinkKind
    rng = np.random.default_rng(seed + 2)
    n, nl = inputs.batch_size, net.n_links
    pipes = np.flatnonzero(net.link_kind == LinkKind.PIPE)
    area = np.full((n, nl), np.nan)
    expansion = np.full((n, nl), np.nan)
    for b in range(1, n):
        chosen = rng.choice(pipes, 2, replace=False)
        area[b, chosen] = rng.uniform(1e-6, 2e-5, 2)      # m² per 100 m of pipe
        expansion[b, chosen[0]] = rng.uniform(1e-7, 1e-6)   # m² per m of head per 100 m
    return replace(inputs, leak_favad_area_m2=area, leak_favad_expansion=expansion)


def scenarios(net, n: int, seed: int):
    """Leaks, demand changes, closures, roughness, tank levels, pump speeds, valve settings."""
    from test_equivalence import _mixed_scenarios
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.network import LinkKind
    base = _mixed_scenarios(net, n, seed)
    valves = np.flatnonzero(np.isin(net.link_kind, [LinkKind.PRV, LinkKind.PSV, LinkKind.FCV, LinkKind.TCV]))
    if not len(valves):
        return base
    rng = np.random.default_rng(seed + 1)
    setting = np.full((n, net.n_links), np.nan)
    given = net.initial_setting[valves]
    # Half the scenarios move every valve's setting by up to +-20 %.
    moved = rng.random(n) < 0.5
    factors = rng.uniform(0.8, 1.2, (int(moved.sum()), len(valves)))
    setting[np.ix_(np.flatnonzero(moved), valves)] = np.where(np.isnan(given), np.nan, given * factors)
    fields = {name: getattr(base, name) for name in ("demand_multiplier", "leak_area_m2", "roughness",
                                                       "link_status", "tank_level_m", "pump_speed")}
    return BatchInputs(batch_size=n, valve_setting=setting, **fields)


def solve(path, backend: str, n: int, seed: int, duration_s: int, max_trials: int | None = None,
          device_batch: int | None = None, singular_first: bool = False, favad: bool = False):
    """The results of `n` mixed scenarios; `device_batch`: scenarios on the (simulated) device at once;
    `singular_first`: the first scenario's pipes get roughness 0 (infinite resistance, zero conductance), so
    its matrix cannot be factorised and it fails as EPANET's error 110 while the others solve; `favad`: pipe
    leakage perturbations (favad_perturbations)."""
    from dataclasses import replace

    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.network import LinkKind
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    net = load_network(path)
    inputs = scenarios(net, n, seed)
    if singular_first:
        rough = np.full((n, net.n_links), np.nan) if inputs.roughness is None else inputs.roughness.copy()
        rough[0, net.link_kind == LinkKind.PIPE] = 0.0
        inputs = replace(inputs, roughness=rough)
    if favad:
        inputs = favad_perturbations(net, inputs, seed)
    solver = HydraulicSolver(net, SolverOptions(backend=backend, max_trials=max_trials))
    if device_batch is not None:
        from parktwin.hydraulics.device import DeviceGradientSolver, DeviceOptions
        assert isinstance(solver.gga.fused, DeviceGradientSolver)
        solver.gga.fused.options = DeviceOptions(max_batch=device_batch)
    return solver.run(inputs, duration_s)


def arrays(res) -> dict:
    out = {name: getattr(res, name) for name in QUANTITIES}
    out.update(status=res.status, converged=res.converged, iterations=res.iterations,
               failed=np.array([bool(reason) for reason in res.failure]))
    return out


@contextlib.contextmanager
def libm_powers():
    """The numba backend with its non-integer powers taken by libm's pow (as the device code takes them)
    instead of kernels.powers, which differs from libm in the last bit or two for about 16 % of arguments.
    With it the device kernels must reproduce the CPU fast path bit for bit."""
    from parktwin.hydraulics.fused import FusedGradientSolver
    FusedGradientSolver.libm_powers = True
    try:
        yield
    finally:
        FusedGradientSolver.libm_powers = False


def main(cases_json: str, out_dir: str) -> None:
    from parktwin.kernels.registry import cuda_simulated
    assert cuda_simulated(), "run me with NUMBA_ENABLE_CUDASIM=1"
    for case in json.loads(Path(cases_json).read_text()):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = solve(case["path"], "cupy", case["n"], case["seed"], case["duration_s"], case["max_trials"],
                        case["device_batch"], case["singular_first"], case.get("favad", False))
        said = [str(w.message) for w in caught if "cupy backend" in str(w.message)]
        np.savez(Path(out_dir) / f"{case['id']}.npz", warnings=np.array("\n".join(said)), **arrays(res))


if __name__ == "__main__":
    main(*sys.argv[1:3])
