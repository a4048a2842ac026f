"""EPANET's status checks (hydstatus.c and pswitch), batched: each returns a [B] mask of changes.

`only` restricts a check to the scenarios at that point of EPANET's control flow; statuses of the other
scenarios are left untouched.
"""
from __future__ import annotations

import numpy as np

from parktwin.hydraulics.coefficients import ACTIVE, CLOSED, OPEN, TEMPCLOSED, XFCV, XHEAD, XPRESSURE
from parktwin.hydraulics.epanet_units import BIG, HTOL, QTOL, TINY, SolverNetwork
from parktwin.hydraulics.network import LinkKind, PumpCurveKind


def _mask(only, batch):
    return np.ones(batch, bool) if only is None else only


def valve_status(sn: SolverNetwork, st, only=None) -> np.ndarray:
    """valvestatus(): PRVs and PSVs with a setting."""
    batch = st.batch_size
    use = _mask(only, batch)
    changed = np.zeros(batch, bool)
    h = st.head
    for k in np.flatnonzero((sn.kind == LinkKind.PRV) | (sn.kind == LinkKind.PSV)):
        setting = st.setting[k]
        sel = use & ~np.isnan(setting)
        if not sel.any():
            continue
        n1, n2 = sn.start[k], sn.end[k]
        s = st.status[k]
        q = st.flow[k]
        hml = sn.minor_ft_per_cfs2[k] * q * q
        h1, h2 = h[n1], h[n2]
        if sn.kind[k] == LinkKind.PRV:
            hset = sn.elevation_ft[n2] + np.nan_to_num(setting)
            new = _prv_status(s, q, h1, h2, hset, hml)
        else:
            hset = sn.elevation_ft[n1] + np.nan_to_num(setting)
            new = _psv_status(s, q, h1, h2, hset, hml)
        new = np.where(sel, new, s)
        changed |= new != s
        st.status[k] = new
    return changed


def _prv_status(s, q, h1, h2, hset, hml):
    reverse = q < -QTOL
    new = s.copy()
    a = s == ACTIVE
    new = np.where(a, np.where(reverse, CLOSED, np.where(h1 - hml < hset - HTOL, OPEN, ACTIVE)), new)
    o = s == OPEN
    new = np.where(o, np.where(reverse, CLOSED, np.where(h2 >= hset + HTOL, ACTIVE, OPEN)), new)
    c = s == CLOSED
    new = np.where(c, np.where((h1 >= hset + HTOL) & (h2 < hset - HTOL), ACTIVE,
                               np.where((h1 < hset - HTOL) & (h1 > h2 + HTOL), OPEN, CLOSED)), new)
    x = s == XPRESSURE
    new = np.where(x & reverse, CLOSED, new)
    return new.astype(np.int8)


def _psv_status(s, q, h1, h2, hset, hml):
    reverse = q < -QTOL
    new = s.copy()
    a = s == ACTIVE
    new = np.where(a, np.where(reverse, CLOSED, np.where(h2 + hml > hset + HTOL, OPEN, ACTIVE)), new)
    o = s == OPEN
    new = np.where(o, np.where(reverse, CLOSED, np.where(h1 < hset - HTOL, ACTIVE, OPEN)), new)
    c = s == CLOSED
    new = np.where(c, np.where((h2 > hset + HTOL) & (h1 > h2 + HTOL), OPEN,
                               np.where((h1 >= hset + HTOL) & (h1 > h2 + HTOL), ACTIVE, CLOSED)), new)
    x = s == XPRESSURE
    new = np.where(x & reverse, CLOSED, new)
    return new.astype(np.int8)


