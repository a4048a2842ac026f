"""x**a for x >= 0 in plain arithmetic, so that numba vectorises it inside the fused CPU kernel.

The head-loss law needs |q|^0.852 for every pipe and scenario at every trial. libm's pow is a call that
stops LLVM from vectorising the loop around it (about 15 ns an element here), and numpy's SIMD pow can only
run outside the kernel, as a pass over the whole batch per trial. This one is branch-free (selects only):
exponent and mantissa from the bits, ln(m) from the atanh series on [sqrt(1/2), sqrt(2)), the exponent's
product with `a` split so its rounding does not reach the result (Dekker), exp(r) by Taylor on
|r| <= ln(2)/2, and 2^k from the bits. tests/test_powers.py measures it against numpy: within 2 units in
the last place for the exponents the solver takes (|a| <= 1), 3 for larger ones, and exact for a == 1,
x == 0, inf and NaN. `pow_nonneg_array` is the same arithmetic over numpy arrays, for the reference path.

Plain Python over numpy scalars: numba compiles it for the CPU (kernels.gga_laws); nothing here runs on
the device, whose kernels keep CUDA's pow.
"""
from __future__ import annotations

import math

import numpy as np

_LN2_HI = 0.6931471803691238          # ln 2 rounded to 33 bits: d * _LN2_HI is exact for |d| < 2^20
_LN2_LO = 1.9082149292705877e-10      # ln 2 - _LN2_HI
_INV_LN2 = 1.0 / math.log(2.0)
_SQRT2_BITS = int(np.float64(math.sqrt(2.0)).view(np.int64))
_SMALLEST_NORMAL = 2.2250738585072014e-308
_TWO_54 = 18014398509481984.0          # scales a subnormal x into the normal range


def split(a: float) -> tuple[float, float]:
    """Dekker's split of a into a_hi (26 significant bits, so a_hi * e is exact for |e| < 2^27) + a_lo."""
    c = 134217729.0 * a                 # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


def pow_nonneg(x, a, a_hi, a_lo):
    """x**a for x >= 0 (NaN and inf pass through), with (a_hi, a_lo) = split(a)."""
    sub = x < _SMALLEST_NORMAL
    xs = x * _TWO_54 if sub else x
    bits = np.float64(xs).view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023 - (54 if sub else 0)
    mant = (bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000      # m in [1, 2)
    big = mant > _SQRT2_BITS
    mant = mant - (0x0010000000000000 if big else 0)            # m in [sqrt(1/2), sqrt(2))
    e = e + (1 if big else 0)
    m = np.int64(mant).view(np.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s                                                   # z <= 0.0295: 11 terms reach 1e-17
    t = 1.0 / 23.0
    t = t * z + 1.0 / 21.0
    t = t * z + 1.0 / 19.0
    t = t * z + 1.0 / 17.0
    t = t * z + 1.0 / 15.0
    t = t * z + 1.0 / 13.0
    t = t * z + 1.0 / 11.0
    t = t * z + 1.0 / 9.0
    t = t * z + 1.0 / 7.0
    t = t * z + 1.0 / 5.0
    t = t * z + 1.0 / 3.0
    ln_m = 2.0 * s + 2.0 * s * (z * t)
    ef = float(e)
    a_ln_m = a * ln_m
    # y = a ln x = (a e) ln 2 + a ln m = k ln 2 + r with k an integer and |r| <= ln(2)/2; a_hi * e - k
    # is exact, so r carries only the roundings of a ln m and of the products with ln 2.
    k_exact = math.floor(a * ef + a_ln_m * _INV_LN2 + 0.5)
    k = min(max(k_exact, -1100), 1100)  # beyond these the power under- or overflows (set below)
    d = (a_hi * ef - k) + a_lo * ef
    r = d * _LN2_HI + (d * _LN2_LO + a_ln_m)
    p = 1.0 / 6227020800.0                                      # 1/13!: |r|^14/14! < 5e-18
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2^k as two factors so that k down to the subnormal range and up to overflow stays representable
    ki = np.int64(k)
    k1 = ki >> 1
    k2 = ki - k1
    out = p * np.int64((k1 + 1023) << 52).view(np.float64) * np.int64((k2 + 1023) << 52).view(np.float64)
    at_zero = 0.0 if a > 0.0 else (1.0 if a == 0.0 else np.inf)
    at_inf = np.inf if a > 0.0 else (1.0 if a == 0.0 else 0.0)
    out = 0.0 if k_exact < -1100 else (np.inf if k_exact > 1100 else out)
    out = at_zero if x == 0.0 else out
    out = at_inf if x == np.inf else out
    out = x if a == 1.0 else out
    out = out if x == x else x          # NaN stays NaN
    return 1.0 if a == 0.0 else out


def pow_nonneg_array(x: np.ndarray, a: float) -> np.ndarray:
    """pow_nonneg() over a numpy array, operation for operation, so the reference path's powers are the
    fused kernel's to the last bit (x >= 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _pow_array(np.asarray(x, dtype=np.float64), float(a))


def _pow_array(x: np.ndarray, a: float) -> np.ndarray:
    a_hi, a_lo = split(a)
    sub = x < _SMALLEST_NORMAL
    bits = np.where(sub, x * _TWO_54, x).view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023 - np.where(sub, 54, 0)
    mant = (bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
    big = mant > _SQRT2_BITS
    mant = mant - np.where(big, 0x0010000000000000, 0)
    e = e + np.where(big, 1, 0)
    m = mant.view(np.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    t = np.full_like(z, 1.0 / 23.0)
    for c in (21.0, 19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0):
        t = t * z + 1.0 / c
    ln_m = 2.0 * s + 2.0 * s * (z * t)
    ef = e.astype(np.float64)
    a_ln_m = a * ln_m
    k_exact = np.floor(a * ef + a_ln_m * _INV_LN2 + 0.5)
    k = np.clip(k_exact, -1100, 1100)
    d = (a_hi * ef - k) + a_lo * ef
    r = d * _LN2_HI + (d * _LN2_LO + a_ln_m)
    p = np.full_like(r, 1.0 / 6227020800.0)
    for c in (479001600.0, 39916800.0, 3628800.0, 362880.0, 40320.0, 5040.0, 720.0, 120.0, 24.0, 6.0):
        p = p * r + 1.0 / c
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    ki = k.astype(np.int64)
    k1 = ki >> 1
    k2 = ki - k1
    out = p * ((k1 + 1023) << 52).view(np.float64) * ((k2 + 1023) << 52).view(np.float64)
    at_zero = 0.0 if a > 0.0 else (1.0 if a == 0.0 else np.inf)
    at_inf = np.inf if a > 0.0 else (1.0 if a == 0.0 else 0.0)
    out = np.where(k_exact < -1100, 0.0, np.where(k_exact > 1100, np.inf, out))
    out = np.where(x == 0.0, at_zero, out)
    out = np.where(x == np.inf, at_inf, out)
    if a == 1.0:
        out = x.copy()
    out = np.where(x == x, out, x)
    return np.ones_like(x) if a == 0.0 else out
