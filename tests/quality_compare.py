"""Water quality against EPANET 2.3 under the issue's rule (DESIGN.md, Validation).

|ours - EPANET| <= max(the file's TOLERANCE, 1e-3 |EPANET|) at every node and link supplied from a source
(moving water from a tank or reservoir, hydraulics.oracle_quality.supplied), EPANET at ACCURACY 1e-5;
where EPANET's own answer moves by more than that at ACCURACY 1e-6, either answer counts; a network of
more than 10,000 compared values may miss at most 1 in 10,000.
"""
from __future__ import annotations

import numpy as np

EPANET_ACCURACY = 1e-5
REL_TOL = 1e-3
MISS_PER_VALUE = 1e-4
MANY_VALUES = 10_000


def ours(path, duration_s, backend="numba"):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.quality import run_with_quality
    from parktwin.hydraulics.solver import SolverOptions
    net = load_network(path)
    res, engine = run_with_quality(net, SolverOptions(backend=backend, accuracy=EPANET_ACCURACY,
                                                      warm_start=False), duration_s=duration_s)
    return net, engine


def epanet(path, duration_s, accuracy):
    from parktwin.hydraulics.oracle import EpanetProject
    from parktwin.hydraulics.oracle_quality import run_quality
    with EpanetProject(path, accuracy=accuracy, si_units=False) as ep:
        ref = run_quality(ep, duration_s)
        ref.update(node_ids=ep.node_ids, link_ids=ep.link_ids, node_types=ep.node_types, link_nodes=ep.link_nodes)
    return ref


def compare(path, duration_s, counts: dict | None = None) -> str:
    """'' when ParkTwin matches EPANET, else a description of the misses; `counts` (a dict) receives the
    numbers of compared values and misses."""
    from parktwin.hydraulics.oracle_quality import supplied
    net, engine = ours(path, duration_s)
    ref = epanet(path, duration_s, EPANET_ACCURACY)
    times = ref["time_s"]
    np.testing.assert_array_equal(engine.times[:len(times)], times)
    ni = np.array([net.node_index(n) for n in ref["node_ids"]])
    li = np.array([net.link_index(k) for k in ref["link_ids"]])
    masks = [supplied(ref["node_types"], ref["link_nodes"], q) for q in ref["flow_cfs"]]
    tol = engine.model.ctol * engine.model.ucf_quality
    fine = None
    pieces, n_values, n_bad = [], 0, 0
    for what, mine, key, mask, ids in (
            ("node", engine.node_quality[0, :len(times)][:, ni], "node_quality", np.array([m[0] for m in masks]),
             ref["node_ids"]),
            ("link", engine.link_quality[0, :len(times)][:, li], "link_quality", np.array([m[1] for m in masks]),
             ref["link_ids"])):
        theirs = ref[key]
        bad = mask & ~(np.abs(mine - theirs) <= np.maximum(tol, REL_TOL * np.abs(theirs)))
        if bad.any():
            fine = fine or epanet(path, duration_s, 1e-6)
            other = fine[key]
            unsettled = ~(np.abs(other - theirs) <= np.maximum(tol, REL_TOL * np.abs(theirs)))
            bad &= ~(unsettled & (np.abs(mine - other) <= np.maximum(tol, REL_TOL * np.abs(other))))
        n_values += int(mask.sum())
        n_bad += int(bad.sum())
        for t, e in np.argwhere(bad)[:5]:
            pieces.append(f"  {what} {ids[e]} at t={times[t]}: ours {mine[t, e]:.6g} epanet {theirs[t, e]:.6g}")
    allowed = int(n_values * MISS_PER_VALUE) if n_values > MANY_VALUES else 0
    if counts is not None:
        counts.update(values=n_values, misses=n_bad, allowed=allowed)
    if n_bad > allowed:
        return f"{n_bad} of {n_values} values outside tolerance (allowed {allowed}):\n" + "\n".join(pieces)
    return ""
