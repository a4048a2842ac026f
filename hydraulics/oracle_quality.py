"""EPANET 2.3's water quality as validation oracle: its hydraulics+quality loop (EN_runH, EN_runQ,
EN_nextH, EN_nextQ in one pass, the fastest way a user drives it), sampled at the report times.

Values are EPANET's reporting units: node EN_QUALITY and link EN_LINKQUAL (chemical: the file's mass
unit per litre; age: hours; trace: percent), in EPANET's node and link order. The project must keep the
file's units (EpanetProject(..., si_units=False)): EPANET reads wall coefficients in the unit system's
length unit, so switching a US file to CMS changes its wall reactions.
"""
from __future__ import annotations

from ctypes import byref, c_long

import numpy as np

from parktwin.hydraulics.oracle import EN_FLOW, EN_INITFLOW, EN_JUNCTION, EpanetProject
from parktwin.hydraulics.units_tables import EPANET_FLOW_PER_CFS

EN_QUALITY, EN_LINKQUAL = 12, 14
Q_STAGNANT_CFS = 0.005 / 448.831   # EPANET's 0.005 gpm: slower water has no flow direction


def run_quality(project: EpanetProject, max_time_s: int | None = None) -> dict:
    """time_s (T,), node_quality [T, N], link_quality [T, L], flow_cfs [T, L] at every report time up to
    max_time_s."""
    if project._si_units:
        raise ValueError("run_quality needs the file's own units: open the project with si_units=False")
    lib, ph = project._lib, project._ph
    per_cfs = EPANET_FLOW_PER_CFS[project.file_flow_units]
    end = project.duration_s if max_time_s is None else min(project.duration_s, int(max_time_s))
    start, step = project.report_start_s, max(project.report_step_s, 1)
    times, nodes, links, flows = [], [], [], []
    project.open_hydraulics()
    project._check(lib.EN_openQ(ph), "EN_openQ")
    try:
        project.init_hydraulics(EN_INITFLOW)
        project._check(lib.EN_initQ(ph, 0), "EN_initQ")
        t, dt = c_long(), c_long()
        while True:
            project.last_warning = project._check(lib.EN_runH(ph, byref(t)), "EN_runH")
            project._check(lib.EN_runQ(ph, byref(c_long())), "EN_runQ")
            now = t.value
            if now >= start and (now - start) % step == 0 and now <= end:
                times.append(now)
                nodes.append(project.get_node_values(EN_QUALITY))
                links.append(project.get_link_values(EN_LINKQUAL))
                flows.append(project.get_link_values(EN_FLOW) / per_cfs)
            project._check(lib.EN_nextH(ph, byref(dt)), "EN_nextH")
            project._check(lib.EN_nextQ(ph, byref(c_long())), "EN_nextQ")
            if dt.value <= 0 or now + dt.value > end:
                break
    finally:
        lib.EN_closeQ(ph)
        project.close_hydraulics()
    return {"time_s": np.array(times, np.int64), "node_quality": np.array(nodes), "link_quality": np.array(links),
            "flow_cfs": np.array(flows)}


def supplied(node_types: np.ndarray, link_nodes: np.ndarray, flow_cfs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and links supplied from a source at one time: reached from a tank or reservoir along links
    whose water moves (|q| >= EPANET's stagnation threshold), downstream only. Elsewhere water stands
    still and its quality follows round-off flows (EPANET's own answer there changes with ACCURACY)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order
    n = len(node_types)
    moving = np.abs(flow_cfs) >= Q_STAGNANT_CFS
    up = np.where(flow_cfs >= 0, link_nodes[:, 0], link_nodes[:, 1])
    down = np.where(flow_cfs >= 0, link_nodes[:, 1], link_nodes[:, 0])
    root = n   # a virtual node feeding every tank and reservoir
    sources = np.flatnonzero(node_types != EN_JUNCTION)
    rows = np.concatenate([up[moving], np.full(len(sources), root)])
    cols = np.concatenate([down[moving], sources])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    reached = np.zeros(n + 1, bool)
    reached[breadth_first_order(graph, root, directed=True, return_predecessors=False)] = True
    nodes = reached[:n]
    return nodes, moving & nodes[up]
