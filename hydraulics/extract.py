"""Map the solver's internal state (ft, cfs, EPANET status codes) back to SI results."""
from __future__ import annotations

import numpy as np

from parktwin.hydraulics.coefficients import CLOSED, OPEN
from parktwin.hydraulics.leakage import node_leakage
from parktwin.hydraulics.network import LinkKind
from parktwin.hydraulics.results import QUANTITIES
from parktwin.hydraulics.units_tables import M_PER_FT


def status_codes(internal_status: np.ndarray, is_valve: np.ndarray) -> np.ndarray:
    """EPANET StatusType -> the result layout's int8, as EN_STATUS reports it: 0 closed, 1 open,
    2 a valve that is active or cannot hold its setting (ACTIVE, XFCV, XPRESSURE)."""
    code = np.where(internal_status <= CLOSED, 0, 1)
    return np.where(is_valve & (internal_status > OPEN), 2, code).astype(np.int8)


def _transposer(solver):
    """into(dst [B, N] view, src [N, B], scale): dst = src.T * scale; tiled and compiled on numba."""
    if getattr(solver.backend, "name", "") == "numba":
        from parktwin.kernels.hydraulic_numba import transpose_scaled

        def fast(dst, src, scale):
            transpose_scaled(np.ascontiguousarray(src), float(scale), dst)
        return fast

    def plain(dst, src, scale):
        dst[...] = src.T * scale
    return plain


def state_to_si(solver, res, t_index: int, st, outcome, cols=None):
    sn, net = solver.sn, solver.net
    nj = net.n_junctions
    cfs = sn.m3s_per_cfs
    into = _transposer(solver)
    if cols is None:
        def view(arr):
            return arr[:, t_index]
    else:
        # Scattered rows: build the [b, N] block, then place it.
        def view(arr):
            return np.empty((st.batch_size,) + arr.shape[2:], arr.dtype)
    # A quantity allocated with no columns is not recorded (ResultSet.allocate(quantities=...)).
    pieces = {name: view(getattr(res, name)) for name in QUANTITIES if getattr(res, name).shape[-1] > 0}
    if "head_m" in pieces or "pressure_m" in pieces:
        head = pieces.get("head_m")
        if head is None or head.dtype != np.float64:
            # Pressure from the float64 head, then rounded once: a reservoir's pressure stays exactly 0.
            head = np.empty((st.batch_size, net.n_nodes))
        into(head, st.head, M_PER_FT)
        if "pressure_m" in pieces:
            np.subtract(head, net.elevation_m[None, :], out=pieces["pressure_m"], casting="unsafe")
        if "head_m" in pieces and head is not pieces["head_m"]:
            pieces["head_m"][...] = head
    if "demand_m3s" in pieces:
        into(pieces["demand_m3s"][:, :nj], st.demand_flow + st.emitter_flow, cfs)
        pieces["demand_m3s"][:, nj:] = st.node_outflow[nj:].T * cfs
    if "leak_m3s" in pieces:
        # a junction's leak: its orifice (leak_area_m2) plus the pipe leakage EPANET assigns it ([LEAKAGE])
        pipe_leak = node_leakage(st)
        if st.leak_ke.any() or pipe_leak is not None:
            into(pieces["leak_m3s"][:, :nj], st.leak_flow + (0.0 if pipe_leak is None else pipe_leak), cfs)
        else:
            pieces["leak_m3s"][:, :nj] = 0.0
        pieces["leak_m3s"][:, nj:] = 0.0
    rows = slice(None) if cols is None else cols
    is_valve = net.link_kind > LinkKind.PUMP
    if "flow_m3s" in pieces and getattr(solver.backend, "name", "") == "numba":
        # flows and status codes in one compiled pass (same values as the numpy lines below)
        from parktwin.kernels.hydraulic_numba import link_results
        codes = res.status[:, t_index] if cols is None else np.empty((st.batch_size, net.n_links), np.int8)
        link_results(np.ascontiguousarray(st.flow), np.ascontiguousarray(st.status), is_valve, float(cfs),
                     pieces["flow_m3s"], codes)
        if cols is not None:
            res.status[rows, t_index] = codes
    else:
        if "flow_m3s" in pieces:
            # EPANET reports zero flow through a closed link (its tiny solver flow is an artefact).
            into(pieces["flow_m3s"], np.where(st.status <= CLOSED, 0.0, st.flow), cfs)
        res.status[rows, t_index] = status_codes(st.status, is_valve[:, None]).T
    if cols is not None:
        for name, block in pieces.items():
            getattr(res, name)[cols, t_index] = block
    res.converged[rows, t_index] = outcome.converged
    res.iterations[rows, t_index] = outcome.iterations
    if outcome.failed.any():
        failed_rows = np.arange(res.batch_size)[rows][outcome.failed]
        for b in failed_rows:
            if not res.failure[b]:
                res.failure[b] = f"hydraulic equations could not be solved at t={int(res.time_s[t_index])} s (EPANET error 110)"
