"""One whole gradient-algorithm iteration on the GPU: one thread per scenario (numba's CUDA target).

Each thread walks its own scenario through hydsolve()'s iteration, in the order of the CPU fast path
(kernels.gga_numba): coefficients, assembly (links, emitters, leaks, EPANET 2.3's pipe leakage, demands,
PRV/PSV/FCV), the numeric
LDL^T over the network's shared symbolic plan and both substitutions, the flow update with relaxation,
the convergence test, the status checks (PRV/PSV, check valves, pumps, FCVs, full/empty tanks) and
EPANET's badvalve() rescue when a pivot fails. Every array is [slot, B] with the scenario index fastest,
so the threads of a warp touch consecutive addresses. FP64 throughout: the CBIG penalties need it.

The same kernel runs on CuPy arrays on a GPU and, under NUMBA_ENABLE_CUDASIM=1, on NumPy arrays on the
CPU (the CI path). Lane states: 0 running, 1 finished. Imported lazily (hydraulics.device).
"""
from __future__ import annotations

import math

from numba import cuda

from parktwin.kernels.epanet_codes import LEAKAGE_QTOL
from parktwin.kernels.ldl_xp import PIVOT_ROUNDOFF
from parktwin.kernels.cuda_laws import (emitter_law, link_law, pipe_leak_law, pipe_leak_target, pump_status,
                                        safe_pow, tank_block, valve_law)
from parktwin.kernels.gga_laws import (ACTIVE, CBIG, CLOSED, CONST_HP, CVPIPE, FCV, HTOL, OPEN, PRV, PSV, PUMP,
                                       QTOL, TEMPCLOSED, XFCV, XHEAD, XPRESSURE)

# Indices into the kernel's `ctrl` vector (float64): one small array instead of ten scalar parameters.
# C_FAVAD: 1 when the state carries EPANET 2.3's pipe leakage (the fav_* arrays are [Nj, B]; else [1, 1] unread).
C_HEXP, C_ACCURACY, C_MAX_TRIALS, C_CHECK_FREQ, C_MAX_CHECK, C_MAX_TOTAL, C_DAMP, C_QEXP, C_BACKFLOW, C_FAVAD = range(10)
N_CTRL = 10
# Rows of the packed per-link int table `link_i` and float table `link_f`, per-pump and per-tank tables.
LI_START, LI_END, LI_KIND, LI_EDGE, LI_PUMP = range(5)
LF_KM, LF_DIAM4 = range(2)
PI_TYPE, PI_CURVE = range(2)
PF_H0, PF_R, PF_N, PF_HMAX = range(4)
TF_HMIN, TF_HMAX, TF_AREA, TF_OVERFLOW = range(4)


@cuda.jit(device=True, inline=True)
def _favad_pair(j, b, fav_cfa, fav_cva, fav_qfa, fav_qva):
    """(hfa, gfa, hva, gva) of junction j's fixed- and variable-area pipe leaks, as gga_numba takes them:
    the variable-area power |qva|^(2/3 - 1) from the flow at the iteration's start."""
    qa, qv, cv = fav_qfa[j, b], fav_qva[j, b], fav_cva[j, b]
    vpow = safe_pow(abs(qv), 2.0 / 3.0 - 1.0) if cv != 0.0 else 0.0
    hfa, gfa = pipe_leak_law(qa, fav_cfa[j, b], 2.0, abs(qa))
    hva, gva = pipe_leak_law(qv, cv, 2.0 / 3.0, vpow)
    return hfa, gfa, hva, gva


