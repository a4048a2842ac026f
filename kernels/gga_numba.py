"""One fused gradient-algorithm iteration for blocks of scenarios (the numba backend's fast path).

The same arithmetic, in the same order, as the reference path (hydraulics.coefficients, .assemble,
.status and .gga): coefficients, assembly, control valves, LDL^T solve, flow update, convergence test and
status checks, for one block of scenarios at a time so that its work arrays stay in cache. Powers with a
non-integer exponent come in precomputed by numpy (`q_pow`, `speed_pow`), because numpy's vectorised
pow is both faster and the one the reference path uses: equal inputs give equal bits.

Lane flags (per scenario): 0 running, 1 finished this call, 2 frozen earlier (skipped).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from parktwin.kernels.epanet_codes import LEAKAGE_QTOL
from parktwin.kernels.gga_laws import (ACTIVE, BIG, CBIG, CLOSED, CONST_HP, CVPIPE, FCV, HTOL, OPEN, PRV, PSV, PUMP,
                               QTOL, TEMPCLOSED, TINY, XFCV, XHEAD, XPRESSURE, _coefficients, _emitter,
                               _pipe_leak, _pipe_leak_target, _valve)
from parktwin.kernels.ldl_numba import _factor_block, _substitute_block


@nb.njit(cache=True)
def _assemble(net, flow, head, status, setting, emitter_flow, leak_flow, leak_ke, demand_flow,
              qexp, backflow, cols, w, p, y, aii, aij, f, xflow, leak_ptr, leak_node, favad):
    """matrixcoeffs() for the block: links, emitters, leaks, demands, then PRV/PSV/FCV in valve order.

    flow, head and status are the block's copies (lane-indexed); the rest are the batch's arrays, indexed
    by the scenario column cols[lane]."""
    nj = net.n_junctions
    start, end, edge_of, ctl, kind = net.start, net.end, net.edge_of, net.ctl_valves, net.kind
    km, el, ke = net.minor_loss, net.elevation, net.emitter_ke
    aii[:, :w] = 0.0
    aij[:, :w] = 0.0
    f[:, :w] = 0.0
    xflow[:, :w] = 0.0
    for k in range(start.shape[0]):
        n1, n2, e = start[k], end[k], edge_of[k]
        j1, j2 = n1 < nj, n2 < nj
        p_row, y_row, q_row = p[k], y[k], flow[k]
        x1, x2 = xflow[n1], xflow[n2]
        h1, h2 = head[n1], head[n2]
        a_row = aij[max(e, 0)]
        d1, d2 = aii[min(n1, nj - 1)], aii[min(n2, nj - 1)]
        f1, f2 = f[min(n1, nj - 1)], f[min(n2, nj - 1)]
        for lane in range(w):
            # Additions of exact zeros where P = 0 leave every sum unchanged, and keep the loop branch-free.
            pk = p_row[lane]
            on = 1.0 if pk != 0.0 else 0.0
            qk, yk = q_row[lane] * on, y_row[lane] * on
            x1[lane] -= qk
            x2[lane] += qk
            if e >= 0:
                a_row[lane] -= pk
            if j1:
                d1[lane] += pk
                f1[lane] += yk
            elif j2:
                f2[lane] += pk * h1[lane]
            if j2:
                d2[lane] += pk
                f2[lane] -= yk
            elif j1:
                f1[lane] += pk * h2[lane]
    for j in range(nj):
        if ke[j] > 0.0:
            for lane in range(w):
                b = cols[lane]
                hl, hg = _emitter(ke[j], qexp, emitter_flow[j, b], backflow)
                aii[j, lane] += 1.0 / hg
                f[j, lane] += (hl + el[j]) / hg
                xflow[j, lane] -= emitter_flow[j, b]
    for lane in range(w):
        b = cols[lane]
        for i in range(leak_ptr[b], leak_ptr[b + 1]):
            j = leak_node[i]
            q = leak_flow[j, b]
            hl, hg = _emitter(leak_ke[j, b], 2.0, q, False)
            aii[j, lane] += 1.0 / hg
            f[j, lane] += (hl + el[j]) / hg
            xflow[j, lane] += -q
    # Pipe leakage (leakage.c leakagecoeffs()), its junctions listed per scenario.
    fca, fcv, fqa, fqv, fpow = favad.cfa, favad.cva, favad.qfa, favad.qva, favad.va_pow
    fav_ptr, fav_node = favad.ptr, favad.node
    for lane in range(w):
        b = cols[lane]
        for i in range(fav_ptr[b], fav_ptr[b + 1]):
            j = fav_node[i]
            hfa, gfa = _pipe_leak(fqa[j, b], fca[j, b], 2.0, abs(fqa[j, b]))
            hva, gva = _pipe_leak(fqv[j, b], fcv[j, b], 2.0 / 3.0, fpow[j, b])
            if gfa > 0.0:
                aii[j, lane] += 1.0 / gfa
                f[j, lane] += (hfa + el[j]) / gfa
            if gva > 0.0:
                aii[j, lane] += 1.0 / gva
                f[j, lane] += (hva + el[j]) / gva
            xflow[j, lane] -= fqa[j, b] + fqv[j, b]
    for j in range(nj):
        for lane in range(w):
            xflow[j, lane] -= demand_flow[j, cols[lane]]
            f[j, lane] += xflow[j, lane]
    for i in range(ctl.shape[0]):
        k = ctl[i]
        n1, n2, e = start[k], end[k], edge_of[k]
        for lane in range(w):
            b = cols[lane]
            sv = setting[k, b]
            if np.isnan(sv):
                continue
            q = flow[k, lane]
            active = status[k, lane] == ACTIVE
            if kind[k] == FCV:
                if active:
                    xflow[n1, lane] -= sv
                    xflow[n2, lane] += sv
                    if n1 < nj:
                        f[n1, lane] -= sv
                    if n2 < nj:
                        f[n2, lane] += sv
                    pk, rhs = 1.0 / CBIG, 0.0
                    p[k, lane], y[k, lane] = pk, q - sv
                else:
                    pk, yv = _valve(q, status[k, lane], km[k])
                    rhs = yv - q
                    p[k, lane], y[k, lane] = pk, yv
            else:
                if active:
                    if kind[k] == PRV:
                        hset = el[n2] + sv
                        ya = q + xflow[n2, lane]
                        fix, other, xf = n2, n1, xflow[n2, lane]
                        spill = xf if xf < 0.0 else 0.0
                    else:
                        hset = el[n1] + sv
                        ya = q - xflow[n1, lane]
                        fix, other, xf = n1, n2, xflow[n1, lane]
                        spill = xf if xf > 0.0 else 0.0
                    if fix < nj:
                        f[fix, lane] += hset * CBIG
                        aii[fix, lane] += CBIG
                    if other < nj:
                        f[other, lane] += spill
                    p[k, lane], y[k, lane] = 0.0, ya
                    if kind[k] == PSV:
                        if n2 < nj:
                            aii[n2, lane] += 1.0 / CBIG
                        if e >= 0:
                            aij[e, lane] -= 1.0 / CBIG
                    continue
                pk, yv = _valve(q, status[k, lane], km[k])
                rhs = yv - q
                p[k, lane], y[k, lane] = pk, yv
            if e >= 0:
                aij[e, lane] -= pk
            if n1 < nj:
                aii[n1, lane] += pk
                f[n1, lane] += rhs
            if n2 < nj:
                aii[n2, lane] += pk
                f[n2, lane] -= rhs


@nb.njit(cache=True)
def _new_flows(net, flow, head, status, emitter_flow, leak_flow, leak_ke, qexp, backflow,
               relax, cols, w, p, y, live, node_outflow, accuracy, err, qsum, dqsum, leak_ptr, leak_node,
               favad, fav_ok):
    """newflows() for the live lanes: link, emitter and leak flow updates; err = relative change.
    flow, head and status are the block's copies (lane-indexed), as in _assemble.

    Links outermost and lanes innermost (contiguous memory); the per-lane sums still add link by link,
    in the reference path's order."""
    nj = net.n_junctions
    start, end, kind, pump_of, pump_type = net.start, net.end, net.kind, net.pump_of, net.pump_type
    el, ke = net.elevation, net.emitter_ke
    fav_ptr, fav_node = favad.ptr, favad.node
    n_nodes = node_outflow.shape[0]
    for lane in range(w):
        qsum[lane] = 0.0
        dqsum[lane] = 0.0
    for n in range(nj, n_nodes):
        out_row = node_outflow[n]
        for lane in range(w):
            if live[lane]:
                out_row[cols[lane]] = 0.0
    for k in range(start.shape[0]):
        n1, n2 = start[k], end[k]
        const_hp = kind[k] == PUMP and pump_type[pump_of[k]] == CONST_HP
        q_row, s_row, p_row, y_row = flow[k], status[k], p[k], y[k]
        h1_row, h2_row = head[n1], head[n2]
        fixed1, fixed2 = n1 >= nj, n2 >= nj
        o1, o2 = node_outflow[n1], node_outflow[n2]
        for lane in range(w):
            # Lanes that are not live have relax 0, so their flow is left as it is.
            b = cols[lane]
            dq = (y_row[lane] - p_row[lane] * (h1_row[lane] - h2_row[lane])) * relax[lane]
            if const_hp and dq > q_row[lane]:
                dq = q_row[lane] / 2.0
            qn = q_row[lane] - dq
            q_row[lane] = qn
            qsum[lane] += abs(qn)
            dqsum[lane] += abs(dq)
            if live[lane] and s_row[lane] > CLOSED:
                if fixed1:
                    o1[b] -= qn
                if fixed2:
                    o2[b] += qn
    for lane in range(w):
        if not live[lane]:
            continue
        b = cols[lane]
        rb = relax[lane]
        e_q = 0.0
        e_dq = 0.0
        for j in range(nj):
            if ke[j] > 0.0:
                q = emitter_flow[j, b]
                hl, hg = _emitter(ke[j], qexp, q, backflow)
                de = (hl - (head[j, lane] - el[j])) / hg * rb
                emitter_flow[j, b] = q - de
                e_q += abs(q - de)
                e_dq += abs(de)
        qs = qsum[lane] + e_q
        dqs = dqsum[lane] + e_dq
        for i in range(leak_ptr[b], leak_ptr[b + 1]):
            j = leak_node[i]
            q = leak_flow[j, b]
            hl, hg = _emitter(leak_ke[j, b], 2.0, q, False)
            dl = (hl - (head[j, lane] - el[j])) / hg * rb
            leak_flow[j, b] = q - dl
            qs += abs(q - dl)
            dqs += abs(dl)
        # pipe leakage: leakageflowchange() per junction, then leakagehasconverged() at the new heads
        fca, fcv, fqa, fqv, fpow = favad.cfa, favad.cva, favad.qfa, favad.qva, favad.va_pow
        ok = True
        for i in range(fav_ptr[b], fav_ptr[b + 1]):
            j = fav_node[i]
            pj = head[j, lane] - el[j]
            hfa, gfa = _pipe_leak(fqa[j, b], fca[j, b], 2.0, abs(fqa[j, b]))
            hva, gva = _pipe_leak(fqv[j, b], fcv[j, b], 2.0 / 3.0, fpow[j, b])
            dqfa = (hfa - pj) / gfa * rb if gfa > 0.0 else 0.0
            dqva = (hva - pj) / gva * rb if gva > 0.0 else 0.0
            fqa[j, b] -= dqfa
            fqv[j, b] -= dqva
            dq = dqfa + dqva
            if dq != 0.0:
                qs += abs(fqa[j, b] + fqv[j, b])
                dqs += abs(dq)
            qref = _pipe_leak_target(pj, fca[j, b], fcv[j, b])
            if abs(qref - (fqa[j, b] + fqv[j, b])) > LEAKAGE_QTOL:
                ok = False
        fav_ok[lane] = ok
        err[lane] = dqs / qs if qs > accuracy else dqs


