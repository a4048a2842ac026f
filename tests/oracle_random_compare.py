"""Compare `parktwin run` (the CLI, its defaults) with EPANET scenario by scenario on random mixed scenarios."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import oracle_scenarios as osc
from oracle_compare import EPANET_ACCURACY, compared_nodes, describe, mismatch


UNSETTLED_TRIALS = 1.25   # EPANET's verdict is unsettled where a quarter more trials changes it
CYCLING_SHARE = 0.75      # a step that takes this share of TRIALS is settled by status cycling


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


def compare_network(path: Path, rng: np.random.Generator, n: int, duration_s: int, workdir: Path,
                    kinds=osc.KINDS, every_kind: bool = False) -> Outcome:
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.oracle import EpanetProject
    from parktwin.scenarios.store import read_results
    with EpanetProject(path, accuracy=EPANET_ACCURACY) as ep:
        if duration_s:
            duration_s = min(duration_s, ep.duration_s)
        scenarios = osc.draw(ep, rng, n, kinds, every_kind)
    if not scenarios:
        return Outcome([], 0)
    table, out = workdir / "scenarios.csv", workdir / "run.h5"
    ids = osc.write_table(table, scenarios)
    run_cli(path, table, out, duration_s)
    res, _ = read_results(out)
    net = load_network(path)
    problems = []
    for b, (sid, changes) in enumerate(zip(ids, scenarios)):
        what = "; ".join(f"{c.element} {c.attribute}={c.value}" for c in changes)
        problem = _compare_scenario(path, net, res, b, changes, duration_s)
        if problem:
            problems.append(f"{sid} ({what}): {problem}")
    return Outcome(problems, len(scenarios))


def _nearest_between(h, q, h1, q1, h2, q2):
    """The points of the segments from EPANET's one answer to its other nearest to ours."""
    return (np.clip(h, np.minimum(h1, h2), np.maximum(h1, h2)), np.clip(q, np.minimum(q1, q2), np.maximum(q1, q2)))


