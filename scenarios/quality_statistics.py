"""Running statistics of node water quality over scenarios, for `--store summary` (issue 14).

The same scheme as scenarios.statistics (whose SummaryAccumulator holds one of these when the run records
quality): every value is rounded once to an integer number of resolution units and integers are summed
as two int64 words, min and max compare floats exactly, quantiles come from integer histograms with
fixed bins from 0 (quality is never negative) to `quality_hist_high`, so the state depends only on which
scenarios were added, never on chunking or order. Units are the run's quality units (root attribute
quality_units: mg/L, hours, percent).
"""
from __future__ import annotations

import numpy as np

from parktwin.scenarios.histograms import histogram_quantiles

_LOW_BITS = 32
_LOW_MASK = (1 << _LOW_BITS) - 1
MAX_UNITS = 2.0**62
PREFIX = "quality_"
_COUNT_NAMES = ("n_valid", "above", "hist")


class QualityAccumulator:
    """Node quality [T, N]: count, min, max, sum, count above the limit, histogram."""

    def __init__(self, n_times: int, n_nodes: int, options):
        self.dims = (int(n_times), int(n_nodes))
        self.options = options
        t, n = self.dims
        self.scale = int(round(1.0 / options.quality_resolution))
        self.n_bins = int(round(options.quality_hist_high / options.quality_bin))
        hist_width = self.n_bins + 2 if options.quantiles else 0
        self._s = {
            "n_valid": np.zeros(t, np.int64), "above": np.zeros((t, n), np.int64),
            "hist": np.zeros((t, n, hist_width), np.uint32),
            "sum_hi": np.zeros((t, n), np.int64), "sum_lo": np.zeros((t, n), np.int64),
            "min": np.full((t, n), np.inf), "max": np.full((t, n), -np.inf),
        }

    def add(self, quality: np.ndarray, ok: np.ndarray) -> None:
        """quality [b, T, N] of the chunk's newly counted scenarios, ok [b, T] their converged, unfailed times;
        a time whose values are not all finite is left out (like SummaryAccumulator's invalid times)."""
        s, o = self._s, self.options
        for k in range(self.dims[0]):
            q = np.asarray(quality[ok[:, k], k], np.float64) + 0.0
            if len(q) == 0:
                continue
            units = q * float(self.scale)
            good = (np.abs(units) <= MAX_UNITS).all(axis=1)
            q, units = q[good], np.rint(units[good]).astype(np.int64)
            if len(q) == 0:
                continue
            s["n_valid"][k] += len(q)
            s["min"][k] = np.minimum(s["min"][k], q.min(axis=0))
            s["max"][k] = np.maximum(s["max"][k], q.max(axis=0))
            if o.quality_limit is not None:
                s["above"][k] += (q > o.quality_limit).sum(axis=0)
            s["sum_lo"][k] += (units & _LOW_MASK).sum(axis=0)
            s["sum_hi"][k] += (units >> _LOW_BITS).sum(axis=0)
            s["sum_hi"][k] += s["sum_lo"][k] >> _LOW_BITS
            s["sum_lo"][k] &= _LOW_MASK
            if o.quantiles:
                width = int(round(o.quality_bin * self.scale))
                slots = np.clip(units // width + 1, 0, self.n_bins + 1)
                hist = s["hist"][k]
                keys = (slots + np.arange(q.shape[1]) * hist.shape[1]).ravel()
                flat = hist.reshape(-1)
                np.add(flat, np.bincount(keys, minlength=flat.size), out=flat, casting="unsafe")

    def merge(self, other: "QualityAccumulator") -> None:
        s, os_ = self._s, other._s
        for name in ("n_valid", "above", "hist", "sum_hi", "sum_lo"):
            np.add(s[name], os_[name], out=s[name], casting="unsafe")
        s["sum_hi"] += s["sum_lo"] >> _LOW_BITS
        s["sum_lo"] &= _LOW_MASK
        np.minimum(s["min"], os_["min"], out=s["min"])
        np.maximum(s["max"], os_["max"], out=s["max"])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {PREFIX + name: np.array(v) for name, v in self._s.items()}

    @staticmethod
    def present(arrays: dict) -> bool:
        return PREFIX + "n_valid" in arrays

    def load(self, arrays: dict) -> None:
        for name, current in self._s.items():
            value = np.asarray(arrays[PREFIX + name])
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(f"state array {PREFIX + name!r}: {value.dtype}{value.shape}, expected "
                                 f"{current.dtype}{current.shape}")
            self._s[name] = value.copy()

    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._s.values())

    def finalize(self) -> dict[str, np.ndarray]:
        """quality_min, _max, _mean [T, N], quality_quantiles [Q, T, N] and, with a limit,
        quality_above_limit_prob [T, N]; NaN where no scenario counted at that time."""
        s = self._s
        n = s["n_valid"].astype(np.float64)[:, None]
        none = n == 0
        total = s["sum_hi"].astype(np.float64) * 2.0**_LOW_BITS + s["sum_lo"]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {"quality_min": np.where(none, np.nan, s["min"]), "quality_max": np.where(none, np.nan, s["max"]),
                   "quality_mean": np.where(none, np.nan, total / n / self.scale),
                   "quality_quantiles": self._quantiles()}
            if self.options.quality_limit is not None:
                out["quality_above_limit_prob"] = np.where(none, np.nan, s["above"] / n)
        return out

    def _quantiles(self) -> np.ndarray:
        """The order statistic of rank ceil(q*n), located to its histogram bin narrowed to [min, max] and
        reported at the middle (as SummaryAccumulator's pressure quantiles)."""
        o, s = self.options, self._s
        t, n = self.dims
        out = np.full((len(o.quantiles), t, n), np.nan)
        if not o.quantiles:
            return out
        edges = np.arange(self.n_bins + 1) * o.quality_bin
        histogram_quantiles(out, o.quantiles, edges, s["n_valid"], s["hist"], s["min"], s["max"])
        return out