@nb.njit(cache=True)
def _valve_status(net, flow, head, status, setting, cols, w, only, changed):
    """valvestatus(): PRVs and PSVs with a setting (flow, head, status: the block's copies)."""
    start, end, kind, prv_psv = net.start, net.end, net.kind, net.prv_psv
    km, el = net.minor_loss, net.elevation
    if not only[:w].any():
        return
    for i in range(prv_psv.shape[0]):
        k = prv_psv[i]
        n1, n2 = start[k], end[k]
        for lane in range(w):
            b = cols[lane]
            sv = setting[k, b]
            if not only[lane] or np.isnan(sv):
                continue
            s = status[k, lane]
            q = flow[k, lane]
            hml = km[k] * q * q
            h1, h2 = head[n1, lane], head[n2, lane]
            reverse = q < -QTOL
            new = s
            if kind[k] == PRV:
                hset = el[n2] + sv
                if s == ACTIVE:
                    new = CLOSED if reverse else (OPEN if h1 - hml < hset - HTOL else ACTIVE)
                elif s == OPEN:
                    new = CLOSED if reverse else (ACTIVE if h2 >= hset + HTOL else OPEN)
                elif s == CLOSED:
                    if h1 >= hset + HTOL and h2 < hset - HTOL:
                        new = ACTIVE
                    elif h1 < hset - HTOL and h1 > h2 + HTOL:
                        new = OPEN
                    else:
                        new = CLOSED
                elif s == XPRESSURE and reverse:
                    new = CLOSED
            else:
                hset = el[n1] + sv
                if s == ACTIVE:
                    new = CLOSED if reverse else (OPEN if h2 + hml > hset + HTOL else ACTIVE)
                elif s == OPEN:
                    new = CLOSED if reverse else (ACTIVE if h1 < hset - HTOL else OPEN)
                elif s == CLOSED:
                    if h2 > hset + HTOL and h1 > h2 + HTOL:
                        new = OPEN
                    elif h1 >= hset + HTOL and h1 > h2 + HTOL:
                        new = ACTIVE
                    else:
                        new = CLOSED
                elif s == XPRESSURE and reverse:
                    new = CLOSED
            if new != s:
                changed[lane] = True
                status[k, lane] = new