@cuda.jit(device=True)
def _assemble(b, nj, link_i, link_f, elev, ke, pump_i, pump_f, cx, cy, c_off, visc_d, dw, ctl, hexp, qexp,
              backflow, flow, head, status, setting, resist, r_step, rel_rough, e_step, emitter_flow, leak_flow,
              leak_ke, demand_flow, p, y, aii, aij, f, xflow, favad, fav_cfa, fav_cva, fav_qfa, fav_qva):
    """headlosscoeffs() and matrixcoeffs() for scenario b."""
    n_links = link_i.shape[1]
    for j in range(nj):
        aii[j, b] = 0.0
        f[j, b] = 0.0
    for e in range(aij.shape[0]):
        aij[e, b] = 0.0
    for n in range(xflow.shape[0]):
        xflow[n, b] = 0.0
    for k in range(n_links):
        pk, yk = link_law(k, b, link_i[LI_KIND], link_i[LI_PUMP], pump_i[PI_TYPE], pump_i[PI_CURVE],
                          link_f[LF_KM], link_f[LF_DIAM4], hexp, pump_f[PF_H0], pump_f[PF_R], pump_f[PF_N],
                          cx, cy, c_off, flow, status, setting, resist, r_step, rel_rough, e_step, visc_d, dw)
        p[k, b] = pk
        y[k, b] = yk
    for k in range(n_links):
        n1, n2, e = link_i[LI_START, k], link_i[LI_END, k], link_i[LI_EDGE, k]
        pk = p[k, b]
        on = 1.0 if pk != 0.0 else 0.0
        qk = flow[k, b] * on
        yk = y[k, b] * on
        xflow[n1, b] -= qk
        xflow[n2, b] += qk
        if e >= 0:
            aij[e, b] -= pk
        j1, j2 = n1 < nj, n2 < nj
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
    for j in range(nj):
        if ke[j] > 0.0:
            hl, hg = emitter_law(ke[j], qexp, emitter_flow[j, b], backflow)
            aii[j, b] += 1.0 / hg
            f[j, b] += (hl + elev[j]) / hg
            xflow[j, b] -= emitter_flow[j, b]
    for j in range(nj):
        if leak_ke[j, b] != 0.0:
            q = leak_flow[j, b]
            hl, hg = emitter_law(leak_ke[j, b], 2.0, q, False)
            aii[j, b] += 1.0 / hg
            f[j, b] += (hl + elev[j]) / hg
            xflow[j, b] += -q
    if favad:
        # Pipe leakage (leakage.c leakagecoeffs()), junction ascending as in gga_numba's per-scenario list.
        for j in range(nj):
            if fav_cfa[j, b] == 0.0 and fav_cva[j, b] == 0.0:
                continue
            hfa, gfa, hva, gva = _favad_pair(j, b, fav_cfa, fav_cva, fav_qfa, fav_qva)
            if gfa > 0.0:
                aii[j, b] += 1.0 / gfa
                f[j, b] += (hfa + elev[j]) / gfa
            if gva > 0.0:
                aii[j, b] += 1.0 / gva
                f[j, b] += (hva + elev[j]) / gva
            xflow[j, b] -= fav_qfa[j, b] + fav_qva[j, b]
    for j in range(nj):
        xflow[j, b] -= demand_flow[j, b]
        f[j, b] += xflow[j, b]
    _control_valves(b, nj, link_i, link_f, elev, ctl, flow, status, setting, p, y, aii, aij, f, xflow)


@cuda.jit(device=True)
def _control_valves(b, nj, link_i, link_f, elev, ctl, flow, status, setting, p, y, aii, aij, f, xflow):
    """PRV/PSV/FCV with a setting, in valve order, after the other terms (EPANET's valvecoeffs())."""
    for i in range(ctl.shape[0]):
        k = ctl[i]
        n1, n2, e, kk = link_i[LI_START, k], link_i[LI_END, k], link_i[LI_EDGE, k], link_i[LI_KIND, k]
        sv = setting[k, b]
        if math.isnan(sv):
            continue
        q = flow[k, b]
        active = status[k, b] == ACTIVE
        if kk == FCV:
            if active:
                xflow[n1, b] -= sv
                xflow[n2, b] += sv
                if n1 < nj:
                    f[n1, b] -= sv
                if n2 < nj:
                    f[n2, b] += sv
                pk, rhs = 1.0 / CBIG, 0.0
                p[k, b] = pk
                y[k, b] = q - sv
            else:
                pk, yv = valve_law(q, status[k, b], link_f[LF_KM, k])
                rhs = yv - q
                p[k, b] = pk
                y[k, b] = yv
        else:
            if active:
                if kk == PRV:
                    hset = elev[n2] + sv
                    ya = q + xflow[n2, b]
                    fix, other, xf = n2, n1, xflow[n2, b]
                    spill = xf if xf < 0.0 else 0.0
                else:
                    hset = elev[n1] + sv
                    ya = q - xflow[n1, b]
                    fix, other, xf = n1, n2, xflow[n1, b]
                    spill = xf if xf > 0.0 else 0.0
                if fix < nj:
                    f[fix, b] += hset * CBIG
                    aii[fix, b] += CBIG
                if other < nj:
                    f[other, b] += spill
                p[k, b] = 0.0
                y[k, b] = ya
                if kk == PSV:
                    if n2 < nj:
                        aii[n2, b] += 1.0 / CBIG
                    if e >= 0:
                        aij[e, b] -= 1.0 / CBIG
                continue
            pk, yv = valve_law(q, status[k, b], link_f[LF_KM, k])
            rhs = yv - q
            p[k, b] = pk
            y[k, b] = yv
        if e >= 0:
            aij[e, b] -= pk
        if n1 < nj:
            aii[n1, b] += pk
            f[n1, b] += rhs
        if n2 < nj:
            aii[n2, b] += pk
            f[n2, b] -= rhs


