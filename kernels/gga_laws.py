"""EPANET's head-loss laws as scalar numba functions for the fused iteration (kernels.gga_numba).

Each mirrors its numpy twin in hydraulics.coefficients operation for operation; the powers they are
given come from kernels.powers (within 2 units in the last place of numpy's), so the two backends agree
to 1e-9, and to the last bit where both take the same powers.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from parktwin.kernels import powers, scalar_laws

from parktwin.kernels.epanet_codes import (ACTIVE, BIG, CBIG, CLOSED, CONST_HP, CSMALL, CUSTOM,  # noqa: F401
                                           CVPIPE, FCV, GPV, HTOL, NOCURVE, OPEN, PBV, PCV, PIPE, POWER_FUNC,
                                           PRV, PSV, PUMP, QTOL, QZERO, RQTOL, TCV, TEMPCLOSED, TINY, XFCV,
                                           XFLOW, XHEAD, XPRESSURE)


# Written once in kernels.scalar_laws, compiled here for the CPU and in kernels.cuda_laws for the device.
_valve = nb.njit(cache=True, inline="always", error_model="numpy")(scalar_laws.valve)
_emitter = nb.njit(cache=True, inline="always", error_model="numpy")(scalar_laws.emitter)
_pipe_leak = nb.njit(cache=True, inline="always", error_model="numpy")(scalar_laws.pipe_leak)
_pipe_leak_target = nb.njit(cache=True, inline="always", error_model="numpy")(scalar_laws.pipe_leak_target)
# x**a in plain arithmetic, so that the loops that take it vectorise (CPU only; the device keeps CUDA's pow).
_pow = nb.njit(cache=True, inline="always", error_model="numpy")(powers.pow_nonneg)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _pump(pt, k_pump, q, qpow, spow, status, setting, h0c, rc, nc, cx, cy, c_lo, c_hi):
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
        r = rc * spow
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
            hgrad = n * r * qpow
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


@nb.njit(cache=True, error_model="numpy")
def _coefficients(net, flow, q_pow, speed_pow, status, setting, resist, cols, w, p, y):
    """headlosscoeffs() for the block's lanes [0, w) into p, y [L, lanes].

    flow, q_pow, speed_pow, status and resist are the block's own [row, lane] arrays; setting is the
    batch's, indexed by the scenario column cols[lane]."""
    start, kind, pump_of, pump_type, pump_curve = net.start, net.kind, net.pump_of, net.pump_type, net.pump_curve
    km, diam4, hexp = net.minor_loss, net.diameter4, net.flow_exponent
    pump_h0, pump_r, pump_n = net.pump_h0, net.pump_r, net.pump_n
    cx, cy, c_off = net.curve_x, net.curve_y, net.curve_offset
    n_links = start.shape[0]
    for k in range(n_links):
        kk = kind[k]
        if kk <= PIPE:
            q_row, s_row, qp_row, p_row, y_row, r_row = flow[k], status[k], q_pow[k], p[k], y[k], resist[k]
            kmk = km[k]
            # Branch-free (selects) over contiguous rows so that LLVM vectorises the lane loop; same
            # values as the reference.
            for lane in range(w):
                q = q_row[lane]
                qa = abs(q)
                hgrad = hexp * r_row[lane] * qp_row[lane]
                small = hgrad < RQTOL
                hgrad = RQTOL / hexp if small else hgrad
                hloss = hgrad * qa if small else hgrad * qa / hexp
                hloss = hloss + kmk * qa * qa
                hgrad = hgrad + 2.0 * kmk * qa
                hloss = hloss * -1.0 if q < 0.0 else hloss
                closed = s_row[lane] <= CLOSED
                p_row[lane] = 1.0 / CBIG if closed else 1.0 / hgrad
                y_row[lane] = q if closed else hloss / hgrad
            continue
        for lane in range(w):
            b = cols[lane]
            q = flow[k, lane]
            s = status[k, lane]
            if kk == PUMP:
                pn = pump_of[k]
                c = pump_curve[pn]
                lo = c_off[c] if c >= 0 else 0
                hi = c_off[c + 1] if c >= 0 else 0
                p[k, lane], y[k, lane] = _pump(pump_type[pn], pn, q, q_pow[k, lane], speed_pow[pn, lane], s,
                                               setting[k, b], pump_h0[pn], pump_r[pn], pump_n[pn], cx, cy, lo, hi)
            elif kk == PBV:
                pv, yv = _valve(q, s, km[k])
                sv = setting[k, b]
                active = (not np.isnan(sv)) and sv != 0.0 and not (km[k] * q ** 2 > sv)
                if active:
                    p[k, lane], y[k, lane] = CBIG, sv * CBIG
                else:
                    p[k, lane], y[k, lane] = pv, yv
            elif kk == TCV:
                sv = setting[k, b]
                kmt = km[k] if np.isnan(sv) else 0.02517 * sv / diam4[k]
                p[k, lane], y[k, lane] = _valve(q, s, kmt)
            else:   # PRV, PSV, FCV: with a setting they are handled in _control_valves
                if np.isnan(setting[k, b]):
                    p[k, lane], y[k, lane] = _valve(q, s, km[k])
                else:
                    p[k, lane], y[k, lane] = 0.0, 0.0
