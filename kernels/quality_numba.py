"""Compiled kernels of EPANET 2.3's single-species water-quality engine (quality.c, qualroute.c,
qualreact.c), batched: every scenario has its own flows and therefore its own Lagrangian segments.

Segments live in one pool per scenario (`seg_v`, `seg_c`, `seg_prev` [B, cap]): a chain per link and
per tank (chain L + t), `first` the downstream end, `last` the upstream end, `seg_prev` pointing
upstream, exactly EPANET's singly linked lists with indices for pointers. A transport step adds at most
one segment per link and per tank, so the driver guarantees that much room before each step and grows
the pool between calls (`stalled` asks for it); no step is ever cut short mid-way.

Units are EPANET's internal ones (ft, cfs, mass per ft3, s); scenario rows are split across threads, and
the step's arrays (flows, statuses, demands, tank volumes, source strengths) come scenario-major
([rows, element]) so that each thread reads its own contiguous rows.
Segment pools and tank mixing live in kernels/quality_segments.py. Imported lazily (only by the quality
driver).
"""
from __future__ import annotations

import numba as nb
import numpy as np

# EPANET's codes; a status <= CLOSED (XHEAD, TEMPCLOSED too) is a closed link
from parktwin.kernels.epanet_codes import BIG, CLOSED, CVPIPE, PIPE, TINY
from parktwin.kernels.quality_segments import F_CTOL, MIX2, _addseg, _free, _mixtank, _reverse, _sgn

Q_STAGNANT = 0.005 / 448.831   # 0.005 gpm in cfs
KIND_CHEM, KIND_AGE, KIND_TRACE = 1, 2, 3
JUNCTION, TANK, RESERVOIR = 0, 1, 2
CONCEN, MASS, SETPOINT, FLOWPACED = 0, 1, 2, 3

# Integer and float parameters, packed so the kernels' signatures stay short.
P_KIND, P_TRACE_NODE, P_REACT, P_NJUNC = 0, 1, 2, 3
F_CLIMIT, F_BUCF, F_TUCF, F_BULK_ORDER, F_TANK_ORDER, F_WALL_ORDER, F_SC, F_DIFFUS, F_VISCOS, \
    F_UCF_ELEV = range(1, 11)          # after F_CTOL = 0 (quality_segments)


@nb.njit(cache=True)
def init_segments(rows, ip, node_kind, link_kind, start, end, length_ft, diam_ft, node_c0, tank_node, tank_mix,
                  tank_v1frac, tank_vmax, tank_v0, node_qual, tank_c, flow_dir, sorted_nodes, epanet_order,
                  seg_v, seg_c, seg_prev, first, last, pool):
    """initqual() + initsegs() for scenario rows (tank_v0 [Tk, len(rows)])."""
    n_links = start.shape[0]
    for j in range(rows.shape[0]):
        b = rows[j]
        pool[b, 0] = -1
        pool[b, 1] = 0
        pool[b, 2] = 0
        for n in range(node_kind.shape[0]):
            node_qual[b, n] = 0.0 if ip[P_KIND] == KIND_TRACE else node_c0[n]
            sorted_nodes[b, n] = epanet_order[n]
        if ip[P_KIND] == KIND_TRACE:
            node_qual[b, ip[P_TRACE_NODE]] = 100.0
        for t in range(tank_node.shape[0]):
            tank_c[b, t] = node_qual[b, tank_node[t]]
        for k in range(first.shape[1]):
            first[b, k] = -1
            last[b, k] = -1
        for k in range(n_links):
            flow_dir[b, k] = 0
            if link_kind[k] == PIPE:
                v = 0.785398 * length_ft[k] * diam_ft[k] * diam_ft[k]
                _addseg(b, k, v, node_qual[b, end[k]], seg_v, seg_c, seg_prev, first, last, pool)
        for t in range(tank_node.shape[0]):
            k = n_links + t
            c = node_c0[tank_node[t]]
            v = tank_v0[t, j]
            _addseg(b, k, v, c, seg_v, seg_c, seg_prev, first, last, pool)
            if tank_mix[t] == MIX2:
                v1 = max(0.0, v - tank_v1frac[t] * tank_vmax[t])
                seg_v[b, first[b, k]] = v1
                _addseg(b, k, v - v1, c, seg_v, seg_c, seg_prev, first, last, pool)


