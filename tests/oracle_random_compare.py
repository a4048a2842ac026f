"""Compare `parktwin run` (the CLI, its defaults) with EPANET scenario by scenario on random mixed scenarios."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import oracle_scenarios as osc
from oracle_compare import EPANET_ACCURACY, compared_nodes, describe, mismatch


UNSETTLED_TRIALS = 1.25


@dataclass
class Outcome:
    problems: list[str]
    n_compared: int


def run_cli(path: Path, table: Path | None, out: Path, duration_s: int, command: str = "run") -> None:
    """`parktwin run NETWORK --scenarios TABLE` (or `parktwin solve NETWORK`) `--out OUT --accuracy 1e-5
    [--duration D]` with every other default, in this process (the command's own code, without the start-up)."""
    from parktwin.api.cli import main
    args = [command, str(path), "--out", str(out), "--accuracy", str(EPANET_ACCURACY)]
    if table is not None:
        args += ["--scenarios", str(table)]
    if duration_s:
        args += ["--duration", str(duration_s)]
    try:
        main(args)
    except SystemExit as done:
        assert done.code in (0, None), f"parktwin {' '.join(args)} exited with {done.code}"


def compare_network(path: Path, rng: np.random.Generator, n: int, duration_s: int, workdir: Path) -> Outcome:
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.oracle import EpanetProject
    from parktwin.scenarios.store import read_results
    with EpanetProject(path, accuracy=EPANET_ACCURACY) as ep:
        if duration_s:
            duration_s = min(duration_s, ep.duration_s)
        scenarios = osc.draw(ep, rng, n)
    if not scenarios:
        return Outcome([], 0)
    table, out = workdir / "scenarios.csv", workdir / "run.h5"
    ids = osc.write_table(table, scenarios)
    run_cli(path, table, out, duration_s)
    res, meta = read_results(out)
    net = load_network(path)
    problems = []
    for b, (sid, changes) in enumerate(zip(ids, scenarios)):
        what = "; ".join(f"{c.element} {c.attribute}={c.value}" for c in changes)
        problem = _compare_scenario(path, net, res, b, changes, duration_s)
        if problem:
            problems.append(f"{sid} ({what}): {problem}")
    return Outcome(problems, len(scenarios))


def _compare_scenario(path: Path, net, res, b: int, changes, duration_s: int) -> str | None:
    """None if scenario b of `res` gives EPANET's answer under DESIGN.md's rules, else what differs."""
    ref = osc.epanet_solve(path, changes, duration_s, EPANET_ACCURACY)
    ni = np.array([net.node_index(x) for x in ref["node_ids"]])
    li = np.array([net.link_index(x) for x in ref["link_ids"]])
    if "error" in ref:
        # EPANET cannot solve it (error 110: a pivot of its Cholesky was not positive). There is no answer to
        # compare; where a zone hangs on closed links only that verdict is round-off (kernels.ldl_xp).
        return None
    n_times = len(np.atleast_1d(ref["time_s"]))
    times = np.atleast_1d(res.time_s[:n_times])
    unbalanced = np.atleast_1d(ref["warning"]) == 1
    conv = res.converged[b, :n_times]
    mask = compared_nodes(ref["node_types"], ref["link_nodes"], ref["link_types"], np.atleast_2d(ref["status"]))
    # A scenario that cuts a zone with a forced flow (a consumer's demand, an FCV's setting) off every source
    # has no defined answer: the zone's heads run to -1e8 and its closed links (1e-8 conductance) then carry
    # finite flows that depend on those constants, anywhere in the network. Neither its verdict nor its
    # values are compared.
    forced = np.atleast_2d(ref["demand_m3s"]) != 0
    fcv_ends = np.asarray(ref["link_nodes"])[np.asarray(ref["link_types"]) == osc.EN_FCV].ravel()
    forced[:, fcv_ends] = True
    ill_posed = (forced & ~mask).any(axis=1)
    # A verdict decided at the trial limit is as unsettled as a head at the tolerance: where EPANET calls a
    # step unbalanced but converges there with a quarter more trials, either verdict counts; from the first
    # such step on, EPANET's run and ParkTwin's go different ways and are not compared.
    differ = (conv == unbalanced) & ~ill_posed
    if differ.any():
        longer = osc.epanet_solve(path, changes, duration_s, EPANET_ACCURACY, trials_factor=UNSETTLED_TRIALS)
        if "error" not in longer and len(np.atleast_1d(longer["time_s"])) >= n_times:
            settled_now = np.atleast_1d(longer["warning"])[:n_times] != 1
            unsettled = differ & unbalanced & settled_now
            if unsettled.any():
                first = int(np.flatnonzero(unsettled)[0])
                differ[first:] = False
                ill_posed[first:] = True
    if (differ & ~conv).any():
        return f"not converged at t={times[differ & ~conv].tolist()} where EPANET converges"
    if (differ & conv).any():
        if duration_s:
            return f"converged at t={times[differ & conv].tolist()} where EPANET ends unbalanced"
        # A warm start can settle where EPANET's cold start cycles; EPANET warm-started the same way must
        # then settle too, on the same answer.
        ref = osc.epanet_solve(path, changes, 0, EPANET_ACCURACY, warm=True)
        if "error" in ref or ref["warning"] == 1:
            return "converged where EPANET ends unbalanced, cold and warm-started"
        unbalanced = np.zeros(1, bool)
    h = res.head_m[b, :n_times][:, ni].astype(float)
    q = res.flow_m3s[b, :n_times][:, li].astype(float)
    rh, rq = np.atleast_2d(ref["head_m"]), np.atleast_2d(ref["flow_m3s"])
    skip = unbalanced | ~conv | ill_posed
    mm = mismatch(h, q, rh, rq, mask)
    mm.head[skip] = False
    mm.flow[skip] = False
    # Flows inside a zone cut off from every source are as arbitrary as its heads.
    ends = np.asarray(ref["link_nodes"])
    mm.flow &= mask[:, ends[:, 0]] | mask[:, ends[:, 1]]
    if mm.any:
        # Either EPANET answer counts where EPANET's own moves between ACCURACY 1e-5 and 1e-6.
        fine = osc.epanet_solve(path, changes, duration_s, 1e-6)
        if "error" not in fine and len(np.atleast_1d(fine["time_s"])) == n_times:
            fh, fq = np.atleast_2d(fine["head_m"]), np.atleast_2d(fine["flow_m3s"])
            unsettled = mismatch(rh, rq, fh, fq, mask)
            steps = unsettled.head.any(axis=1) | unsettled.flow.any(axis=1)
            fine_mm = mismatch(h, q, fh, fq, mask)
            mm.head[steps] &= fine_mm.head[steps]
            mm.flow[steps] &= fine_mm.flow[steps]
    if mm.any:
        return describe(path.name, ref["node_ids"], ref["link_ids"], h, q, rh, rq, mm, times)
    return None
