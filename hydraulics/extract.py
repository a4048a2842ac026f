"""Map the solver's internal state (ft, cfs, EPANET status codes) back to SI results."""
from __future__ import annotations

import numpy as np

from hydraulics.coefficients import CLOSED, OPEN
from hydraulics.network import LinkKind
from hydraulics.epanet_units import M_PER_FT


def status_codes(internal_status: np.ndarray, is_valve: np.ndarray) -> np.ndarray:
    """EPANET StatusType -> the result layout's int8, as EN_STATUS reports it: 0 closed, 1 open,
    2 a valve that is active or cannot hold its setting (ACTIVE, XFCV, XPRESSURE)."""
    code = np.where(internal_status <= CLOSED, 0, 1)
    return np.where(is_valve & (internal_status > OPEN), 2, code).astype(np.int8)


def _transposer(solver):
    """[N, B] -> [B, N] with a unit factor: a tiled compiled copy on the numba backend."""
    if getattr(solver.backend, "name", "") == "numba":
        from kernels.hydraulic_numba import transpose_scaled

        def fast(src, scale):
            dst = np.empty((src.shape[1], src.shape[0]))
            transpose_scaled(np.ascontiguousarray(src), float(scale), dst)
            return dst
        return fast
    return lambda src, scale: src.T * scale


def state_to_si(solver, res, t_index: int, st, outcome, cols=None):
    sn, net = solver.sn, solver.net
    nj = net.n_junctions
    cfs = sn.m3s_per_cfs
    rows = slice(None) if cols is None else cols
    to_si = _transposer(solver)
    head = to_si(st.head, M_PER_FT)                                   # [B, N]
    res.head_m[rows, t_index] = head
    head -= net.elevation_m[None, :]
    res.pressure_m[rows, t_index] = head
    demand = np.empty((st.batch_size, net.n_nodes))
    demand[:, :nj] = to_si(st.demand_flow + st.emitter_flow, cfs)
    demand[:, nj:] = st.node_outflow[nj:].T * cfs
    res.demand_m3s[rows, t_index] = demand
    leak = np.zeros((st.batch_size, net.n_nodes))
    if st.leak_ke.any():
        leak[:, :nj] = to_si(st.leak_flow, cfs)
    res.leak_m3s[rows, t_index] = leak
    # EPANET reports zero flow through a closed link (its tiny solver flow is an artefact).
    res.flow_m3s[rows, t_index] = to_si(np.where(st.status <= CLOSED, 0.0, st.flow), cfs)
    res.status[rows, t_index] = status_codes(st.status, (net.link_kind > LinkKind.PUMP)[:, None]).T
    res.converged[rows, t_index] = outcome.converged
    res.iterations[rows, t_index] = outcome.iterations
    if outcome.failed.any():
        failed_rows = np.arange(res.batch_size)[rows][outcome.failed]
        for b in failed_rows:
            if not res.failure[b]:
                res.failure[b] = f"hydraulic equations could not be solved at t={int(res.time_s[t_index])} s (EPANET error 110)"