@nb.njit(cache=True)
def _piperate(k, q, status, fp, length_ft, diam_ft, kw):
    """piperate(): wall reaction coefficient of pipe k (1/s, or mass transfer ft/s for zero order)."""
    d = diam_ft[k]
    if fp[F_SC] == 0.0:
        if fp[F_WALL_ORDER] == 0.0:
            return BIG
        return kw[k] * (4.0 / d) / fp[F_UCF_ELEV]
    if status <= CLOSED:
        q = 0.0
    a = np.pi * d * d / 4.0
    u = abs(q) / a
    re = u * d / fp[F_VISCOS]
    if re < 1.0:
        sh = 2.0
    elif re >= 2300.0:
        sh = 0.0149 * re ** 0.88 * fp[F_SC] ** 0.333
    else:
        y = d / length_ft[k] * re * fp[F_SC]
        sh = 3.65 + 0.0668 * y / (1.0 + 0.04 * y ** 0.667)
    kf = sh * fp[F_DIFFUS] / d
    if fp[F_WALL_ORDER] == 0.0:
        return kf
    kwf = kw[k] / fp[F_UCF_ELEV]
    return (4.0 / d) * kwf * kf / (kf + abs(kwf))


@nb.njit(cache=True)
def _sortnodes(b, n_nodes, start, end, flow_dir, adj_ptr, adj_link, adj_node, epanet_order, sorted_nodes,
               indegree, stack):
    """sortnodes(): nodes from upstream to downstream (EPANET's order and tie-breaking)."""
    for n in range(n_nodes):
        indegree[n] = 0
    for k in range(start.shape[0]):
        d = flow_dir[b, k]
        if d > 0:
            indegree[end[k]] += 1
        elif d < 0:
            indegree[start[k]] += 1
    size = 0
    for i in range(n_nodes):
        n = epanet_order[i]
        if indegree[n] == 0:
            stack[size] = n
            size += 1
    numsorted = 0
    while numsorted < n_nodes:
        if size == 0:
            # selectnonstacknode(): a cycle; pick a neighbour of the most recently sorted nodes
            j = -1
            for i in range(numsorted - 1, -1, -1):
                m = sorted_nodes[b, i]
                for a in range(adj_ptr[m], adj_ptr[m + 1]):
                    if indegree[adj_node[a]] > 0:
                        j = adj_node[a]
                        break
                if j >= 0:
                    break
            if j < 0:
                for i in range(n_nodes):
                    if indegree[epanet_order[i]] > 0:
                        j = epanet_order[i]
                        break
            if j < 0:
                break
            indegree[j] = 0
            stack[size] = j
            size += 1
        size -= 1
        i = stack[size]
        sorted_nodes[b, numsorted] = i
        numsorted += 1
        for a in range(adj_ptr[i], adj_ptr[i + 1]):
            k = adj_link[a]
            d = flow_dir[b, k]
            if d == 0:
                continue
            n = end[k] if d > 0 else start[k]
            if n != i and indegree[n] > 0:
                indegree[n] -= 1
                if indegree[n] == 0:
                    stack[size] = n
                    size += 1
    return numsorted


@nb.njit(cache=True, parallel=True)
def begin_step(rows, ip, fp, flow, status, link_kind, start, end, length_ft, diam_ft, kw, rc, flow_dir,
               adj_ptr, adj_link, adj_node, epanet_order, sorted_nodes, seg_prev, first, last):
    """runqual() at a hydraulic step: wall rate coefficients, new flow directions (reversing the segments
    of links whose flow turned), and a new node order when any direction changed."""
    n_links = start.shape[0]
    n_nodes = sorted_nodes.shape[1]
    for j in nb.prange(rows.shape[0]):
        b = rows[j]
        if ip[P_REACT] != 0 and ip[P_KIND] != KIND_AGE:
            for k in range(n_links):
                r = 0.0
                if kw[k] != 0.0:
                    r = _piperate(k, flow[j, k], status[j, k], fp, length_ft, diam_ft, kw)
                rc[b, k] = r
        changed = False
        for k in range(n_links):
            q = 0.0 if status[j, k] <= CLOSED else flow[j, k]
            new = 1 if q > 0.0 else (-1 if q < 0.0 else 0)
            if abs(q) < Q_STAGNANT:
                new = 0
            old = flow_dir[b, k]
            if new * old < 0:
                _reverse(b, k, seg_prev, first, last)
            if new != old:
                changed = True
            flow_dir[b, k] = new
        if changed:
            indegree = np.empty(n_nodes, np.int64)
            stack = np.empty(n_nodes, np.int64)
            _sortnodes(b, n_nodes, start, end, flow_dir, adj_ptr, adj_link, adj_node, epanet_order,
                       sorted_nodes, indegree, stack)


@nb.njit(cache=True)
def _bulkrate(c, kb, order, climit):
    if order == 0.0:
        c = 1.0
    elif order < 0.0:
        c1 = climit + _sgn(kb) * c
        if abs(c1) < TINY:
            c1 = _sgn(c1) * TINY
        c = c / c1
    else:
        if climit == 0.0:
            c1 = c
        else:
            c1 = max(0.0, _sgn(kb) * (climit - c))
        if order == 1.0:
            c = c1
        elif order == 2.0:
            c = c1 * c
        else:
            c = c1 * max(0.0, c) ** (order - 1.0)
    if c < 0:
        c = 0.0
    return kb * c


