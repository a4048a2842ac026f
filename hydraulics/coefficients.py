"""EPANET 2.3's head-loss laws, batched: P = 1/(dh/dq) and Y = h/(dh/dq) for every link and scenario.

Arrays are [element, B] (scenario innermost) in EPANET's internal units (ft, cfs; see epanet_units).
Written against the array namespace `xp` so that numpy and cupy run the same code.
"""
from __future__ import annotations

import numpy as np

from parktwin.hydraulics.epanet_units import CBIG, CSMALL, RQTOL, TINY, SolverNetwork
from parktwin.hydraulics.network import HeadlossFormula, LinkKind, PumpCurveKind
from parktwin.kernels.powers import pow_nonneg_array

from parktwin.kernels.epanet_codes import (ACTIVE, CLOSED, OPEN, TEMPCLOSED, XFCV, XFLOW,  # noqa: F401
                                           XHEAD, XPRESSURE)

# Darcy-Weisbach constants of EPANET's hydcoeffs.c.
_A1 = 3.14159265358979323850e+03
_A2 = 1.57079632679489661930e+03
_A8 = 4.61841319859066668690e+00
_A9 = -8.68588963806503655300e-01
_AB = 3.28895476345399058690e-03
_AC = -5.14214965799093883760e-03


def sgn(xp, x):
    """EPANET's SGN: zero counts as positive."""
    return xp.where(x < 0, -1.0, 1.0)


def closed_coeffs(xp, q):
    return xp.full(q.shape, 1.0 / CBIG), q.copy()


def valve_coeffs(xp, q, status, km):
    """valvecoeff(): open valve with optional minor loss, or closed."""
    flow = q
    qa = xp.abs(flow)
    hgrad = 2.0 * km * qa
    small = hgrad < RQTOL
    hgrad = xp.where(small, RQTOL / 2.0, hgrad)
    hloss = xp.where(small, flow * hgrad, flow * hgrad / 2.0)
    has_km = km > 0.0
    p = xp.where(has_km, 1.0 / hgrad, 1.0 / CSMALL)
    y = xp.where(has_km, hloss / hgrad, flow)
    closed = status <= CLOSED
    p = xp.where(closed, 1.0 / CBIG, p)
    y = xp.where(closed, flow, y)
    return p, y


def pcv_loss_coeff(xp, sn: SolverNetwork, k: int, s):
    """pcvlosscoeff(): the loss coefficient R (ft per cfs^2) of PCV k at percent open s [B].

    EPANET keeps R as link state, recomputed only where controls() or setlinksetting() give the valve
    a setting (not in pswitch()), so callers store it in the state rather than derive it from the setting."""
    s = xp.asarray(s, dtype=float)
    kmo = float(sn.minor_ft_per_cfs2[k])
    c = int(sn.valve_curve[k])
    sv = xp.nan_to_num(s)
    if c < 0:
        kvr = sv
    else:
        kvr = _pcv_curve_ratio(xp, sn, c, sv)
    kvr = xp.maximum(xp.minimum(kvr / 100.0, 1.0), CSMALL)
    km = xp.minimum(kmo / (kvr * kvr), CBIG)
    km = xp.where(sv <= 0.0, CBIG, km)
    km = xp.where(sv >= 100.0, kmo, km)
    return xp.where(xp.isnan(s), 0.0, km)


def _pcv_curve_ratio(xp, sn: SolverNetwork, c: int, sv):
    """Kv/Kvo in percent from curve c at percent open sv; the branches EPANET does not take may
    divide by zero and are discarded."""
    import numpy as np
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = int(sn.curve_offset[c]), int(sn.curve_offset[c + 1])
        x, y = xp.asarray(sn.curve_x[lo:hi]), xp.asarray(sn.curve_y[lo:hi])
        npts = hi - lo
        below = sv / x[0] * y[0]
        # EPANET extrapolates past the last point towards (1, 1), not (100, 100): kept as it is
        above = (sv - x[-1]) / (1.0 - x[-1]) * (1.0 - y[-1]) + y[-1]
        if npts == 1:
            inside = xp.full(sv.shape, float(y[0]))   # EPANET reads past its one-point array here
        else:
            k2 = xp.clip(xp.searchsorted(x, sv, side="left"), 1, npts - 1)
            k1 = k2 - 1
            inside = y[k1] + (y[k2] - y[k1]) / (x[k2] - x[k1]) * (sv - x[k1])
        return xp.where(sv < x[0], below, xp.where(sv > x[-1], above, inside))


