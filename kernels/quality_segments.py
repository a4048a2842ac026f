"""Segment pools of the batched water-quality engine (kernels/quality_numba.py): EPANET's linked lists of
water segments with indices for pointers, and the tank mixing models that work on them (qualroute.c
addseg/reversesegs, qualreact.c tankmix1..4).

A scenario's pool is a row of `seg_v`, `seg_c`, `seg_prev` [B, cap]; chain k (a link, or L + t for tank t)
runs from `first[b, k]` (downstream) through `seg_prev` to `last[b, k]` (upstream); `pool[b]` holds the
free-list head, the free count and the number of slots ever used.
"""
from __future__ import annotations

import numba as nb

MIX1, MIX2, FIFO, LIFO = 0, 1, 2, 3
F_CTOL = 0      # index of the quality tolerance in the kernels' float parameters


@nb.njit(cache=True)
def _sgn(x):
    return -1.0 if x < 0.0 else 1.0


@nb.njit(cache=True)
def _addseg(b, k, v, c, seg_v, seg_c, seg_prev, first, last, pool):
    """addseg(): a new segment at the upstream end of chain k. pool[b] = (free head, free count, top)."""
    s = pool[b, 0]
    if s >= 0:
        pool[b, 0] = seg_prev[b, s]
        pool[b, 1] -= 1
    else:
        s = pool[b, 2]
        pool[b, 2] += 1
    seg_v[b, s] = v
    seg_c[b, s] = c
    seg_prev[b, s] = -1
    if first[b, k] < 0:
        first[b, k] = s
    if last[b, k] >= 0:
        seg_prev[b, last[b, k]] = s
    last[b, k] = s


@nb.njit(cache=True)
def _free(b, s, seg_prev, pool):
    seg_prev[b, s] = pool[b, 0]
    pool[b, 0] = s
    pool[b, 1] += 1


@nb.njit(cache=True)
def _reverse(b, k, seg_prev, first, last):
    s = first[b, k]
    first[b, k] = last[b, k]
    last[b, k] = s
    p = -1
    while s >= 0:
        nxt = seg_prev[b, s]
        seg_prev[b, s] = p
        p = s
        s = nxt


@nb.njit(cache=True)
def _take_out(b, k, vout, seg_v, seg_c, seg_prev, first, last, pool, keep_last):
    """Withdraws vout from the downstream end of chain k; returns (volume, mass) taken. keep_last: a tank
    chain, whose last segment gives whatever is asked and is never freed (tankmix3/4)."""
    vsum = 0.0
    wsum = 0.0
    while vout > 0.0:
        s = first[b, k]
        if s < 0:
            break
        vseg = min(seg_v[b, s], vout)
        if keep_last and s == last[b, k]:
            vseg = vout
        vsum += vseg
        wsum += seg_c[b, s] * vseg
        vout -= vseg
        if vout >= 0.0 and vseg >= seg_v[b, s]:
            if keep_last:
                if seg_prev[b, s] >= 0:
                    first[b, k] = seg_prev[b, s]
                    _free(b, s, seg_prev, pool)
            else:
                first[b, k] = seg_prev[b, s]
                if first[b, k] < 0:
                    last[b, k] = -1
                _free(b, s, seg_prev, pool)
        else:
            seg_v[b, s] -= vseg
    return vsum, wsum