@nb.njit(cache=True)
def _wallrate(c, d, kw, kf, fp):
    if kw == 0.0 or d == 0.0:
        return 0.0
    if fp[F_WALL_ORDER] == 0.0:
        kf = _sgn(kw) * c * kf
        kw = kw * fp[F_UCF_ELEV] * fp[F_UCF_ELEV]
        if abs(kf) < abs(kw):
            kw = kf
        return kw * 4.0 / d
    return c * kf


@nb.njit(cache=True)
def _react(b, dt, ip, fp, link_kind, diam_ft, kb, kw, rc, tank_kb, seg_v, seg_c, seg_prev, first, n_links):
    """reactpipes() + reacttanks()."""
    age = ip[P_KIND] == KIND_AGE
    for k in range(n_links):
        if link_kind[k] != PIPE:
            continue
        s = first[b, k]
        while s >= 0:
            c = seg_c[b, s]
            if age:
                cnew = c + dt / 3600.0
            else:
                rb = _bulkrate(c, kb[b, k], fp[F_BULK_ORDER], fp[F_CLIMIT]) * fp[F_BUCF]
                rw = _wallrate(c, diam_ft[k], kw[k], rc[b, k], fp)
                cnew = c + rb * dt + rw * dt
            seg_c[b, s] = max(0.0, cnew)
            s = seg_prev[b, s]
    for t in range(tank_kb.shape[0]):
        s = first[b, n_links + t]
        while s >= 0:
            c = seg_c[b, s]
            if age:
                cnew = c + dt / 3600.0
            else:
                cnew = c + _bulkrate(c, tank_kb[t], fp[F_TANK_ORDER], fp[F_CLIMIT]) * fp[F_TUCF] * dt
            seg_c[b, s] = max(0.0, cnew)
            s = seg_prev[b, s]


@nb.njit(cache=True)
def _noflowqual(b, n, start, end, flow_dir, adj_ptr, adj_link, seg_c, first, last):
    c = 0.0
    count = 0
    for a in range(adj_ptr[n], adj_ptr[n + 1]):
        k = adj_link[a]
        d = flow_dir[b, k]
        inflow = (end[k] == n and d >= 0) or (start[k] == n and d < 0)
        if inflow and first[b, k] >= 0:
            c += seg_c[b, first[b, k]]
            count += 1
        elif not inflow and last[b, k] >= 0:
            c += seg_c[b, last[b, k]]
            count += 1
    if count > 0:
        c = c / count
    return c


