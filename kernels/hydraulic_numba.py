"""Compiled CPU kernels for the per-iteration hot loops: pipe head-loss laws, link assembly, flow update.

Same arithmetic as hydraulics.coefficients / hydraulics.assemble (the numpy reference), fused so that each
array is read once per iteration. Layout [row, B], scenario innermost; rows are split across threads.
Imported lazily (only by the numba backend path).
"""
from __future__ import annotations

import numba as nb

from parktwin.kernels.epanet_codes import CBIG as _CBIG
from parktwin.kernels.epanet_codes import CLOSED as _CLOSED
from parktwin.kernels.epanet_codes import OPEN as _OPEN
from parktwin.kernels.epanet_codes import RQTOL as _RQTOL
_BLOCK = 64


@nb.njit(cache=True, parallel=True, fastmath=False)
def pipe_coeffs_power_law(rows, q, q_pow, status, r, r_per_scenario, km, hexp, p_out, y_out):
    """Hazen-Williams / Chezy-Manning pipes (EPANET's pipecoeff); q_pow = |q|^(hexp-1), taken beforehand
    (hydraulics.coefficients.power, the fused kernel's arithmetic)."""
    batch = q.shape[1]
    n_blocks = (batch + _BLOCK - 1) // _BLOCK
    for blk in nb.prange(n_blocks):
        b0 = blk * _BLOCK
        b1 = min(batch, b0 + _BLOCK)
        for i in range(rows.shape[0]):
            k = rows[i]
            kmk = km[k]
            for b in range(b0, b1):
                qq = q[k, b]
                if status[k, b] <= _CLOSED:
                    p_out[k, b] = 1.0 / _CBIG
                    y_out[k, b] = qq
                    continue
                rk = r[k, b] if r_per_scenario else r[k, 0]
                qa = abs(qq)
                hgrad = hexp * rk * q_pow[k, b]
                if hgrad < _RQTOL:
                    hgrad = _RQTOL / hexp
                    hloss = hgrad * qa
                else:
                    hloss = hgrad * qa / hexp
                hloss += kmk * qa * qa
                hgrad += 2.0 * kmk * qa
                if qq < 0.0:
                    hloss = -hloss
                p_out[k, b] = 1.0 / hgrad
                y_out[k, b] = hloss / hgrad


@nb.njit(cache=True, parallel=True, fastmath=False)
def assemble_links(n_junctions, start, end, edge_of_link, q, p, y, head, aii, aij, f, xflow):
    """linkcoeffs(): every link with P != 0 adds to the diagonal, its off-diagonal slot and the rhs.

    Threads own blocks of scenario columns, so scattering into shared node rows is race-free, and the
    inner loop runs along contiguous scenario memory.
    """
    n_links = start.shape[0]
    batch = q.shape[1]
    n_blocks = (batch + _BLOCK - 1) // _BLOCK
    for blk in nb.prange(n_blocks):
        b0 = blk * _BLOCK
        b1 = min(batch, b0 + _BLOCK)
        for k in range(n_links):
            n1 = start[k]
            n2 = end[k]
            e = edge_of_link[k]
            j1 = n1 < n_junctions
            j2 = n2 < n_junctions
            for b in range(b0, b1):
                pk = p[k, b]
                if pk == 0.0:
                    continue
                qk = q[k, b]
                yk = y[k, b]
                xflow[n1, b] -= qk
                xflow[n2, b] += qk
                if e >= 0:
                    aij[e, b] -= pk
                if j1:
                    aii[n1, b] += pk
                    f[n1, b] += yk
                elif j2:
                    f[n2, b] += pk * head[n1, b]
                if j2:
                    aii[n2, b] += pk
                    f[n2, b] -= yk
                elif j1:
                    f[n1, b] += pk * head[n2, b]


@nb.njit(cache=True, parallel=True, fastmath=False)
def update_link_flows(start, end, const_hp, q, p, y, head, relax, status, n_junctions, qsum, dqsum, maxchange,
                      fixed_inflow):
    """newlinkflows(): q -= (Y - P dh) * relax; sums for the convergence test; inflow to fixed-grade nodes."""
    n_links = start.shape[0]
    batch = q.shape[1]
    n_blocks = (batch + _BLOCK - 1) // _BLOCK
    for blk in nb.prange(n_blocks):
        b0 = blk * _BLOCK
        b1 = min(batch, b0 + _BLOCK)
        for b in range(b0, b1):
            qsum[b] = 0.0
            dqsum[b] = 0.0
            maxchange[b] = 0.0
        for k in range(n_links):
            n1 = start[k]
            n2 = end[k]
            chp = const_hp[k]
            for b in range(b0, b1):
                dq = (y[k, b] - p[k, b] * (head[n1, b] - head[n2, b])) * relax[b]
                if chp and dq > q[k, b]:
                    dq = q[k, b] / 2.0
                qn = q[k, b] - dq
                q[k, b] = qn
                qsum[b] += abs(qn)
                adq = abs(dq)
                dqsum[b] += adq
                if adq > maxchange[b]:
                    maxchange[b] = adq
                if status[k, b] > _CLOSED:
                    if n1 >= n_junctions:
                        fixed_inflow[n1, b] -= qn
                    if n2 >= n_junctions:
                        fixed_inflow[n2, b] += qn


@nb.njit(cache=True, parallel=True)
def scatter_transposed(src, src_cols, scale, offset, dst, rows, t, col0):
    """dst[rows[b], t, col0 + n] = src[n, src_cols[b]] * scale - offset[n], in float64 and rounded once
    to dst's dtype: the solver's [N, B] state straight into the results' [B, T, N] at report time t."""
    n_rows = src.shape[0]
    batch = rows.shape[0]
    tile = 32
    n_tiles = (batch + tile - 1) // tile
    for i in nb.prange(n_tiles):
        b0 = i * tile
        b1 = min(batch, b0 + tile)
        for n0 in range(0, n_rows, tile):
            n1 = min(n_rows, n0 + tile)
            for b in range(b0, b1):
                out = dst[rows[b], t]
                c = src_cols[b]
                for n in range(n0, n1):
                    out[col0 + n] = src[n, c] * scale - offset[n]


@nb.njit(cache=True, parallel=True)
def link_results(flow, status, src_cols, is_valve, scale, rows, t, flow_out, status_out, with_flow):
    """The links' reported flows and status codes in one tiled pass over the [L, B] state's columns
    src_cols, into the results' [B, T, L] at rows[b], time t: the flow times scale, or 0 through a closed
    link; the status code as extract.status_codes()."""
    n_links = flow.shape[0]
    batch = rows.shape[0]
    tile = 32
    n_tiles = (batch + tile - 1) // tile
    for i in nb.prange(n_tiles):
        b0 = i * tile
        b1 = min(batch, b0 + tile)
        for k0 in range(0, n_links, tile):
            k1 = min(n_links, k0 + tile)
            for b in range(b0, b1):
                s_out = status_out[rows[b], t]
                c = src_cols[b]
                for k in range(k0, k1):
                    s = status[k, c]
                    s_out[k] = 0 if s <= _CLOSED else (2 if is_valve[k] and s > _OPEN else 1)
                if with_flow:
                    q_out = flow_out[rows[b], t]
                    for k in range(k0, k1):
                        q_out[k] = 0.0 if status[k, c] <= _CLOSED else flow[k, c] * scale