@cuda.jit(device=True)
def _factor_solve(b, nj, perm, edge_slot, col_ptr, row_idx, op_ptr, op_target, op_a, op_b, op_pivot,
                  aii, aij, f, values, work):
    """Numeric LDL^T over the shared plan, then both substitutions; returns the first bad pivot (nj: none)."""
    for s in range(nj, values.shape[0]):
        values[s, b] = 0.0
    for j in range(nj):
        values[j, b] = aii[perm[j], b]
        work[j, b] = f[perm[j], b]
    for e in range(edge_slot.shape[0]):
        values[edge_slot[e], b] += aij[e, b]
    first = nj
    for j in range(nj):
        floor = values[j, b] * PIVOT_ROUNDOFF
        for op in range(op_ptr[j], op_ptr[j + 1]):
            values[op_target[op], b] -= values[op_a[op], b] * values[op_b[op], b] * values[op_pivot[op], b]
        d = values[j, b]
        if abs(d) <= floor:
            d = floor
            values[j, b] = d
        if not (d > 0.0) or d == math.inf:
            if first == nj:
                first = j
            values[j, b] = 1.0
        d = values[j, b]
        for q in range(col_ptr[j], col_ptr[j + 1]):
            values[nj + q, b] /= d
    if first < nj:
        return first
    for j in range(nj):
        yj = work[j, b]
        for q in range(col_ptr[j], col_ptr[j + 1]):
            work[row_idx[q], b] -= values[nj + q, b] * yj
    for j in range(nj):
        work[j, b] /= values[j, b]
    for j in range(nj - 1, -1, -1):
        xj = work[j, b]
        for q in range(col_ptr[j], col_ptr[j + 1]):
            xj -= values[nj + q, b] * work[row_idx[q], b]
        work[j, b] = xj
    return first


@cuda.jit(device=True)
def _new_flows(b, nj, link_i, pump_i, elev, ke, qexp, backflow, accuracy, rb, flow, head, status,
               emitter_flow, leak_flow, leak_ke, node_outflow, p, y, favad, fav_cfa, fav_cva, fav_qfa, fav_qva):
    """newflows(): link, emitter, leak and pipe-leakage flow updates; returns the relative flow change and
    whether the pipe leakage has converged (leakagehasconverged(); True without pipe leakage)."""
    for n in range(nj, node_outflow.shape[0]):
        node_outflow[n, b] = 0.0
    qsum = 0.0
    dqsum = 0.0
    for k in range(link_i.shape[1]):
        n1, n2 = link_i[LI_START, k], link_i[LI_END, k]
        const_hp = link_i[LI_KIND, k] == PUMP and pump_i[PI_TYPE, link_i[LI_PUMP, k]] == CONST_HP
        q = flow[k, b]
        dq = (y[k, b] - p[k, b] * (head[n1, b] - head[n2, b])) * rb
        if const_hp and dq > q:
            dq = q / 2.0
        qn = q - dq
        flow[k, b] = qn
        qsum += abs(qn)
        dqsum += abs(dq)
        if status[k, b] > CLOSED:
            if n1 >= nj:
                node_outflow[n1, b] -= qn
            if n2 >= nj:
                node_outflow[n2, b] += qn
    e_q = 0.0
    e_dq = 0.0
    for j in range(nj):
        if ke[j] > 0.0:
            q = emitter_flow[j, b]
            hl, hg = emitter_law(ke[j], qexp, q, backflow)
            de = (hl - (head[j, b] - elev[j])) / hg * rb
            emitter_flow[j, b] = q - de
            e_q += abs(q - de)
            e_dq += abs(de)
    qs = qsum + e_q
    dqs = dqsum + e_dq
    for j in range(nj):
        if leak_ke[j, b] != 0.0:
            q = leak_flow[j, b]
            hl, hg = emitter_law(leak_ke[j, b], 2.0, q, False)
            dl = (hl - (head[j, b] - elev[j])) / hg * rb
            leak_flow[j, b] = q - dl
            qs += abs(q - dl)
            dqs += abs(dl)
    ok = True
    if favad:
        # leakageflowchange() per junction, then leakagehasconverged() at the new heads
        for j in range(nj):
            if fav_cfa[j, b] == 0.0 and fav_cva[j, b] == 0.0:
                continue
            pj = head[j, b] - elev[j]
            hfa, gfa, hva, gva = _favad_pair(j, b, fav_cfa, fav_cva, fav_qfa, fav_qva)
            dqfa = (hfa - pj) / gfa * rb if gfa > 0.0 else 0.0
            dqva = (hva - pj) / gva * rb if gva > 0.0 else 0.0
            fav_qfa[j, b] -= dqfa
            fav_qva[j, b] -= dqva
            dq = dqfa + dqva
            if dq != 0.0:
                qs += abs(fav_qfa[j, b] + fav_qva[j, b])
                dqs += abs(dq)
            qref = pipe_leak_target(pj, fav_cfa[j, b], fav_cva[j, b])
            if abs(qref - (fav_qfa[j, b] + fav_qva[j, b])) > LEAKAGE_QTOL:
                ok = False
    return (dqs / qs if qs > accuracy else dqs), ok