@nb.njit(cache=True)
def _link_status(net, flow, head, status, setting, cols, w, only, changed):
    """linkstatus(): check valves, pumps, FCVs, links into full or empty tanks (flow, head, status: the
    block's copies)."""
    start, end, kind, pump_of, pump_type = net.start, net.end, net.kind, net.pump_of, net.pump_type
    tank_of, status_links = net.tank_of, net.status_links
    km, pump_hmax = net.minor_loss, net.pump_hmax
    tank_hmin, tank_hmax, tank_area, tank_over = net.tank_hmin, net.tank_hmax, net.tank_area, net.tank_overflow
    if not only[:w].any():
        return
    # Only check valves, pumps, FCVs and links to tanks can change here; the caller lists them.
    for i in range(status_links.shape[0]):
        k = status_links[i]
        n1, n2 = start[k], end[k]
        kk = kind[k]
        for lane in range(w):
            if not only[lane]:
                continue
            b = cols[lane]
            old = status[k, lane]
            s = OPEN if (old == XHEAD or old == TEMPCLOSED) else old
            dh = head[n1, lane] - head[n2, lane]
            q = flow[k, lane]
            if kk == CVPIPE:
                if abs(dh) > HTOL:
                    s = CLOSED if dh < -HTOL else (CLOSED if q < -QTOL else OPEN)
                elif q < -QTOL:
                    s = CLOSED
            elif kk == PUMP:
                sv = setting[k, b]
                spd = 0.0 if np.isnan(sv) else sv
                if s >= OPEN and spd > 0.0:
                    pn = pump_of[k]
                    gain = -dh
                    if pump_type[pn] == CONST_HP:
                        s = TEMPCLOSED if q < TINY else (XHEAD if gain > BIG + HTOL else OPEN)
                    else:
                        s = XHEAD if gain > sv * sv * pump_hmax[pn] + HTOL else OPEN
            elif kk == FCV:
                sv = setting[k, b]
                if not np.isnan(sv):
                    to_x = dh < -HTOL or q < -QTOL
                    if to_x:
                        s = XFCV
                    elif old == XFCV and q >= sv:
                        s = ACTIVE
                    elif old == ACTIVE and dh / (q * q) < km[k]:
                        s = XFCV
                    else:
                        s = old
            for end_node, sign in ((n1, 1.0), (n2, -1.0)):
                t = tank_of[end_node]
                if t >= 0 and tank_area[t] != 0.0 and s > CLOSED:
                    qt = sign * q
                    h = head[end_node, lane]
                    if (h >= tank_hmax[t] and tank_over[t] == 0.0 and qt < 0.0) or (h <= tank_hmin[t] and qt > 0.0):
                        s = TEMPCLOSED
            if s != old:
                changed[lane] = True
            status[k, lane] = s


