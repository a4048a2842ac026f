"""kernels.powers: the vectorisable x**a of the fused kernel against numpy's pow, and its numpy twin
against the compiled one bit for bit (the numba and numpy backends agree to the last bit through them)."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from parktwin.kernels.powers import pow_nonneg, pow_nonneg_array, split

_pow = numba.njit(error_model="numpy")(pow_nonneg)
_split = numba.njit(split)


@numba.njit(error_model="numpy")
def _compiled(x, a, out):
    a_hi, a_lo = _split(a)
    for i in range(x.shape[0]):
        out[i] = _pow(x[i], a, a_hi, a_lo)


def _arguments():
    rng = np.random.default_rng(5)
    return np.concatenate([
        np.exp(rng.uniform(-30.0, 12.0, 200_000)),        # flows of a network, cfs, and far beyond
        np.exp(rng.uniform(-700.0, 700.0, 50_000)),       # the whole normal range
        [1.0, 2.0, 0.5, np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 3.0), 1e-310, 5e-324],   # subnormals
    ])


# (exponent, units in the last place allowed): the head-loss law's 0.852, pumps' n - 1 and 2 - n,
# pipe leakage's -1/3, and a larger one
@pytest.mark.parametrize("a, ulps", [(0.852, 2), (0.15, 2), (2.0 / 3.0 - 1.0, 2),
                                     (0.2, 2), (-0.5, 2), (1.35, 3), (2.5, 3)])
def test_within_a_few_units_in_the_last_place_of_numpy(a, ulps):
    x = _arguments()
    got = np.empty_like(x)
    _compiled(x, a, got)
    with np.errstate(all="ignore"):
        want = np.power(x, a)
    normal = np.isfinite(want) & (want >= np.finfo(float).tiny)
    err = np.abs(got[normal] - want[normal]) / np.spacing(want[normal])
    assert err.max() <= ulps, f"a={a}: {err.max()} ulp at x={x[normal][np.argmax(err)]!r}"
    np.testing.assert_array_equal(pow_nonneg_array(x, a), got)


def test_special_values_as_numpy():
    x = np.array([0.0, np.inf, np.nan, 1.0, 5e-324, 1e300])
    for a in (0.852, -1.0 / 3.0, 0.0, 1.0, 2.5, -2.5):
        got = np.empty_like(x)
        _compiled(x, a, got)
        with np.errstate(all="ignore"):
            want = np.power(x, a)
        np.testing.assert_array_equal(got, want, err_msg=f"a={a}")
        np.testing.assert_array_equal(pow_nonneg_array(x, a), want, err_msg=f"a={a} (array)")


def test_exact_for_the_exponent_one():
    """Chezy-Manning's |q|^(2-1) and fixed-area leakage's |q|^(2-1) are |q| itself, as numpy gives."""
    x = _arguments()
    got = np.empty_like(x)
    _compiled(x, 1.0, got)
    np.testing.assert_array_equal(got, x)
