"""The stages of one gradient-algorithm iteration for a block of scenarios (the numba backend's fast path,
driven by kernels.gga_block).

The same arithmetic, in the same order, as the reference path (hydraulics.coefficients, .assemble,
.status and .gga): assembly, control valves, flow update, convergence test and status checks (the
coefficients are in kernels.gga_laws, the LDL^T in kernels.ldl_numba). Each stage works on the block's own
[row, lane] arrays, lane innermost, so that the hot loops read contiguous rows and LLVM vectorises them;
per-scenario inputs that only a few elements read (settings, emitters, leaks) stay in the batch's arrays,
indexed by the scenario column cols[lane]. error_model="numpy": a division by zero gives inf as in EPANET's
C, and no exception branch stops the vectorisation of a loop that divides.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from parktwin.kernels.epanet_codes import LEAKAGE_QTOL
from parktwin.kernels.gga_laws import (ACTIVE, BIG, CBIG, CLOSED, CONST_HP, CVPIPE, FCV, HTOL, OPEN, PRV, PSV, PUMP,
                               QTOL, TEMPCLOSED, TINY, XFCV, XHEAD, XPRESSURE, _coefficients, _emitter,
                               _pipe_leak, _pipe_leak_target, _valve)
from parktwin.kernels.ldl_numba import _factor_block, _substitute_block


@nb.njit(cache=True, error_model="numpy")
def _assemble(net, flow, head, status, setting, emitter_flow, leak_flow, leak_ke, demand,
              qexp, backflow, cols, w, p, y, aii, aij, f, xflow, leak_ptr, leak_node, favad):
    """matrixcoeffs() for the block: links, emitters, leaks, demands, then PRV/PSV/FCV in valve order.

    flow, head, status and demand are the block's own [row, lane] arrays; setting and the emitter, leak
    and pipe-leakage arrays are the batch's, indexed by the scenario column cols[lane]."""
    nj = net.n_junctions
    start, end, edge_of, ctl, kind = net.start, net.end, net.edge_of, net.ctl_valves, net.kind
    km, el, ke = net.minor_loss, net.elevation, net.emitter_ke
    for rows in (aii, aij, f, xflow):
        for i in range(rows.shape[0]):
            row = rows[i]
            for lane in range(w):
                row[lane] = 0.0
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
        x_row, d_row, f_row = xflow[j], demand[j], f[j]
        for lane in range(w):
            x_row[lane] -= d_row[lane]
            f_row[lane] += x_row[lane]
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


@nb.njit(cache=True, error_model="numpy")
def _new_flows(net, flow, head, status, emitter_flow, leak_flow, leak_ke, qexp, backflow,
               relax, cols, w, p, y, live, fixed_outflow, accuracy, err, qsum, dqsum, leak_ptr, leak_node,
               favad, fav_ok):
    """newflows() for the live lanes: link, emitter and leak flow updates; err = relative change.
    flow, head, status and fixed_outflow (the net outflow of each fixed-grade node, [node - Nj, lane]) are
    the block's own arrays, as in _assemble.

    Links outermost and lanes innermost (contiguous memory); the per-lane sums still add link by link,
    in the reference path's order."""
    nj = net.n_junctions
    start, end, kind, pump_of, pump_type = net.start, net.end, net.kind, net.pump_of, net.pump_type
    el, ke = net.elevation, net.emitter_ke
    fav_ptr, fav_node = favad.ptr, favad.node
    for lane in range(w):
        qsum[lane] = 0.0
        dqsum[lane] = 0.0
    for n in range(fixed_outflow.shape[0]):
        out_row = fixed_outflow[n]
        for lane in range(w):
            out_row[lane] = 0.0 if live[lane] else out_row[lane]
    for k in range(start.shape[0]):
        n1, n2 = start[k], end[k]
        const_hp = kind[k] == PUMP and pump_type[pump_of[k]] == CONST_HP
        q_row, s_row, p_row, y_row = flow[k], status[k], p[k], y[k]
        h1_row, h2_row = head[n1], head[n2]
        fixed1, fixed2 = n1 >= nj, n2 >= nj
        o1, o2 = fixed_outflow[max(n1 - nj, 0)], fixed_outflow[max(n2 - nj, 0)]
        for lane in range(w):
            dq = (y_row[lane] - p_row[lane] * (h1_row[lane] - h2_row[lane])) * relax[lane]
            if const_hp and dq > q_row[lane]:
                dq = q_row[lane] / 2.0
            qn = q_row[lane] - dq if live[lane] else q_row[lane]     # a stopped lane's stay as they are
            q_row[lane] = qn
            qsum[lane] += abs(qn)
            dqsum[lane] += abs(dq)
            into = live[lane] and s_row[lane] > CLOSED
            if fixed1:
                o1[lane] = o1[lane] - qn if into else o1[lane]
            if fixed2:
                o2[lane] = o2[lane] + qn if into else o2[lane]
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


@nb.njit(cache=True, error_model="numpy")
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


@nb.njit(cache=True, error_model="numpy")
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