def _compare_scenario(path: Path, net, res, b: int, changes, duration_s: int) -> str | None:
    """None if scenario b of `res` gives EPANET's answer under DESIGN.md's rules, else what differs.

    Beyond DESIGN.md's tolerances, three kinds of step have no single answer and are not held against
    either solver:
    - a zone with a forced flow (a consumer's demand, an FCV's setting) cut off every source: its heads run
      to -1e8 and its closed links (1e-8 conductance) then carry finite flows anywhere in the network;
    - a step that EPANET or ParkTwin settles only after three quarters of the trial budget (status
      cycling, decided by which status flips last), where EPANET's verdict changes with a quarter more
      trials, or that EPANET cannot take to ACCURACY 1e-6; an extended run is compared up to that step
      only, since the two runs go on from different states;
    - a scenario EPANET cannot solve at all (its error 110: a pivot round-off made non-positive).
    """
    ref = osc.epanet_solve(path, changes, duration_s, EPANET_ACCURACY)
    if "error" in ref:
        return None
    n_times = len(np.atleast_1d(ref["time_s"]))
    times = np.atleast_1d(res.time_s[:n_times])
    unbalanced = np.atleast_1d(ref["warning"]) == 1
    conv = res.converged[b, :n_times].copy()
    mask = compared_nodes(ref["node_types"], ref["link_nodes"], ref["link_types"], np.atleast_2d(ref["status"]))
    forced = np.atleast_2d(ref["demand_m3s"]) != 0
    fcv_ends = np.asarray(ref["link_nodes"])[np.asarray(ref["link_types"]) == osc.EN_FCV].ravel()
    forced[:, fcv_ends] = True
    ill_posed = (forced & ~mask).any(axis=1)
    budget = CYCLING_SHARE * ref["trials"]
    cycling = (np.atleast_1d(ref["iterations"]) >= budget) | (res.iterations[b, :n_times] >= budget)
    differ = (conv == unbalanced) & ~ill_posed
    if (differ & unbalanced).any():
        longer = osc.epanet_solve(path, changes, duration_s, EPANET_ACCURACY, trials_factor=UNSETTLED_TRIALS)
        if "error" not in longer and len(np.atleast_1d(longer["time_s"])) >= n_times:
            cycling |= unbalanced & (np.atleast_1d(longer["warning"])[:n_times] != 1)
    if not duration_s and (differ & conv).any() and not cycling.any():
        # A warm start can settle where EPANET's cold start cycles; EPANET warm-started the same way must
        # then settle too, on the same answer.
        warm = osc.epanet_solve(path, changes, 0, EPANET_ACCURACY, warm=True)
        if "error" in warm or warm["warning"] == 1:
            return "converged where EPANET ends unbalanced, cold and warm-started"
        ref, unbalanced, differ = warm, np.zeros(1, bool), np.zeros(1, bool)
    ni = np.array([net.node_index(x) for x in ref["node_ids"]])
    li = np.array([net.link_index(x) for x in ref["link_ids"]])
    h = res.head_m[b, :n_times][:, ni].astype(float)
    q = res.flow_m3s[b, :n_times][:, li].astype(float)
    rh, rq = np.atleast_2d(ref["head_m"]), np.atleast_2d(ref["flow_m3s"])
    mm = mismatch(h, q, rh, rq, mask)
    skip = unbalanced | ~conv | ill_posed
    mm.head[skip] = False
    mm.flow[skip] = False
    # Flows inside a zone cut off from every source are as arbitrary as its heads.
    ends = np.asarray(ref["link_nodes"])
    mm.flow &= mask[:, ends[:, 0]] | mask[:, ends[:, 1]]
    if mm.any:
        # Where EPANET's own answer moves between ACCURACY 1e-5 and 1e-6 by more than half the tolerance
        # (its convergence error alone uses half the budget; a second solver stopping by the same rule on a
        # slowly converging network carries one as large), any answer from one of EPANET's to the other
        # counts, within the tolerance.
        fine = osc.epanet_solve(path, changes, duration_s, 1e-6)
        if "error" not in fine and len(np.atleast_1d(fine["time_s"])) == n_times:
            # A step EPANET cannot take to ACCURACY 1e-6 (its statuses cycle there) is settled by cycling.
            cycling |= np.atleast_1d(fine["warning"]) == 1
            fh, fq = np.atleast_2d(fine["head_m"]), np.atleast_2d(fine["flow_m3s"])
            unsettled = mismatch(rh, rq, fh, fq, mask, scale=0.5)
            steps = unsettled.head.any(axis=1) | unsettled.flow.any(axis=1)
            between = mismatch(h, q, *_nearest_between(h, q, rh, rq, fh, fq), mask)
            mm.head[steps] &= between.head[steps]
            mm.flow[steps] &= between.flow[steps]
    # Where both end unbalanced, ParkTwin says so with EPANET's count of trials.
    trials = (unbalanced & ~conv & ~ill_posed) & (res.iterations[b, :n_times] != np.atleast_1d(ref["iterations"]))
    bad_step = differ | trials | mm.head.any(axis=1) | mm.flow.any(axis=1)
    cut = np.flatnonzero(cycling & bad_step)
    if len(cut):
        bad_step[cut[0]:] = False
    if not bad_step.any():
        return None
    first = int(np.flatnonzero(bad_step)[0])
    if differ[first]:
        verdict = "converged" if conv[first] else "not converged"
        return f"{verdict} at t={int(times[first])} where EPANET {'does not' if conv[first] else 'does'}"
    if trials[first]:
        return (f"unbalanced at t={int(times[first])} after {int(res.iterations[b, first])} trials, EPANET after "
                f"{int(np.atleast_1d(ref['iterations'])[first])}")
    keep = np.zeros_like(bad_step)
    keep[first:] = bad_step[first:]
    mm.head &= keep[:, None]
    mm.flow &= keep[:, None]
    return describe(path.name, ref["node_ids"], ref["link_ids"], h, q, rh, rq, mm, times)