@cuda.jit(device=True)
def _valve_status(b, link_i, link_f, elev, prv_psv, flow, head, status, setting):
    """valvestatus(): PRVs and PSVs with a setting; returns whether a status changed."""
    changed = False
    for i in range(prv_psv.shape[0]):
        k = prv_psv[i]
        sv = setting[k, b]
        if math.isnan(sv):
            continue
        n1, n2 = link_i[LI_START, k], link_i[LI_END, k]
        s = status[k, b]
        q = flow[k, b]
        hml = link_f[LF_KM, k] * q * q
        h1, h2 = head[n1, b], head[n2, b]
        reverse = q < -QTOL
        new = s
        if link_i[LI_KIND, k] == PRV:
            hset = elev[n2] + sv
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
            hset = elev[n1] + sv
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
            changed = True
            status[k, b] = new
    return changed


@cuda.jit(device=True)
def _link_status(b, link_i, link_f, pump_i, pump_f, tank_of, tank_f, status_links, flow, head, status, setting):
    """linkstatus(): check valves, pumps, FCVs, links into full or empty tanks; returns whether any changed."""
    changed = False
    for i in range(status_links.shape[0]):
        k = status_links[i]
        n1, n2, kk = link_i[LI_START, k], link_i[LI_END, k], link_i[LI_KIND, k]
        old = status[k, b]
        s = OPEN if (old == XHEAD or old == TEMPCLOSED) else old
        dh = head[n1, b] - head[n2, b]
        q = flow[k, b]
        if kk == CVPIPE:
            if abs(dh) > HTOL:
                s = CLOSED if dh < -HTOL else (CLOSED if q < -QTOL else OPEN)
            elif q < -QTOL:
                s = CLOSED
        elif kk == PUMP:
            sv = setting[k, b]
            spd = 0.0 if math.isnan(sv) else sv
            if s >= OPEN and spd > 0.0:
                pn = link_i[LI_PUMP, k]
                s = pump_status(s, -dh, q, sv, pump_i[PI_TYPE, pn], pump_f[PF_HMAX, pn])
        elif kk == FCV:
            sv = setting[k, b]
            if not math.isnan(sv):
                if dh < -HTOL or q < -QTOL:
                    s = XFCV
                elif old == XFCV and q >= sv:
                    s = ACTIVE
                elif old == ACTIVE and dh / (q * q) < link_f[LF_KM, k]:
                    s = XFCV
                else:
                    s = old
        t = tank_of[n1]
        if t >= 0:
            s = tank_block(s, q, head[n1, b], tank_f[TF_HMIN, t], tank_f[TF_HMAX, t], tank_f[TF_AREA, t],
                           tank_f[TF_OVERFLOW, t])
        t = tank_of[n2]
        if t >= 0:
            s = tank_block(s, -q, head[n2, b], tank_f[TF_HMIN, t], tank_f[TF_HMAX, t], tank_f[TF_AREA, t],
                           tank_f[TF_OVERFLOW, t])
        if s != old:
            changed = True
        status[k, b] = s
    return changed


