"""Quantiles read from integer histograms: shared by the pressure statistics (scenarios.statistics) and the
water-quality statistics (scenarios.quality_statistics), which the pressure statistics hold."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def histogram_quantiles(out, quantiles, edges, n_valid, hist, lo, hi) -> None:
    """Fill out [Q, T, N] with the order statistic of rank ceil(q*n) (numpy's 'inverted_cdf', q read as the
    decimal it prints as) of each time's counts hist [T, N, bins] (bins below edges[0], between the edges,
    above edges[-1]), located to its bin narrowed to [lo, hi] and reported at the middle; times without
    valid values are left as they are."""
    lower = np.concatenate(([-np.inf], edges))     # slot j covers [lower[j], upper[j])
    upper = np.concatenate((edges, [np.inf]))
    for k in range(len(n_valid)):
        count = int(n_valid[k])
        if count == 0:
            continue
        cum = np.cumsum(hist[k], axis=1, dtype=np.int64)
        lo_v, hi_v = lo[k], hi[k]
        for i, q in enumerate(quantiles):
            rank = max(1, math.ceil(Fraction(repr(q)) * count))   # exact: no float rounding of q*n
            slot = np.argmax(cum >= rank, axis=1)
            a, b = np.maximum(lower[slot], lo_v), np.minimum(upper[slot], hi_v)
            out[i, k] = np.clip((a + b) / 2.0, lo_v, hi_v)
