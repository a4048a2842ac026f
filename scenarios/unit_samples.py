"""Unit samples: rows [start, stop) of an n-point design in [0, 1)^dims, drawn without drawing the others.

A study samples its scenarios a chunk at a time (`scenarios.samplers.SampledBatch`), so the design must give
row i the same values whichever chunk asks for it, and a chunk must cost memory and time in proportion to its
own size, not to n:

* `mc`: independent uniforms. Row i comes from the random stream of its block of MC_BLOCK rows, seeded by
  (seed, block) with numpy's SeedSequence spawn keys; it depends on the seed and i alone.
* `lhs`: Latin hypercube, (perm_d(i) + u) / n in dimension d. perm_d is a keyed pseudo-random permutation
  of 0 .. n-1 (a Feistel network, cycle-walked into range) evaluated at i alone, so every one of the n
  equal bins of every dimension still holds exactly one point; u is row i's own uniform, from a stream
  seeded as for `mc` but apart from it.
* `sobol`: scrambled Sobol' points start .. stop-1 of scipy's sequence (fast-forwarded to `start`), the
  points the whole design would have there: a chunk is the slice of the whole.

The numbers are reproducible for the same numpy and scipy versions.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
from scipy.stats import qmc

from parktwin.scenarios.spec_errors import SAMPLERS
from parktwin.scenarios.spec_errors import check as _check

MC_BLOCK = 256                 # rows per random stream: small, so a small chunk draws little it does not use
_FEISTEL_ROUNDS = 6
# SeedSequence spawn keys: the uniform streams of mc, the jitter streams of lhs, lhs's permutation keys.
_MC_STREAM, _LHS_JITTER, _LHS_KEYS = 0, 1, 2
# scipy 1.15 renamed qmc's `seed` to `rng`; a Generator passed either way gives the same stream.
_QMC_RNG = "rng" if "rng" in inspect.signature(qmc.Sobol).parameters else "seed"
_BELOW_ONE = np.nextafter(1.0, 0.0)


def sample_unit(sampler: str, n: int, dims: int, seed: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows [start, stop) (all by default) of an n-point design in [0, 1)^dims: `mc` (independent
    uniforms), `lhs` (each of n equal bins of every dimension holds exactly one of the n points) or
    `sobol` (scrambled; n need not be a power of two)."""
    _check(sampler in SAMPLERS, "sampler", f"unknown sampler {sampler!r} (valid: {', '.join(SAMPLERS)})")
    if n < 1 or dims < 0:
        raise ValueError(f"need n >= 1 and dims >= 0, got n={n}, dims={dims}")
    start, stop, _ = slice(start, stop).indices(n)
    stop = max(start, stop)
    if dims == 0 or stop == start:
        return np.zeros((stop - start, dims))
    if sampler == "mc":
        return _uniform_rows(seed, _MC_STREAM, start, stop, dims)
    if sampler == "lhs":
        keys = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LHS_KEYS,))).integers(
            0, np.iinfo(np.uint64).max, (dims, _FEISTEL_ROUNDS), dtype=np.uint64, endpoint=True)
        strata = _permutation(np.arange(start, stop), n, keys)
        unit = (strata + _uniform_rows(seed, _LHS_JITTER, start, stop, dims)) / n
    else:
        engine = qmc.Sobol(dims, scramble=True, **{_QMC_RNG: np.random.default_rng(seed)})
        if start:                  # scipy's fast_forward(0) fails
            engine.fast_forward(start)
        with warnings.catch_warnings():
            # A slice of the sequence is what it is; the balance of the whole design is the caller's choice.
            warnings.filterwarnings("ignore", message="The balance properties of Sobol' points", category=UserWarning)
            unit = engine.random(stop - start)
    # (k + u)/n rounds to 1.0 when u is within an ulp of 1; inverse CDFs need u < 1.
    return np.minimum(unit, _BELOW_ONE)


def _uniform_rows(seed: int, stream: int, start: int, stop: int, dims: int) -> np.ndarray:
    """Rows [start, stop) of the uniforms of `stream`: block b holds rows b*MC_BLOCK onwards, drawn from
    its own generator, so a row's values do not depend on which other rows are drawn."""
    parts = []
    for block in range(start // MC_BLOCK, (stop - 1) // MC_BLOCK + 1):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, block)))
        first = block * MC_BLOCK
        rows = rng.random((MC_BLOCK, dims))
        parts.append(rows[max(start - first, 0): min(stop - first, MC_BLOCK)])
    return np.concatenate(parts)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of 64-bit words (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _permutation(rows: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """perm_d(i) for every row i and dimension d: [len(rows), dims] positions in 0 .. n-1.

    A balanced Feistel network on 2h bits (2^2h >= n) is a bijection of 0 .. 2^2h - 1 for any round keys;
    applied again to a value >= n until it falls below n (cycle walking: at most 4 applications on
    average, since 2^2h < 4n) it is a bijection of 0 .. n-1."""
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask, shift = np.uint64((1 << half) - 1), np.uint64(half)
    value = np.repeat(rows.astype(np.uint64), keys.shape[0])
    key = np.tile(np.arange(keys.shape[0]), len(rows))
    todo = np.arange(len(value))
    while len(todo):
        left, right = value[todo] >> shift, value[todo] & mask
        for r in range(keys.shape[1]):
            left, right = right, left ^ (_mix(right ^ keys[key[todo], r]) & mask)
        value[todo] = (left << shift) | right
        todo = todo[value[todo] >= np.uint64(n)]
    return value.reshape(len(rows), keys.shape[0]).astype(np.int64)
