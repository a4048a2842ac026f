"""EPANET's head-loss, pump, valve and emitter laws as CUDA device functions (numba's CUDA target).

Each mirrors its numba CPU twin in kernels.gga_laws operation for operation, for one scenario at a
time (one GPU thread per scenario): the device and the CPU backends agree to rounding
(tests/test_cudasim.py). Under NUMBA_ENABLE_CUDASIM=1 numba runs these same functions in Python.

Imported lazily (only by kernels.cuda_gga): importing numba's CUDA target costs time and needs numba-cuda.
"""
from __future__ import annotations

import math

from numba import cuda

from parktwin.kernels import scalar_laws

from parktwin.kernels.gga_laws import (BIG, CBIG, CLOSED, CONST_HP, CSMALL, CUSTOM, HTOL, NOCURVE, OPEN, PBV,
                                       PIPE, PUMP, RQTOL, TCV, TEMPCLOSED, TINY, XHEAD)


# Written once in kernels.scalar_laws, compiled here for the device and in kernels.gga_laws for the CPU.
valve_law = cuda.jit(device=True, inline=True)(scalar_laws.valve)
emitter_law = cuda.jit(device=True, inline=True)(scalar_laws.emitter)
pipe_leak_law = cuda.jit(device=True, inline=True)(scalar_laws.pipe_leak)
pipe_leak_target = cuda.jit(device=True, inline=True)(scalar_laws.pipe_leak_target)


@cuda.jit(device=True, inline=True)
def safe_pow(x, e):
    """x**e for x >= 0 as numpy gives it: 0**negative is inf (math.pow raises in the simulator)."""
    if x == 0.0:
        if e < 0.0:
            return math.inf
        if e == 0.0:
            return 1.0
        return 0.0
    return math.pow(x, e)


@cuda.jit(device=True, inline=True)
def pump_law(pt, q, status, setting, h0c, rc, nc, cx, cy, c_lo, c_hi):
    """pumpcoeff(): (P, Y) of one pump; the powers the CPU backend takes from numpy are taken here."""
    closed = (status <= CLOSED) or (setting == 0.0)
    speed = 1.0 if closed else setting
    qa = abs(q)
    if pt == NOCURVE:
        p, y = 1.0 / CSMALL, q
    elif pt == CUSTOM:
        qs = qa / speed
        npts = c_hi - c_lo
        if npts == 1:
            h0, r = cy[c_lo], 0.0
        else:
            k2 = c_lo
            while k2 < c_hi and cx[k2] < qs:
                k2 += 1
            k2 = min(max(k2 - c_lo, 1), npts - 1) + c_lo
            k1 = k2 - 1
            r = (cy[k2] - cy[k1]) / (cx[k2] - cx[k1])
            h0 = cy[k1] - r * cx[k1]
        h0, r = -h0, -r
        hgrad = r * speed
        hloss = h0 * speed * speed + hgrad * q
        p, y = 1.0 / hgrad, hloss / hgrad
    else:
        h0 = speed * speed * h0c
        n = nc
        if abs(n - 1.0) < TINY:
            n = 1.0
        r = rc * safe_pow(speed, 2.0 - n)
        if pt == CONST_HP:
            qs = TINY if qa == 0.0 else qa
            hgrad = -r / qs / qs
            hloss = r / (TINY if q == 0.0 else q)
            if hgrad > CBIG:
                p, y = 1.0 / CBIG, q
            elif hgrad < CSMALL:
                p, y = 1.0 / CSMALL, q
            else:
                p, y = 1.0 / hgrad, hloss / hgrad
        elif n != 1.0:
            hgrad = n * r * safe_pow(qa, n - 1.0)
            if hgrad < RQTOL:
                hgrad = RQTOL
                hloss = h0 + hgrad * q
            else:
                hloss = h0 + hgrad * q / n
            p, y = 1.0 / hgrad, hloss / hgrad
        else:
            hgrad = r * 1.0
            hloss = h0 + hgrad * q
            p, y = 1.0 / hgrad, hloss / hgrad
    if closed:
        return 1.0 / CBIG, q
    return p, y


@cuda.jit(device=True, inline=True)
def pipe_law(q, rk, kmk, hexp, status):
    """pipecoeff() for Hazen-Williams / Chezy-Manning with minor loss: (P, Y)."""
    qa = abs(q)
    hgrad = hexp * rk * safe_pow(qa, hexp - 1.0)
    if hgrad < RQTOL:
        hgrad = RQTOL / hexp
        hloss = hgrad * qa
    else:
        hloss = hgrad * qa / hexp
    hloss = hloss + kmk * qa * qa
    hgrad = hgrad + 2.0 * kmk * qa
    if q < 0.0:
        hloss = hloss * -1.0
    if status <= CLOSED:
        return 1.0 / CBIG, q
    return 1.0 / hgrad, hloss / hgrad


