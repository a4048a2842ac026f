"""hydsolve() for blocks of scenarios, every trial in one compiled call (the numba backend's fast path).

Each worker takes blocks of up to `block` running scenarios and copies their state (flows, heads, statuses,
resistances, demands, the fixed-grade nodes' outflow) into its own [row, lane] arrays once. The block then
iterates in cache, stage by stage (kernels.gga_numba, gga_laws, ldl_numba), until every lane has stopped,
and is copied back once. Lanes that stop leave the vector loops: when a whole register's worth of them
has, the live ones are moved to the front of the block and its width shrinks. The non-integer powers are taken inside the loop by
kernels.powers (vectorised), or by libm where the caller asks (`libm_powers`, as the device kernels take
them, for the bit-for-bit comparison of tests/test_cudasim.py).

A lane whose matrix fails (no valid pivot) leaves with lanes.bad_node >= 0 and lanes.state 0, for the
caller's badvalve() rescue and another call; a lane past `max_total` trials stops with lanes.state 1.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from parktwin.kernels.gga_laws import CLOSED, TINY, _coefficients, _pow
from parktwin.kernels.gga_numba import _assemble, _link_status, _new_flows, _valve_status
from parktwin.kernels.ldl_numba import _factor_block, _substitute_block
from parktwin.kernels.powers import split

LANES_PER_VECTOR = 8    # float64 lanes of an AVX-512 register: a block's width stays a multiple of it

_split = nb.njit(cache=True, inline="always", error_model="numpy")(split)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _gather(batch_rows, cols, w, block_rows):
    """block_rows[:, lane] = batch_rows[:, cols[lane]] (a [rows, 1] batch array is shared by all lanes)."""
    c0 = cols[0]
    shared = batch_rows.shape[1] == 1
    run = cols[w - 1] - c0 == w - 1     # consecutive scenarios (most blocks): plain row copies
    for i in range(batch_rows.shape[0]):
        source, target = batch_rows[i], block_rows[i]
        if shared:
            for lane in range(w):
                target[lane] = source[0]
        elif run:
            for lane in range(w):
                target[lane] = source[c0 + lane]
        else:
            for lane in range(w):
                target[lane] = source[cols[lane]]


@nb.njit(cache=True, inline="always", error_model="numpy")
def _scatter(block_rows, cols, w, first_row, batch_rows):
    """batch_rows[first_row:, cols[lane]] = block_rows[first_row:, lane]."""
    for i in range(first_row, batch_rows.shape[0]):
        source, target = block_rows[i], batch_rows[i]
        for lane in range(w):
            target[cols[lane]] = source[lane]


@nb.njit(cache=True, inline="always", error_model="numpy")
def _swap_pairs(rows, pair_a, pair_b, n_pairs):
    """Exchange columns pair_a[i] and pair_b[i] of every row, i < n_pairs."""
    for r in range(rows.shape[0]):
        row = rows[r]
        for i in range(n_pairs):
            a, b = pair_a[i], pair_b[i]
            t = row[a]
            row[a] = row[b]
            row[b] = t


@nb.njit(cache=True, inline="always", error_model="numpy")
def _powers(net, flow, status, setting, cols, w, libm, q_pow, speed_pow):
    """|q|^(n-1) of every link and the power-law pumps' speed^(2-n) for the block's lanes."""
    a = net.flow_exponent - 1.0
    a_hi, a_lo = _split(a)
    for k in range(flow.shape[0]):
        q_row, qp_row = flow[k], q_pow[k]
        if libm:
            for lane in range(w):
                qp_row[lane] = math.pow(abs(q_row[lane]), a)
        else:
            for lane in range(w):
                qp_row[lane] = _pow(abs(q_row[lane]), a, a_hi, a_lo)
    for i in range(net.power_pumps.shape[0]):
        k = net.power_pumps[i]
        pn = net.pump_of[k]
        n = net.pump_n[pn]
        n = 1.0 if abs(n - 1.0) < TINY else n
        s_hi, s_lo = _split(2.0 - n)
        q_hi, q_lo = _split(n - 1.0)
        for lane in range(w):
            sv = setting[k, cols[lane]]
            speed = 1.0 if (status[k, lane] <= CLOSED or sv == 0.0) else sv
            speed_pow[pn, lane] = math.pow(speed, 2.0 - n) if libm else _pow(speed, 2.0 - n, s_hi, s_lo)
            if n != 1.0:
                qa = abs(flow[k, lane])
                q_pow[k, lane] = math.pow(qa, n - 1.0) if libm else _pow(qa, n - 1.0, q_hi, q_lo)


# Not inlined: numba 0.68 loses the writes of an inlined function through a NamedTuple's array inside a
# prange body (the caller's favad.va_pow stayed 0).
@nb.njit(cache=True, error_model="numpy")
def _favad_powers(favad, cols, w, live, libm):
    """|q|^(-1/3) of the variable-area pipe leakage, where a junction has it (hydraulics.leakage)."""
    a = 2.0 / 3.0 - 1.0
    a_hi, a_lo = _split(a)
    for lane in range(w):
        if not live[lane]:
            continue
        b = cols[lane]
        for i in range(favad.ptr[b], favad.ptr[b + 1]):
            j = favad.node[i]
            if favad.cva[j, b] != 0.0:
                qa = abs(favad.qva[j, b])
                favad.va_pow[j, b] = math.pow(qa, a) if libm else _pow(qa, a, a_hi, a_lo)


@nb.njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def solve_blocks(net, plan, ctrl, batch, lanes, leaks, favad, live_cols, block, n_workers, workspace,
                 max_total, libm):
    """Iterate every scenario of live_cols (lanes.state 0) until it stops, fails its factorisation or runs
    past max_total trials. The arguments are the NamedTuples of kernels.gga_structs: the network
    (FusedNetwork), the factorisation plan (FactorPlan), EPANET's options (IterationControl), the batch's
    state (BatchArrays), the per-scenario counters (LaneArrays), the orifice leaks (LeakLists) and the pipe
    leakage (PipeLeakage, empty lists where nothing leaks that way).
    workspace: [>= n_workers, workspace_size(...)] float64, reused from call to call.
    libm: take the powers with libm's pow instead of kernels.powers.
    """
    nj = net.n_junctions
    perm, edge_slot, col_ptr, row_idx = plan.perm, plan.edge_slot, plan.col_ptr, plan.row_idx
    accuracy, max_trials, check_freq = ctrl.accuracy, ctrl.max_trials, ctrl.check_frequency
    max_check, damp_limit, qexp = ctrl.max_check, ctrl.damp_limit, ctrl.emitter_exponent
    backflow = ctrl.emitter_backflow > 0.5
    flow, head, status, setting = batch.flow, batch.head, batch.status, batch.setting
    emitter_flow, leak_flow, leak_ke = batch.emitter_flow, batch.leak_flow, batch.leak_ke
    lane_state, iters, next_check, relax = lanes.state, lanes.iters, lanes.next_check, lanes.relax
    relerr, converged, bad_node_out = lanes.relerr, lanes.converged, lanes.bad_node
    n_links, n_nodes = flow.shape[0], head.shape[0]
    n_edges, n_pumps, n_fixed = max(edge_slot.shape[0], 1), max(net.pump_n.shape[0], 1), max(n_nodes - nj, 1)
    nslots = plan.nslots
    # Each worker takes one contiguous share of the lanes, a multiple of LANES_PER_VECTOR, in blocks of
    # `block`: dealing whole blocks round-robin left one worker a block more than the other (15 blocks of
    # a 464-scenario chunk on 2 threads: 8 against 7).
    n_live = live_cols.shape[0]
    per_worker = -(-n_live // n_workers)
    share = -(-per_worker // LANES_PER_VECTOR) * LANES_PER_VECTOR
    lane_end = np.empty(n_workers + 1, dtype=np.int64)
    for i in range(n_workers + 1):
        lane_end[i] = min(n_live, i * share)
    for worker in nb.prange(n_workers):
        # The block's arrays, carved from the caller's per-worker workspace (workspace_size()): a fresh
        # allocation per call page-faults on first touch.
        ws = workspace[worker]
        # [rows, block] arrays; the factor's values and the substitution's work are reshaped to the block's
        # current width instead, so that their rows stay C-contiguous for _factor_block's vector loops.
        sizes = (n_links, n_links, nj, nj, n_edges, n_nodes, n_links, n_nodes, n_links, n_links, nj, n_fixed,
                 n_pumps)
        views = []
        o = 0
        for rows in sizes:
            views.append(ws[o: o + rows * block].reshape((rows, block)))
            o += rows * block
        p, y, aii, f, aij, xflow = views[0], views[1], views[2], views[3], views[4], views[5]
        flow_b, head_b, q_pow, resist_b, demand_b, fixed_b, speed_pow = views[6], views[7], views[8], \
            views[9], views[10], views[11], views[12]
        values_flat = ws[o: o + nslots * block]
        o += nslots * block
        work_flat = ws[o: o + nj * block]
        status_b = np.empty((n_links, block), dtype=status.dtype)
        cols_buf = np.empty(block, dtype=np.int64)
        first_buf = np.empty(block, dtype=np.int64)
        pair_a = np.empty(block, dtype=np.int64)
        pair_b = np.empty(block, dtype=np.int64)
        active = np.zeros(block, dtype=np.bool_)
        live = np.zeros(block, dtype=np.bool_)
        chk = np.zeros(block, dtype=np.bool_)
        vchanged = np.zeros(block, dtype=np.bool_)
        lchanged = np.zeros(block, dtype=np.bool_)
        err = np.zeros(block)
        rnow = np.zeros(block)
        qsum = np.zeros(block)
        dqsum = np.zeros(block)
        fav_ok = np.ones(block, dtype=np.bool_)
        for blk in range(lane_end[worker], lane_end[worker + 1], block):
            w0 = min(block, lane_end[worker + 1] - blk)
            cols_buf[:w0] = live_cols[blk: blk + w0]
            cols0 = cols_buf[:w0]
            _gather(flow, cols0, w0, flow_b)
            _gather(head, cols0, w0, head_b)
            _gather(status, cols0, w0, status_b)
            _gather(batch.resistance, cols0, w0, resist_b)
            _gather(batch.demand_flow, cols0, w0, demand_b)
            _gather(batch.node_outflow[nj:], cols0, w0, fixed_b)
            for i in range(speed_pow.shape[0]):
                speed_pow[i, :] = 1.0
            for lane in range(w0):
                active[lane] = True
                bad_node_out[cols0[lane]] = -1
            w = w0
            while w > 0:
                cols = cols_buf[:w]
                for lane in range(w):
                    live[lane] = active[lane]
                _powers(net, flow_b, status_b, setting, cols, w, libm, q_pow, speed_pow)
                _favad_powers(favad, cols, w, live, libm)
                _coefficients(net, flow_b, q_pow, speed_pow, status_b, setting, resist_b, cols, w, p, y)
                _assemble(net, flow_b, head_b, status_b, setting, emitter_flow, leak_flow, leak_ke, demand_b,
                          qexp, backflow, cols, w, p, y, aii, aij, f, xflow, leaks.ptr, leaks.node, favad)
                values = values_flat[:nslots * w].reshape((nslots, w))
                work = work_flat[:nj * w].reshape((nj, w))
                first = first_buf[:w]
                values_flat[:nslots * w] = 0.0
                for j in range(nj):
                    v_row, w_row, a_row, f_row = values[j], work[j], aii[perm[j]], f[perm[j]]
                    for lane in range(w):
                        v_row[lane] = a_row[lane]
                        w_row[lane] = f_row[lane]
                for e in range(edge_slot.shape[0]):
                    v_row, a_row = values[edge_slot[e]], aij[e]
                    for lane in range(w):
                        v_row[lane] += a_row[lane]
                _factor_block(col_ptr, plan.op_ptr, plan.op_target, plan.op_a, plan.op_b, plan.op_pivot, values,
                              first)
                _substitute_block(col_ptr, row_idx, values, work)
                for lane in range(w):
                    if live[lane] and first[lane] < nj:
                        bad_node_out[cols[lane]] = perm[first[lane]]
                        live[lane] = False
                        active[lane] = False
                for j in range(nj):
                    h_row, w_row = head_b[perm[j]], work[j]
                    for lane in range(w):
                        h_row[lane] = w_row[lane] if live[lane] else h_row[lane]
                for lane in range(w):
                    rnow[lane] = relax[cols[lane]] if live[lane] else 0.0
                _new_flows(net, flow_b, head_b, status_b, emitter_flow, leak_flow, leak_ke, qexp, backflow,
                           rnow, cols, w, p, y, live, fixed_b, accuracy, err, qsum, dqsum, leaks.ptr, leaks.node,
                           favad, fav_ok)
                for lane in range(w):
                    b = cols[lane]
                    vchanged[lane] = False
                    lchanged[lane] = False
                    chk[lane] = live[lane]
                    if live[lane]:
                        relerr[b] = err[lane]
                        relax[b] = 1.0
                        if damp_limit > 0.0:
                            chk[lane] = err[lane] <= damp_limit
                            if chk[lane]:
                                relax[b] = 0.6
                _valve_status(net, flow_b, head_b, status_b, setting, cols, w, chk, vchanged)
                for lane in range(w):
                    b = cols[lane]
                    conv = live[lane] and err[lane] <= accuracy and fav_ok[lane]
                    chk[lane] = conv and not (iters[b] > max_trials)
                _link_status(net, flow_b, head_b, status_b, setting, cols, w, chk, lchanged)
                for lane in range(w):
                    b = cols[lane]
                    if not live[lane]:
                        continue
                    it = iters[b]
                    conv = err[lane] <= accuracy and fav_ok[lane]
                    stop = conv and it > max_trials
                    if chk[lane]:
                        if not (vchanged[lane] or lchanged[lane]):
                            stop = True
                        else:
                            next_check[b] = it + check_freq
                    converged[b] = conv
                    chk[lane] = (not conv) and it <= max_check and it == next_check[b]
                    if not stop:
                        iters[b] += 1
                    else:
                        lane_state[b] = 1
                for lane in range(w):
                    lchanged[lane] = False
                _link_status(net, flow_b, head_b, status_b, setting, cols, w, chk, lchanged)
                for lane in range(w):
                    b = cols[lane]
                    if not live[lane]:
                        continue
                    if chk[lane]:
                        next_check[b] += check_freq
                    if lane_state[b] == 0 and iters[b] > max_total:
                        lane_state[b] = 1
                    if lane_state[b] != 0:
                        active[lane] = False
                n_stopped = 0
                for lane in range(w):
                    n_stopped += 0 if active[lane] else 1
                # Shrink the block when whole vectors' worth of lanes have stopped; its width stays a multiple
                # of LANES_PER_VECTOR (stopped lanes fill the rest) so that the lane loops have no scalar
                # remainder: measured 18 % less kernel time than the exact width.
                narrower = -(-(w - n_stopped) // LANES_PER_VECTOR) * LANES_PER_VECTOR
                if narrower < w:
                    # Live lanes to the front: each stopped lane among the first n_live trades places with
                    # a live lane from behind them. The pairs are listed first and then applied row by row
                    # in one pass over each array (a pass per pair would walk every row once per lane).
                    n_live = w - n_stopped
                    n_pairs = 0
                    back = w - 1
                    for lane in range(n_live):
                        if active[lane]:
                            continue
                        while not active[back]:
                            back -= 1
                        pair_a[n_pairs] = lane
                        pair_b[n_pairs] = back
                        n_pairs += 1
                        active[lane] = True
                        active[back] = False
                        back -= 1
                    for rows in (flow_b, head_b, resist_b, demand_b, fixed_b):
                        _swap_pairs(rows, pair_a, pair_b, n_pairs)
                    _swap_pairs(status_b, pair_a, pair_b, n_pairs)
                    _swap_pairs(cols_buf.reshape((1, block)), pair_a, pair_b, n_pairs)
                    w = narrower
            # Back to the batch, every lane of the block at once (cols_buf[:w0] holds them, permuted).
            cols0 = cols_buf[:w0]
            _scatter(flow_b, cols0, w0, 0, flow)
            _scatter(head_b, cols0, w0, 0, head[:nj])
            _scatter(status_b, cols0, w0, 0, status)
            _scatter(fixed_b, cols0, w0, 0, batch.node_outflow[nj:])


def workspace_size(n_links: int, n_nodes: int, n_junctions: int, n_edges: int, nslots: int, n_pumps: int,
                   block: int) -> int:
    """Floats of one worker's workspace in solve_blocks(): p, y, aii, f, aij, xflow, the factor's values,
    the substitution's work, and the block's flows, heads, powers, resistances, demands, fixed-grade
    outflows and pump speed powers, each [rows, block]."""
    rows = (6 * n_links + 4 * n_junctions + max(n_edges, 1) + 2 * n_nodes + nslots
            + max(n_nodes - n_junctions, 1) + max(n_pumps, 1))
    return rows * block