def set_pcv_loss(sn: SolverNetwork, state, k: int, setting, mask, cols=slice(None)) -> None:
    """controls() and setlinksetting(): PCV k's R from its new setting, in the scenarios `cols`
    where mask."""
    import numpy as np
    if state.pcv_r is None or sn.kind[k] != LinkKind.PCV:
        return
    row = int(np.searchsorted(np.flatnonzero(sn.kind == LinkKind.PCV), k))
    r = pcv_loss_coeff(np, sn, k, np.broadcast_to(setting, mask.shape))
    state.pcv_r[row, cols] = np.where(mask, r, state.pcv_r[row, cols])


def power(xp, x, a: float):
    """x**a (x >= 0) for the head-loss and pump laws: on the host kernels.powers' arithmetic, which the
    fused numba kernel takes inside its loops, so that both paths agree to the last bit."""
    if xp is np:
        return pow_nonneg_array(x, a)
    return x ** a


def pipe_coeffs(xp, sn: SolverNetwork, q, status, r, km, rel_rough=None, visc_d=None):
    """pipecoeff() / DWpipecoeff(); r may be [L,1] or [L,B] (roughness perturbed per scenario)."""
    qa = xp.abs(q)
    if sn.headloss == HeadlossFormula.DW:
        s = visc_d
        laminar = qa <= _A2 * s
        r_lam = 16.0 * xp.pi * s * r
        f, dfdq = friction_factor(xp, xp.where(laminar, _A2 * s * 2.0 + 1.0, qa), rel_rough, s)
        r1 = f * r + km
        hloss = xp.where(laminar, q * (r_lam + km * qa), r1 * qa * q)
        hgrad = xp.where(laminar, r_lam + 2.0 * km * qa, 2.0 * r1 * qa + dfdq * r * qa * qa)
    else:
        hexp = sn.flow_exponent
        hgrad = hexp * r * power(xp, qa, hexp - 1.0)
        small = hgrad < RQTOL
        hgrad = xp.where(small, RQTOL / hexp, hgrad)
        hloss = xp.where(small, hgrad * qa, hgrad * qa / hexp)
        hloss = hloss + km * qa * qa
        hgrad = hgrad + 2.0 * km * qa
        hloss = hloss * sgn(xp, q)
    p = 1.0 / hgrad
    y = hloss / hgrad
    closed = status <= CLOSED
    return xp.where(closed, 1.0 / CBIG, p), xp.where(closed, q, y)


def friction_factor(xp, q, e, s):
    """Swamee-Jain above Re 4000, Dunlop's cubic in the transition (EPANET's frictionFactor)."""
    w = q / s
    turbulent = w >= _A1
    wt = xp.where(turbulent, w, _A1)
    y1 = _A8 / wt ** 0.9
    y2 = e / 3.7 + y1
    y3 = _A9 * xp.log(y2)
    f_t = 1.0 / (y3 * y3)
    dfdq_t = 1.8 * f_t * y1 * _A9 / y2 / y3 / q
    y2b = e / 3.7 + _AB
    y3b = _A9 * xp.log(y2b)
    fa = 1.0 / (y3b * y3b)
    fb = (2.0 + _AC / (y2b * y3b)) * fa
    rr = w / _A2
    x1 = 7.0 * fa - fb
    x2 = 0.128 - 17.0 * fa + 2.5 * fb
    x3 = -0.128 + 13.0 * fa - (fb + fb)
    x4 = 0.032 - 3.0 * fa + 0.5 * fb
    f_tr = x1 + rr * (x2 + rr * (x3 + rr * x4))
    dfdq_tr = (x2 + rr * (2.0 * x3 + rr * 3.0 * x4)) / s / _A2
    return xp.where(turbulent, f_t, f_tr), xp.where(turbulent, dfdq_t, dfdq_tr)


def curve_segment(xp, x, y, q):
    """Intercept and slope of the curve segment that brackets q (EPANET's curvecoeff)."""
    npts = len(x)
    if npts == 1:
        return xp.full(q.shape, float(y[0])), xp.zeros(q.shape)
    xs = xp.asarray(x)
    ys = xp.asarray(y)
    k2 = xp.searchsorted(xs, q, side="left")
    k2 = xp.clip(k2, 1, npts - 1)
    k1 = k2 - 1
    r = (ys[k2] - ys[k1]) / (xs[k2] - xs[k1])
    h0 = ys[k1] - r * xs[k1]
    return h0, r