@nb.njit(cache=True)
def _transport(b, j, dt, ip, fp, flow, status, demand, vol_now, src_type, src_now, node_kind, tank_of_node,
               link_kind, start, end, diam_ft, kb, kw, rc, tank_kb, tank_mix, tank_v1frac, tank_vmax,
               adj_ptr, adj_link, node_qual, tank_c, flow_dir, sorted_nodes, seg_v, seg_c, seg_prev, first,
               last, pool):
    """transport(): one quality step of dt seconds for scenario row b (column j of the step's arrays)."""
    n_links = start.shape[0]
    kind = ip[P_KIND]
    if ip[P_REACT] != 0:
        _react(b, dt, ip, fp, link_kind, diam_ft, kb, kw, rc, tank_kb, seg_v, seg_c, seg_prev, first, n_links)
    for i in range(sorted_nodes.shape[1]):
        n = sorted_nodes[b, i]
        volin = 0.0
        massin = 0.0
        volout = 0.0
        for a in range(adj_ptr[n], adj_ptr[n + 1]):
            k = adj_link[a]
            down = start[k] if flow_dir[b, k] < 0 else end[k]
            q = 0.0 if status[j, k] <= CLOSED else abs(flow[j, k])
            if down == n:
                # evalnodeinflow(): the link's downstream segments enter the node
                v = q * dt
                while v > 0.0:
                    s = first[b, k]
                    if s < 0:
                        break
                    vseg = min(seg_v[b, s], v)
                    volin += vseg
                    massin += vseg * seg_c[b, s]
                    v -= vseg
                    if v >= 0.0 and vseg >= seg_v[b, s]:
                        first[b, k] = seg_prev[b, s]
                        if first[b, k] < 0:
                            last[b, k] = -1
                        _free(b, s, seg_prev, pool)
                    else:
                        seg_v[b, s] -= vseg
            else:
                volout += q
        nk = node_kind[n]
        if nk == JUNCTION:
            volout += max(0.0, demand[j, n])
        volout *= dt
        # findnodequal()
        if nk == JUNCTION:
            volin -= min(0.0, demand[j, n]) * dt
            if volin > 0.0:
                node_qual[b, n] = massin / volin
            elif ip[P_REACT] != 0:
                node_qual[b, n] = _noflowqual(b, n, start, end, flow_dir, adj_ptr, adj_link, seg_c, first, last)
        elif nk == TANK:
            t = tank_of_node[n]
            node_qual[b, n] = _mixtank(b, t, n_links + t, volin, massin, volin - volout, tank_mix, tank_v1frac,
                                       tank_vmax, vol_now[j, t], fp, tank_c, seg_v, seg_c, seg_prev, first, last,
                                       pool)
        out_c = node_qual[b, n]
        if kind == KIND_TRACE:
            if n == ip[P_TRACE_NODE]:
                node_qual[b, n] = 100.0
                out_c = 100.0
        elif kind == KIND_CHEM and src_type[b, n] >= 0 and src_now[j, n] != 0.0 and volout / dt > Q_STAGNANT:
            # findsourcequal(): src_now is the strength in this period (mass/s for MASS sources)
            c = src_now[j, n]
            st = src_type[b, n]
            if st == CONCEN:
                if nk == JUNCTION:
                    c = -c * demand[j, n] * dt / volout if demand[j, n] < 0.0 else 0.0
            elif st == MASS:
                c = c * dt / volout
            elif st == SETPOINT:
                c = max(c - node_qual[b, n], 0.0)
            if c != 0.0:
                if nk == JUNCTION:
                    node_qual[b, n] += c
                    out_c = node_qual[b, n]
                elif nk == TANK:
                    out_c = node_qual[b, n] + c
                else:
                    node_qual[b, n] = c
                    out_c = c
        # evalnodeoutflow(): the node's outflow enters the upstream end of its outflow links
        for a in range(adj_ptr[n], adj_ptr[n + 1]):
            k = adj_link[a]
            up = end[k] if flow_dir[b, k] < 0 else start[k]
            if up != n:
                continue
            v = (0.0 if status[j, k] <= CLOSED else abs(flow[j, k])) * dt
            if v == 0.0:
                continue
            s = last[b, k]
            if s >= 0 and abs(seg_c[b, s] - out_c) < fp[F_CTOL]:
                seg_c[b, s] = (seg_c[b, s] * seg_v[b, s] + out_c * v) / (seg_v[b, s] + v)
                seg_v[b, s] += v
            else:
                _addseg(b, k, v, out_c, seg_v, seg_c, seg_prev, first, last, pool)


@nb.njit(cache=True, parallel=True)
def advance(rows, hydstep, qstep, qdone, stalled, need, ip, fp, flow, status, demand, vol_now, src_type, src_now,
            node_kind, tank_of_node, link_kind, start, end, diam_ft, kb, kw, rc, tank_kb, tank_mix, tank_v1frac,
            tank_vmax, adj_ptr, adj_link, node_qual, tank_c, flow_dir, sorted_nodes, seg_v, seg_c, seg_prev,
            first, last, pool):
    """nextqual(): quality steps of at most qstep seconds until each row has covered hydstep[j] seconds
    (qdone[j] of them already). A row whose pool has less than `need` free segments stops and is flagged
    stalled; the driver grows the pool and calls again."""
    cap = seg_v.shape[1]
    for j in nb.prange(rows.shape[0]):
        b = rows[j]
        stalled[j] = False
        while qdone[j] < hydstep[j]:
            if cap - pool[b, 2] + pool[b, 1] < need:
                stalled[j] = True
                break
            dt = min(qstep, hydstep[j] - qdone[j])
            _transport(b, j, float(dt), ip, fp, flow, status, demand, vol_now, src_type, src_now, node_kind,
                       tank_of_node, link_kind, start, end, diam_ft, kb, kw, rc, tank_kb, tank_mix, tank_v1frac,
                       tank_vmax, adj_ptr, adj_link, node_qual, tank_c, flow_dir, sorted_nodes, seg_v, seg_c,
                       seg_prev, first, last, pool)
            qdone[j] += dt


@nb.njit(cache=True, parallel=True)
def link_quality(rows, start, end, node_qual, seg_v, seg_c, seg_prev, first, out):
    """avgqual(): each link's volume-weighted mean quality (its end nodes' mean when it holds no water)."""
    for j in nb.prange(rows.shape[0]):
        b = rows[j]
        for k in range(start.shape[0]):
            vsum = 0.0
            msum = 0.0
            s = first[b, k]
            while s >= 0:
                vsum += seg_v[b, s]
                msum += seg_c[b, s] * seg_v[b, s]
                s = seg_prev[b, s]
            if vsum > 0.0:
                out[j, k] = msum / vsum
            else:
                out[j, k] = (node_qual[b, start[k]] + node_qual[b, end[k]]) / 2.0