@nb.njit(cache=True, inline="always")
def _gather(batch_rows, cols, w, first_row, block_rows):
    """block_rows[first_row:, lane] = batch_rows[first_row:, cols[lane]] for the block's w lanes."""
    c0 = cols[0]
    if cols[w - 1] - c0 == w - 1:     # a run of consecutive scenarios (most blocks): a plain copy
        for i in range(first_row, batch_rows.shape[0]):
            source, target = batch_rows[i], block_rows[i]
            for lane in range(w):
                target[lane] = source[c0 + lane]
    else:
        for i in range(first_row, batch_rows.shape[0]):
            source, target = batch_rows[i], block_rows[i]
            for lane in range(w):
                target[lane] = source[cols[lane]]


@nb.njit(cache=True, inline="always")
def _scatter(block_rows, cols, w, stop_row, batch_rows):
    """batch_rows[:stop_row or all, cols[lane]] = block_rows[..., lane] (stop_row 0: every row)."""
    n = batch_rows.shape[0] if stop_row == 0 else stop_row
    for i in range(n):
        source, target = block_rows[i], batch_rows[i]
        for lane in range(w):
            target[cols[lane]] = source[lane]


@nb.njit(cache=True, inline="always")
def _scatter_lanes(block_rows, cols, w, stop_row, batch_rows, lanes):
    """_scatter() of the lanes where `lanes` is true."""
    for i in range(stop_row):
        source, target = block_rows[i], batch_rows[i]
        for lane in range(w):
            if lanes[lane]:
                target[cols[lane]] = source[lane]