def link_status(sn: SolverNetwork, st, only=None) -> np.ndarray:
    """linkstatus(): check valves, pumps, FCVs and links into full or empty tanks."""
    batch = st.batch_size
    use = _mask(only, batch)[None, :]
    h = st.head
    old = st.status.copy()
    status = np.where(use & ((old == XHEAD) | (old == TEMPCLOSED)), OPEN, old).astype(np.int8)
    dh = h[sn.start] - h[sn.end]
    q = st.flow
    kind = sn.kind

    cv = np.flatnonzero(kind == LinkKind.CVPIPE)
    if len(cv):
        s, d, qq = status[cv], dh[cv], q[cv]
        big = np.abs(d) > HTOL
        new = np.where(big, np.where(d < -HTOL, CLOSED, np.where(qq < -QTOL, CLOSED, OPEN)),
                       np.where(qq < -QTOL, CLOSED, s))
        status[cv] = np.where(use, new, s)

    for p, k in enumerate(sn.pump_link):
        s = status[k]
        setting = st.setting[k]
        sel = use[0] & (s >= OPEN) & (np.nan_to_num(setting) > 0.0)
        if not sel.any():
            continue
        gain = -dh[k]
        if sn.pump_type[p] == PumpCurveKind.CONST_HP:
            hmax = BIG
            new = np.where(q[k] < TINY, TEMPCLOSED, np.where(gain > hmax + HTOL, XHEAD, OPEN))
        else:
            hmax = setting * setting * sn.pump_hmax[p]
            new = np.where(gain > hmax + HTOL, XHEAD, OPEN)
        status[k] = np.where(sel, new, s)

    for k in np.flatnonzero(kind == LinkKind.FCV):
        setting = st.setting[k]
        sel = use[0] & ~np.isnan(setting)
        if not sel.any():
            continue
        s0 = old[k]
        d = dh[k]
        qq = q[k]
        new = s0.copy()
        to_x = (d < -HTOL) | (qq < -QTOL)
        reactivate = ~to_x & (s0 == XFCV) & (qq >= np.nan_to_num(setting))
        with np.errstate(divide="ignore", invalid="ignore"):
            too_open = ~to_x & ~reactivate & (s0 == ACTIVE) & (d / (qq * qq) < sn.minor_ft_per_cfs2[k])
        new = np.where(to_x | too_open, XFCV, np.where(reactivate, ACTIVE, new))
        status[k] = np.where(sel, new, status[k])

    _tank_status(sn, st, status, use[0])
    changed = ((status != old) & use).any(axis=0)
    st.status[:] = status
    return changed


def _tank_status(sn: SolverNetwork, st, status, use):
    nj = sn.n_junctions
    if not len(sn.tank_node):
        return
    tank_of_node = np.full(sn.n_nodes, -1, np.int64)
    tank_of_node[sn.tank_node] = np.arange(len(sn.tank_node))
    h = st.head
    for end, sign in ((sn.start, 1.0), (sn.end, -1.0)):
        links = np.flatnonzero((end >= nj) & (tank_of_node[end] >= 0))
        for k in links:
            t = tank_of_node[end[k]]
            if sn.tank_area_ft2[t] == 0.0:
                continue
            n = end[k]
            q = sign * st.flow[k]
            open_now = status[k] > CLOSED
            full = (h[n] >= sn.tank_hmax_ft[t]) & (not sn.tank_can_overflow[t]) & (q < 0.0)
            empty = (h[n] <= sn.tank_hmin_ft[t]) & (q > 0.0)
            close = use & open_now & (full | empty)
            status[k] = np.where(close, TEMPCLOSED, status[k])


def pressure_switch(sn: SolverNetwork, st, controls, only=None) -> np.ndarray:
    """pswitch(): simple controls on junction pressure, applied after convergence."""
    batch = st.batch_size
    use = _mask(only, batch)
    changed = np.zeros(batch, bool)
    for c in controls:
        if not (0 <= c.node < sn.n_junctions):
            continue
        k = c.link
        if sn.kind[k] == LinkKind.GPV:
            continue   # a GPV's setting holds its curve, so EPANET's pswitch never changes it
        h = st.head[c.node]
        if c.kind == "low":
            reset = h <= c.grade_ft + HTOL
        else:
            reset = h >= c.grade_ft - HTOL
        reset &= use
        if not reset.any():
            continue
        kind = sn.kind[k]
        s = st.status[k]
        setting = st.setting[k]
        if kind <= LinkKind.PIPE:
            change = s != c.status
        elif kind == LinkKind.PUMP:
            change = ~_same(setting, c.setting)
        else:
            change = ~_same(setting, c.setting) | (np.isnan(setting) & (s != c.status))
        change &= reset
        st.status[k] = np.where(change, c.status, s)
        if kind > LinkKind.PIPE:
            st.setting[k] = np.where(change, c.setting, setting)
        changed |= change
    return changed


def _same(a, b):
    return (a == b) | (np.isnan(a) & np.isnan(b))
