"""EPANET's scalar laws written once and compiled twice: by numba for the CPU (kernels.gga_laws,
kernels.gga_numba) and by numba's CUDA target for the device (kernels.cuda_laws, kernels.cuda_gga), so the
two backends cannot drift apart. Plain Python with `math` only: this module imports no numba, and each
backend wraps the functions with its own decorator.
"""
from __future__ import annotations

import math

from parktwin.kernels.epanet_codes import CBIG, CLOSED, CSMALL, RQTOL


def valve(q, status, km):
    """valvecoeff(): (P, Y) of an open or closed valve with minor-loss coefficient km."""
    if status <= CLOSED:
        return 1.0 / CBIG, q
    if km > 0.0:
        hgrad = 2.0 * km * abs(q)
        if hgrad < RQTOL:
            hgrad = RQTOL / 2.0
            hloss = q * hgrad
        else:
            hloss = q * hgrad / 2.0
        return 1.0 / hgrad, hloss / hgrad
    return 1.0 / CSMALL, q


def emitter(ke, qexp, q, backflow):
    """emitterheadloss() with exponent 2 (q = C p^0.5, the fast paths' case): (head loss, gradient)."""
    ke = max(CSMALL, ke)
    hgrad = qexp * ke * abs(q)   # qexp is 2: |q|^(qexp-1) = |q|
    if hgrad < RQTOL:
        hgrad = RQTOL / qexp
        hloss = hgrad * q
    else:
        hloss = hgrad * q / qexp
    if not backflow:
        # EMITTER BACKFLOW NO: a smooth barrier that stops flow into the network.
        a = 1.0e9 * q
        b = math.sqrt(a * a + 1.0e-6)
        hloss = hloss + (a - b) / 2.0
        hgrad = hgrad + (1.0e9 / 2.0) * (1.0 - a / b)
    return hloss, hgrad


def pipe_leak_target(p, cfa, cva):
    """leakagehasconverged()'s reference: the pipe-leakage flow (cfs) the junction's pressure p (ft)
    calls for, from the inverted fixed- and variable-area coefficients; 0 at no pressure."""
    q = 0.0
    if p > 0.0:
        if cfa > 0.0:
            q = math.sqrt(p / cfa)
        if cva > 0.0:
            q += math.pow(p / cva, 1.5)
    return q


def pipe_leak(q, c, n_inv, q_pow):
    """leakage.c eval_leak_headloss() with its lower barrier: (head loss, gradient) of a junction's
    fixed-area (n_inv 2) or variable-area (n_inv 2/3) pipe leakage; 0, 0 where it has none.
    q_pow = |q|^(1/n - 1), taken by the caller (numpy on the CPU, as the reference path takes it)."""
    if c == 0.0:
        return 0.0, 0.0
    grad = n_inv * c * q_pow
    loss = grad * q / n_inv
    a = 1.0e9 * q
    b = math.sqrt(a * a + 1.0e-6)
    return loss + (a - b) / 2.0, grad + (1.0e9 / 2.0) * (1.0 - a / b)