@nb.njit(cache=True, parallel=True, nogil=True)
def iterate(net, plan, ctrl, batch, lanes, leaks, favad, live_cols, block, n_workers, workspace):
    """One hydsolve() iteration for every running lane (lanes.state 0, in live_cols); finished lanes get
    state 1. The arguments are the NamedTuples of kernels.gga_structs: the network (FusedNetwork), the
    factorisation plan (FactorPlan), EPANET's options (IterationControl), the batch's state (BatchArrays),
    the per-scenario counters (LaneArrays), the orifice leaks (LeakLists) and the pipe leakage
    (PipeLeakage, empty lists where nothing leaks that way).
    Lanes whose matrix fails get lanes.bad_node >= 0 and are left for the caller's badvalve() rescue.
    workspace: [>= n_workers, workspace_size(...)] float64, reused from call to call.
    """
    nj = net.n_junctions
    perm, edge_slot, col_ptr, row_idx = plan.perm, plan.edge_slot, plan.col_ptr, plan.row_idx
    op_ptr, op_target, op_a, op_b, op_pivot, nslots = (plan.op_ptr, plan.op_target, plan.op_a, plan.op_b,
                                                       plan.op_pivot, plan.nslots)
    accuracy, max_trials, check_freq = ctrl.accuracy, ctrl.max_trials, ctrl.check_frequency
    max_check, damp_limit, qexp = ctrl.max_check, ctrl.damp_limit, ctrl.emitter_exponent
    backflow = ctrl.emitter_backflow > 0.5
    flow, q_pow, speed_pow, head, status = batch.flow, batch.q_pow, batch.speed_pow, batch.head, batch.status
    setting, resist, emitter_flow, leak_flow = batch.setting, batch.resistance, batch.emitter_flow, batch.leak_flow
    leak_ke, demand_flow, node_outflow = batch.leak_ke, batch.demand_flow, batch.node_outflow
    lane_state, iters, next_check, relax = lanes.state, lanes.iters, lanes.next_check, lanes.relax
    relerr, converged, bad_node_out = lanes.relerr, lanes.converged, lanes.bad_node
    leak_ptr, leak_node = leaks.ptr, leaks.node
    n_links = flow.shape[0]
    n_nodes = head.shape[0]
    n_edges = edge_slot.shape[0]
    r_cols = resist.shape[1]
    n_live = live_cols.shape[0]
    n_blocks = (n_live + block - 1) // block
    for worker in nb.prange(n_workers):
        # Work arrays carved from the caller's per-worker workspace (workspace_size()): allocated once per
        # solver, because fresh megabytes per call page-fault on first touch on every iteration.
        ws = workspace[worker]
        o = 0
        p = ws[o: o + n_links * block].reshape((n_links, block))
        o += n_links * block
        y = ws[o: o + n_links * block].reshape((n_links, block))
        o += n_links * block
        aii = ws[o: o + nj * block].reshape((nj, block))
        o += nj * block
        f = ws[o: o + nj * block].reshape((nj, block))
        o += nj * block
        aij = ws[o: o + max(n_edges, 1) * block].reshape((max(n_edges, 1), block))
        o += max(n_edges, 1) * block
        xflow = ws[o: o + n_nodes * block].reshape((n_nodes, block))
        o += n_nodes * block
        values_buf = ws[o: o + nslots * block]
        o += nslots * block
        work_buf = ws[o: o + nj * block]
        o += nj * block
        flow_b = ws[o: o + n_links * block].reshape((n_links, block))
        o += n_links * block
        head_b = ws[o: o + n_nodes * block].reshape((n_nodes, block))
        first_buf = np.empty(block, dtype=np.int64)
        live = np.zeros(block, dtype=np.bool_)
        chk = np.zeros(block, dtype=np.bool_)
        vchanged = np.zeros(block, dtype=np.bool_)
        lchanged = np.zeros(block, dtype=np.bool_)
        err = np.zeros(block)
        rnow = np.zeros(block)
        qsum = np.zeros(block)
        dqsum = np.zeros(block)
        fav_ok = np.ones(block, dtype=np.bool_)
        # The block's flows, heads and statuses, copied in once per iteration: every stage then reads
        # contiguous lanes (SIMD) from a few hundred KiB that stay in cache, instead of gathering the same
        # scenario columns from the whole batch's rows (a page apart at 512 scenarios) four times over.
        status_b = np.empty((n_links, block), dtype=status.dtype)
        for blk in range(worker, n_blocks, n_workers):
            # Blocks are cut from the list of running scenarios, so finished ones cost nothing.
            cols = live_cols[blk * block: blk * block + block]
            w = cols.shape[0]
            any_live = False
            for lane in range(w):
                live[lane] = lane_state[cols[lane]] == 0
                any_live = any_live or live[lane]
            if not any_live:
                continue
            _gather(flow, cols, w, 0, flow_b)
            # Junction heads are not read before the solve writes them: only the fixed grades come in.
            _gather(head, cols, w, nj, head_b)
            _gather(status, cols, w, 0, status_b)
            _coefficients(net, flow_b, q_pow, speed_pow, status_b, setting, resist, r_cols, cols, w, p, y)
            _assemble(net, flow_b, head_b, status_b, setting, emitter_flow, leak_flow, leak_ke,
                      demand_flow, qexp, backflow, cols, w, p, y, aii, aij, f, xflow, leak_ptr, leak_node, favad)
            values = values_buf[:nslots * w].reshape((nslots, w))
            work = work_buf[:nj * w].reshape((nj, w))
            first = first_buf[:w]
            values[:, :] = 0.0
            for j in range(nj):
                for lane in range(w):
                    values[j, lane] = aii[perm[j], lane]
                    work[j, lane] = f[perm[j], lane]
            for e in range(n_edges):
                for lane in range(w):
                    values[edge_slot[e], lane] += aij[e, lane]
            _factor_block(col_ptr, op_ptr, op_target, op_a, op_b, op_pivot, values, first)
            _substitute_block(col_ptr, row_idx, values, work)
            for lane in range(w):
                b = cols[lane]
                bad_node_out[b] = -1
                if live[lane] and first[lane] < nj:
                    bad_node_out[b] = perm[first[lane]]
                    live[lane] = False
            for j in range(nj):
                row = head_b[perm[j]]
                for lane in range(w):
                    row[lane] = work[j, lane] if live[lane] else head[perm[j], cols[lane]]
            for lane in range(w):
                rnow[lane] = relax[cols[lane]] if live[lane] else 0.0
            _new_flows(net, flow_b, head_b, status_b, emitter_flow, leak_flow, leak_ke, qexp,
                       backflow, rnow, cols, w, p, y, live, node_outflow, accuracy, err, qsum, dqsum,
                       leak_ptr, leak_node, favad, fav_ok)
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
            status_moved = False
            for lane in range(w):
                status_moved = status_moved or vchanged[lane] or lchanged[lane]
                lchanged[lane] = False
            _link_status(net, flow_b, head_b, status_b, setting, cols, w, chk, lchanged)
            for lane in range(w):
                b = cols[lane]
                status_moved = status_moved or lchanged[lane]
                if chk[lane]:
                    next_check[b] += check_freq
            # Back to the batch: flows; statuses where one changed. Junction heads only of the scenarios
            # that stop here or run past TRIALS (where the caller may stop them): a running scenario's next
            # trial solves its heads afresh before reading them. Fixed-grade heads are inputs.
            _scatter(flow_b, cols, w, 0, flow)
            for lane in range(w):
                b = cols[lane]
                vchanged[lane] = lane_state[b] == 1 or iters[b] > max_trials
            _scatter_lanes(head_b, cols, w, nj, head, vchanged)
            if status_moved:
                _scatter(status_b, cols, w, 0, status)


def workspace_size(n_links: int, n_nodes: int, n_junctions: int, n_edges: int, nslots: int, block: int) -> int:
    """Floats of one worker's workspace in iterate(): p, y, aii, f, aij, xflow, the factor's values, the
    substitution's work and the block's flows and heads, each [rows, block]."""
    rows = 3 * n_links + 3 * n_junctions + max(n_edges, 1) + 2 * n_nodes + nslots
    return rows * block