def pump_coeffs(xp, sn: SolverNetwork, p_index: int, q, status, setting):
    """pumpcoeff() for one pump across the batch (q, status, setting are [B])."""
    ptype = sn.pump_type[p_index]
    closed = (status <= CLOSED) | (setting == 0.0)
    speed = xp.where(closed, 1.0, setting)
    qa = xp.abs(q)
    if ptype == PumpCurveKind.NOCURVE:
        p = xp.full(q.shape, 1.0 / CSMALL)
        y = q.copy()
    elif ptype == PumpCurveKind.CUSTOM:
        c = sn.pump_curve[p_index]
        lo, hi = sn.curve_offset[c], sn.curve_offset[c + 1]
        h0, r = curve_segment(xp, sn.curve_x[lo:hi], sn.curve_y[lo:hi], qa / speed)
        h0, r = -h0, -r
        hgrad = r * speed
        hloss = h0 * speed * speed + hgrad * q
        p, y = 1.0 / hgrad, hloss / hgrad
    else:
        h0 = speed * speed * sn.pump_h0[p_index]
        n = sn.pump_n[p_index]
        if abs(n - 1.0) < TINY:
            n = 1.0
        r = sn.pump_r[p_index] * power(xp, speed, 2.0 - n)
        if ptype == PumpCurveKind.CONST_HP:
            qs = xp.where(qa == 0.0, TINY, qa)
            hgrad = -r / qs / qs
            hloss = r / xp.where(q == 0.0, TINY, q)
            p = xp.where(hgrad > CBIG, 1.0 / CBIG, xp.where(hgrad < CSMALL, 1.0 / CSMALL, 1.0 / hgrad))
            y = xp.where((hgrad > CBIG) | (hgrad < CSMALL), q, hloss / hgrad)
        elif n != 1.0:
            hgrad = n * r * power(xp, qa, n - 1.0)
            small = hgrad < RQTOL
            hgrad = xp.where(small, RQTOL, hgrad)
            hloss = xp.where(small, h0 + hgrad * q, h0 + hgrad * q / n)
            p, y = 1.0 / hgrad, hloss / hgrad
        else:
            hgrad = r * xp.ones(q.shape)
            hloss = h0 + hgrad * q
            p, y = 1.0 / hgrad, hloss / hgrad
    return xp.where(closed, 1.0 / CBIG, p), xp.where(closed, q, y)


def barrier_lower(xp, dq, hloss, hgrad):
    a = 1.0e9 * dq
    b = xp.sqrt(a * a + 1.0e-6)
    return hloss + (a - b) / 2.0, hgrad + (1.0e9 / 2.0) * (1.0 - a / b)


def barrier_upper(xp, dq, hloss, hgrad):
    a = 1.0e9 * dq
    b = xp.sqrt(a * a + 1.0e-6)
    return hloss + (a + b) / 2.0, hgrad + (1.0e9 / 2.0) * (1.0 + a / b)


def emitter_headloss(xp, ke, qexp, q, backflow: bool):
    """emitterheadloss(): head loss Ke q^Qexp and its gradient; a barrier stops backflow."""
    ke = xp.maximum(CSMALL, ke)
    hgrad = qexp * ke * xp.abs(q) ** (qexp - 1.0)
    small = hgrad < RQTOL
    hgrad = xp.where(small, RQTOL / qexp, hgrad)
    hloss = xp.where(small, hgrad * q, hgrad * q / qexp)
    if not backflow:
        hloss, hgrad = barrier_lower(xp, q, hloss, hgrad)
    return hloss, hgrad


def demand_headloss(xp, d, dfull, dp, n):
    """demandheadloss(): inverted pressure-demand function with barriers at 0 and full demand."""
    safe_full = xp.where(dfull > 0, dfull, 1.0)
    r = xp.abs(d) / safe_full
    hgrad = n * dp * r ** (n - 1.0) / safe_full
    hloss = hgrad * d / n
    hloss, hgrad = barrier_lower(xp, d, hloss, hgrad)
    return barrier_upper(xp, d - dfull, hloss, hgrad)


def link_groups(sn: SolverNetwork):
    """Index arrays of links by the law that applies to them."""
    import numpy as np
    kind = sn.kind
    return {
        "pipe": np.flatnonzero(kind <= LinkKind.PIPE),
        "pump": np.flatnonzero(kind == LinkKind.PUMP),
        "pbv": np.flatnonzero(kind == LinkKind.PBV),
        "tcv": np.flatnonzero(kind == LinkKind.TCV),
        "gpv": np.flatnonzero(kind == LinkKind.GPV),
        "pcv": np.flatnonzero(kind == LinkKind.PCV),
        "ctl": np.flatnonzero((kind == LinkKind.PRV) | (kind == LinkKind.PSV) | (kind == LinkKind.FCV)),
    }
