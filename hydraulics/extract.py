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


def _into(dst, src, scale):
    """dst [B, N] view = src [N, B].T * scale."""
    dst[...] = src.T * scale


def state_to_si(solver, res, t_index: int, st, outcome, cols=None, state_cols=None):
    """Copy one report time of the state's columns `state_cols` (None: all) into the result set at rows
    `cols` (None: every row), in SI; `outcome` is that of the columns recorded."""
    if getattr(solver.backend, "name", "") == "numba":
        _elements_numba(solver, res, t_index, st, cols, state_cols)
    else:
        if state_cols is not None:
            from parktwin.hydraulics.gga import take_columns
            st = take_columns(st, state_cols)
        _elements(solver, res, t_index, st, cols)
    rows = slice(None) if cols is None else cols
    res.converged[rows, t_index] = outcome.converged
    res.iterations[rows, t_index] = outcome.iterations
    if outcome.failed.any():
        failed_rows = np.arange(res.batch_size)[rows][outcome.failed]
        for b in failed_rows:
            if not res.failure[b]:
                res.failure[b] = f"hydraulic equations could not be solved at t={int(res.time_s[t_index])} s (EPANET error 110)"


def _elements(solver, res, t_index: int, st, cols):
    """The element quantities and status codes by numpy (any backend's host arrays)."""
    sn, net = solver.sn, solver.net
    nj = net.n_junctions
    cfs = sn.m3s_per_cfs
    into = _into
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
    if "flow_m3s" in pieces:
        # EPANET reports zero flow through a closed link (its tiny solver flow is an artefact).
        into(pieces["flow_m3s"], np.where(st.status <= CLOSED, 0.0, st.flow), cfs)
    res.status[rows, t_index] = status_codes(st.status, (net.link_kind > LinkKind.PUMP)[:, None]).T
    if cols is not None:
        for name, block in pieces.items():
            getattr(res, name)[cols, t_index] = block


def _elements_numba(solver, res, t_index: int, st, cols, state_cols):
    """_elements() in compiled passes that write straight into the [B, T, X] results at their rows:
    no [B, X] temporaries and no fancy-indexed copies (a 24 h run records 289 times per scenario)."""
    from parktwin.kernels.hydraulic_numba import link_results, scatter_transposed
    net, nj = solver.net, solver.net.n_junctions
    cfs = float(solver.sn.m3s_per_cfs)
    src_cols = np.arange(st.batch_size) if state_cols is None else np.asarray(state_cols, np.int64)
    rows = np.arange(len(src_cols)) if cols is None else np.asarray(cols, np.int64)
    zeros = np.zeros(net.n_nodes)

    def put(name, src, scale, offset=zeros, col0=0):
        dst = getattr(res, name)
        if dst.shape[-1] > 0:   # a quantity allocated with no columns is not recorded
            scatter_transposed(np.ascontiguousarray(src), src_cols, scale, offset, dst, rows, t_index, col0)

    put("head_m", st.head, M_PER_FT)
    # head and pressure in float64 (head_ft * M_PER_FT - elevation), rounded once: a reservoir stays at 0
    put("pressure_m", st.head, M_PER_FT, net.elevation_m)
    if res.demand_m3s.shape[-1] > 0:    # the sum is a [Nj, B] pass of its own: only when recorded
        put("demand_m3s", st.demand_flow + st.emitter_flow, cfs)
        put("demand_m3s", st.node_outflow[nj:], cfs, col0=nj)
    if res.leak_m3s.shape[-1] > 0:
        # a junction's leak: its orifice (leak_area_m2) plus the pipe leakage EPANET assigns it ([LEAKAGE])
        pipe_leak = node_leakage(st)
        if cols is None:
            res.leak_m3s[:, t_index] = 0.0
        else:
            res.leak_m3s[rows, t_index] = 0.0
        if st.leak_ke.any() or pipe_leak is not None:
            put("leak_m3s", st.leak_flow + (0.0 if pipe_leak is None else pipe_leak), cfs)
    link_results(np.ascontiguousarray(st.flow), np.ascontiguousarray(st.status), src_cols, net.link_kind > LinkKind.PUMP,
                 cfs, rows, t_index, res.flow_m3s, res.status, res.flow_m3s.shape[-1] > 0)