@cuda.jit(device=True, inline=True)
def friction_factor(q, e, s, dw):
    """frictionFactor(): Swamee-Jain above Re 4000, Dunlop's cubic in the transition; (f, df/dq).
    dw holds EPANET's constants A1, A2, A8, A9, AB, AC (passed in: their one home is hydraulics)."""
    a1, a2, a8, a9, ab, ac = dw[0], dw[1], dw[2], dw[3], dw[4], dw[5]
    w = q / s
    if w >= a1:
        y1 = a8 / safe_pow(w, 0.9)
        y2 = e / 3.7 + y1
        y3 = a9 * math.log(y2)
        f = 1.0 / (y3 * y3)
        return f, 1.8 * f * y1 * a9 / y2 / y3 / q
    y2 = e / 3.7 + ab
    y3 = a9 * math.log(y2)
    fa = 1.0 / (y3 * y3)
    fb = (2.0 + ac / (y2 * y3)) * fa
    rr = w / a2
    x1 = 7.0 * fa - fb
    x2 = 0.128 - 17.0 * fa + 2.5 * fb
    x3 = -0.128 + 13.0 * fa - (fb + fb)
    x4 = 0.032 - 3.0 * fa + 0.5 * fb
    return x1 + rr * (x2 + rr * (x3 + rr * x4)), (x2 + rr * (2.0 * x3 + rr * 3.0 * x4)) / s / a2


@cuda.jit(device=True, inline=True)
def dw_pipe_law(q, r, kmk, e, s, status, dw):
    """DWpipecoeff(): Darcy-Weisbach with minor loss, laminar below Re 2000: (P, Y)."""
    qa = abs(q)
    if qa <= dw[1] * s:
        r_lam = 16.0 * math.pi * s * r
        hloss = q * (r_lam + kmk * qa)
        hgrad = r_lam + 2.0 * kmk * qa
    else:
        f, dfdq = friction_factor(qa, e, s, dw)
        r1 = f * r + kmk
        hloss = r1 * qa * q
        hgrad = 2.0 * r1 * qa + dfdq * r * qa * qa
    if status <= CLOSED:
        return 1.0 / CBIG, q
    return 1.0 / hgrad, hloss / hgrad


@cuda.jit(device=True, inline=True)
def link_law(k, b, kind, pump_of, pump_type, pump_curve, km, diam4, hexp, pump_h0, pump_r, pump_n, cx, cy,
             c_off, flow, status, setting, resist, r_step, rel_rough, e_step, visc_d, dw):
    """headlosscoeffs() for link k of scenario b: (P, Y). PRV/PSV/FCV with a setting give (0, 0): the
    assembly handles them. dw[0] == 0: Hazen-Williams or Chezy-Manning (exponent hexp); else
    Darcy-Weisbach with dw's constants."""
    kk = kind[k]
    q = flow[k, b]
    s = status[k, b]
    if kk <= PIPE:
        if dw[0] != 0.0:
            return dw_pipe_law(q, resist[k, b * r_step], km[k], rel_rough[k, b * e_step], visc_d[k], s, dw)
        return pipe_law(q, resist[k, b * r_step], km[k], hexp, s)
    if kk == PUMP:
        pn = pump_of[k]
        c = pump_curve[pn]
        lo = c_off[c] if c >= 0 else 0
        hi = c_off[c + 1] if c >= 0 else 0
        return pump_law(pump_type[pn], q, s, setting[k, b], pump_h0[pn], pump_r[pn], pump_n[pn], cx, cy, lo,
                        hi)
    sv = setting[k, b]
    if kk == PBV:
        active = (not math.isnan(sv)) and sv != 0.0 and not (km[k] * (q * q) > sv)
        if active:
            return CBIG, sv * CBIG
        return valve_law(q, s, km[k])
    if kk == TCV:
        kmt = km[k] if math.isnan(sv) else 0.02517 * sv / diam4[k]
        return valve_law(q, s, kmt)
    if math.isnan(sv):
        return valve_law(q, s, km[k])
    return 0.0, 0.0


@cuda.jit(device=True, inline=True)
def tank_block(s, q_into, h, hmin, hmax, area, overflow):
    """The full/empty tank test of linkstatus() for one end of a link."""
    if area != 0.0 and s > CLOSED:
        if (h >= hmax and overflow == 0.0 and q_into < 0.0) or (h <= hmin and q_into > 0.0):
            return TEMPCLOSED
    return s


@cuda.jit(device=True, inline=True)
def pump_status(s, gain, q, sv, pump_type, hmax):
    """linkstatus() for an open pump with a positive speed."""
    if pump_type == CONST_HP:
        if q < TINY:
            return TEMPCLOSED
        return XHEAD if gain > BIG + HTOL else OPEN
    return XHEAD if gain > sv * sv * hmax + HTOL else OPEN


__all__ = ["valve_law", "emitter_law", "pipe_leak_law", "pipe_leak_target", "pump_law", "pipe_law", "dw_pipe_law", "friction_factor", "link_law",
           "tank_block", "pump_status", "safe_pow"]