@nb.njit(cache=True)
def _mixtank(b, t, k, vin, win, vnet, tank_mix, tank_v1frac, tank_vmax, vol_now, fp, tank_c,
             seg_v, seg_c, seg_prev, first, last, pool):
    """mixtank(): the tank's new outflow quality under its mixing model (tankmix1..4)."""
    ctol = fp[F_CTOL]
    vmax = tank_vmax[t]
    model = tank_mix[t]
    if model == MIX1:
        s = first[b, k]
        if s >= 0:
            vnew = seg_v[b, s] + vin
            if vnew > 0.0:
                seg_c[b, s] = (seg_c[b, s] * seg_v[b, s] + win) / vnew
            seg_v[b, s] = max(0.0, seg_v[b, s] + vnet)
            tank_c[b, t] = seg_c[b, s]
            if seg_v[b, s] > vmax:
                seg_v[b, s] = vmax
    elif model == MIX2:
        mz = last[b, k]
        sz = first[b, k]
        if mz < 0 or sz < 0:
            return tank_c[b, t]
        vmz = tank_v1frac[t] * vmax
        vt = 0.0
        if vnet > 0.0:
            vt = max(0.0, seg_v[b, mz] + vnet - vmz)
            if vin > 0.0:
                seg_c[b, mz] = (seg_c[b, mz] * seg_v[b, mz] + win) / (seg_v[b, mz] + vin)
            if vt > 0.0:
                seg_c[b, sz] = (seg_c[b, sz] * seg_v[b, sz] + seg_c[b, mz] * vt) / (seg_v[b, sz] + vt)
        elif vnet < 0.0:
            if seg_v[b, sz] > 0.0:
                vt = min(seg_v[b, sz], -vnet)
            if vin + vt > 0.0:
                seg_c[b, mz] = (seg_c[b, mz] * seg_v[b, mz] + win + seg_c[b, sz] * vt) / \
                    (seg_v[b, mz] + vin + vt)
        if vt > 0.0:
            if vnet > 0.0:
                seg_v[b, mz] = vmz
                seg_v[b, sz] += vt
                vsz = vmax - vmz
                if seg_v[b, sz] > vsz:
                    seg_v[b, sz] = vsz
            else:
                seg_v[b, sz] = max(0.0, seg_v[b, sz] - vt)
                seg_v[b, mz] = vmz + vt + vnet
        else:
            seg_v[b, mz] = max(0.0, min(seg_v[b, mz] + vnet, vmz))
            if vmz - seg_v[b, mz] > 0.0:
                seg_v[b, sz] = 0.0
        tank_c[b, t] = seg_c[b, mz]
    elif model == FIFO:
        if last[b, k] < 0 or first[b, k] < 0:
            return tank_c[b, t]
        if vin > 0.0:
            cin = win / vin
            s = last[b, k]
            if abs(seg_c[b, s] - cin) < ctol:
                seg_v[b, s] += vin
            else:
                _addseg(b, k, vin, cin, seg_v, seg_c, seg_prev, first, last, pool)
        vout = vin - vnet
        if vol_now >= vmax and vnet > 0.0:
            vout = vin
        vsum, wsum = _take_out(b, k, vout, seg_v, seg_c, seg_prev, first, last, pool, True)
        if vsum > 0.0:
            tank_c[b, t] = wsum / vsum
        elif first[b, k] < 0:
            tank_c[b, t] = 0.0
        else:
            tank_c[b, t] = seg_c[b, first[b, k]]
    else:
        if last[b, k] < 0 or first[b, k] < 0:
            return tank_c[b, t]
        cin = win / vin if vin > 0.0 else 0.0
        tank_c[b, t] = seg_c[b, last[b, k]]
        s = last[b, k]
        if vnet > 0.0:
            if abs(seg_c[b, s] - cin) < ctol:
                seg_v[b, s] += vnet
            else:
                _addseg(b, k, vnet, cin, seg_v, seg_c, seg_prev, first, last, pool)
            tank_c[b, t] = seg_c[b, last[b, k]]
            if vol_now >= vmax:
                _take_out(b, k, vnet, seg_v, seg_c, seg_prev, first, last, pool, True)
        elif vnet < 0.0:
            _reverse(b, k, seg_prev, first, last)
            vsum, wsum = _take_out(b, k, -vnet, seg_v, seg_c, seg_prev, first, last, pool, True)
            _reverse(b, k, seg_prev, first, last)
            tank_c[b, t] = (wsum + win) / (vsum + vin)
    return tank_c[b, t]