@cuda.jit(device=True)
def _rescue(b, node, link_i, valve_rows, status):
    """badvalve(): the first valve at the failing node, if an active PRV/PSV/FCV, is fixed; True if so."""
    for i in range(valve_rows.shape[0]):
        k = valve_rows[i]
        if node != link_i[LI_START, k] and node != link_i[LI_END, k]:
            continue
        kk = link_i[LI_KIND, k]
        if (kk == PRV or kk == PSV or kk == FCV) and status[k, b] == ACTIVE:
            status[k, b] = XFCV if kk == FCV else XPRESSURE
            return True
        return False
    return False


@cuda.jit
def iterate(nj, ctrl, link_i, link_f, elev, ke, pump_i, pump_f, tank_of, tank_f, cx, cy, c_off, visc_d, dw,
            ctl, status_links, prv_psv, valve_rows,
            perm, edge_slot, col_ptr, row_idx, op_ptr, op_target, op_a, op_b, op_pivot,
            flow, head, status, setting, resist, rel_rough, emitter_flow, leak_flow, leak_ke, demand_flow,
            node_outflow, fav_cfa, fav_cva, fav_qfa, fav_qva,
            lane_state, iters, next_check, relax, relerr, converged, failed,
            p, y, aii, aij, f, xflow, values, work):
    """One hydsolve() iteration of every running scenario (thread b = scenario b)."""
    b = cuda.grid(1)
    if b >= flow.shape[1] or lane_state[b] != 0:
        return
    max_trials, max_total = ctrl[C_MAX_TRIALS], ctrl[C_MAX_TOTAL]
    if iters[b] > max_total:
        lane_state[b] = 1
        return
    hexp, accuracy, qexp = ctrl[C_HEXP], ctrl[C_ACCURACY], ctrl[C_QEXP]
    backflow = ctrl[C_BACKFLOW] > 0.5
    favad = ctrl[C_FAVAD] > 0.5
    r_step = 1 if resist.shape[1] > 1 else 0     # [L, 1]: shared by every scenario
    e_step = 1 if rel_rough.shape[1] > 1 else 0
    _assemble(b, nj, link_i, link_f, elev, ke, pump_i, pump_f, cx, cy, c_off, visc_d, dw, ctl, hexp, qexp,
              backflow, flow, head, status, setting, resist, r_step, rel_rough, e_step, emitter_flow, leak_flow,
              leak_ke, demand_flow, p, y, aii, aij, f, xflow, favad, fav_cfa, fav_cva, fav_qfa, fav_qva)
    first = _factor_solve(b, nj, perm, edge_slot, col_ptr, row_idx, op_ptr, op_target, op_a, op_b, op_pivot,
                          aii, aij, f, values, work)
    if first < nj:
        # Retried at the next launch without counting an iteration, as EPANET's badvalve() does.
        if not _rescue(b, perm[first], link_i, valve_rows, status):
            failed[b] = 1
            lane_state[b] = 1
        return
    for j in range(nj):
        head[perm[j], b] = work[j, b]
    err, fav_ok = _new_flows(b, nj, link_i, pump_i, elev, ke, qexp, backflow, accuracy, relax[b], flow, head,
                             status, emitter_flow, leak_flow, leak_ke, node_outflow, p, y, favad, fav_cfa, fav_cva,
                             fav_qfa, fav_qva)
    relerr[b] = err
    relax[b] = 1.0
    damp_limit = ctrl[C_DAMP]
    check = True
    if damp_limit > 0.0:
        check = err <= damp_limit
        if check:
            relax[b] = 0.6
    vchanged = False
    if check:
        vchanged = _valve_status(b, link_i, link_f, elev, prv_psv, flow, head, status, setting)
    conv = err <= accuracy and fav_ok
    it = iters[b]
    check = conv and not (it > max_trials)
    lchanged = False
    if check:
        lchanged = _link_status(b, link_i, link_f, pump_i, pump_f, tank_of, tank_f, status_links, flow, head,
                                status, setting)
    stop = conv and it > max_trials
    if check:
        if not (vchanged or lchanged):
            stop = True
        else:
            next_check[b] = it + int(ctrl[C_CHECK_FREQ])
    converged[b] = 1 if conv else 0
    periodic = (not conv) and it <= ctrl[C_MAX_CHECK] and it == next_check[b]
    if stop:
        lane_state[b] = 1
    else:
        iters[b] = it + 1
        if it + 1 > max_total:
            lane_state[b] = 1
    if periodic:
        _link_status(b, link_i, link_f, pump_i, pump_f, tank_of, tank_f, status_links, flow, head, status,
                     setting)
        next_check[b] += int(ctrl[C_CHECK_FREQ])
