"""Running statistics over scenarios, bit-identical whatever the chunking, the workers or the arrival order.

    acc = SummaryAccumulator(n_times, n_nodes, n_links, SummaryOptions(), n_junctions=net.n_junctions)
    acc.add(results, rows)                  # any chunk, any order, any number of times
    acc.merge(other_worker_acc)             # associative and commutative
    stats = acc.finalize(diameter_m=net.diameter_m)

Floating-point sums depend on the order of their terms, so nothing here adds floats: every value is rounded
once to an integer number of resolution units (1e-6 m, 1e-9 m3/s by default) and integers are summed, as
two int64 words (hi * 2**32 + lo, 0 <= lo < 2**32) because one could overflow (1e9 scenarios x 10 m3/s is
1e19 units > 2**63); min and max compare floats exactly; quantiles come from integer histograms with fixed
bins. All are associative and commutative, so the state depends only on which scenarios were added.
docs/summary.md gives every definition, unit, resolution and bound.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from parktwin.hydraulics.results import ResultSet
from parktwin.scenarios.histograms import histogram_quantiles
from parktwin.scenarios.quality_statistics import QualityAccumulator

MAX_SCENARIOS = 2**32 - 1      # histogram counts are uint32 and the two-word sums are sized for this
MAX_UNITS = 2.0**62            # larger |value| in resolution units is not physical: the time is invalid
MAX_BINS = 10_000_000
_LOW_BITS = 32
_LOW_MASK = (1 << _LOW_BITS) - 1
_SUMS = ("pressure_sum", "leak_sum", "unserved_sum", "flow_sum", "flow_abs_sum")
_COUNTS = ("n_scenarios", "n_failed", "n_converged", "duplicates_ignored", "n_valid", "n_unconverged",
           "n_invalid", "pressure_below", "pressure_hist")
_MINS = ("pressure_min", "flow_min")
_MAXS = ("pressure_max", "leak_max", "flow_max")


def _integral(value: float, what: str) -> int:
    """`value` as an int, or a ValueError naming `what`: bins must fall on the fixed-point grid."""
    near = round(value) if math.isfinite(value) else 0
    if not math.isfinite(value) or abs(value - near) > 1e-9 * max(1.0, abs(value)):
        raise ValueError(what)
    return int(near)


@dataclass(frozen=True)
class SummaryOptions:
    quantiles: tuple[float, ...] = (0.05, 0.5, 0.95)
    service_pressure_m: float = 10.0
    pressure_hist_low_m: float = -50.0
    pressure_hist_high_m: float = 250.0
    pressure_bin_m: float = 0.05
    pressure_resolution_m: float = 1e-6
    flow_resolution_m3s: float = 1e-9
    # node water quality (runs that record it; scenarios.quality_statistics), in the run's quality units
    quality_limit: float | None = None      # quality_above_limit_prob: the share of scenarios above it
    quality_hist_high: float = 100.0        # histogram from 0 to here (quantiles above it are clipped to max)
    quality_bin: float = 0.05
    quality_resolution: float = 1e-6

    def __post_init__(self):
        q = tuple(float(v) for v in np.atleast_1d(np.asarray(self.quantiles, dtype=float)))
        if not all(0.0 < v < 1.0 for v in q):
            raise ValueError(f"SummaryOptions.quantiles: every level must lie in (0, 1), got {q}")
        object.__setattr__(self, "quantiles", q)
        for name in ("service_pressure_m", "pressure_hist_low_m", "pressure_hist_high_m"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"SummaryOptions.{name} must be finite")
        if self.quality_limit is not None and not math.isfinite(self.quality_limit):
            raise ValueError("SummaryOptions.quality_limit must be finite or None")
        for name in ("pressure_bin_m", "pressure_resolution_m", "flow_resolution_m3s", "quality_hist_high",
                     "quality_bin", "quality_resolution"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SummaryOptions.{name} must be positive, got {value}")
            if name.endswith("resolution_m3s") or name.endswith("resolution_m") or name == "quality_resolution":
                # the fixed-point scale (units per unit) must be an integer
                _integral(1.0 / value, f"SummaryOptions.{name} must be 1/integer (1e-6, 1e-3, ...), got {value}")
        if self.pressure_hist_high_m <= self.pressure_hist_low_m:
            raise ValueError("SummaryOptions.pressure_hist_high_m must exceed pressure_hist_low_m")
        self.histogram_units()   # raises for bins off the grid or too many

    @property
    def pressure_scale(self) -> int:
        """Fixed-point units per metre."""
        return int(round(1.0 / self.pressure_resolution_m))

    @property
    def flow_scale(self) -> int:
        """Fixed-point units per m3/s."""
        return int(round(1.0 / self.flow_resolution_m3s))

    def histogram_units(self) -> tuple[int, int, int]:
        """(low edge, bin width, number of bins) in pressure units: binning is integer arithmetic."""
        s = self.pressure_scale
        res = f"a multiple of pressure_resolution_m ({self.pressure_resolution_m})"
        width = _integral(self.pressure_bin_m * s, f"SummaryOptions.pressure_bin_m must be {res}")
        low = _integral(self.pressure_hist_low_m * s, f"SummaryOptions.pressure_hist_low_m must be {res}")
        high = _integral(self.pressure_hist_high_m * s, f"SummaryOptions.pressure_hist_high_m must be {res}")
        if (high - low) % width:
            raise ValueError("SummaryOptions.pressure_bin_m must divide pressure_hist_high_m - pressure_hist_low_m")
        n_bins = (high - low) // width
        if n_bins > MAX_BINS:
            raise ValueError(f"SummaryOptions.pressure_bin_m gives {n_bins} bins, more than {MAX_BINS}")
        return low, width, n_bins

    def to_json(self) -> str:
        # Python's float repr round-trips exactly, so options survive a save/load bit for bit.
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "SummaryOptions":
        values = json.loads(text)
        values["quantiles"] = tuple(values["quantiles"])
        return SummaryOptions(**values)

    def quality_bins(self) -> int:
        _integral(self.quality_bin / self.quality_resolution,
                  f"SummaryOptions.quality_bin must be a multiple of quality_resolution ({self.quality_resolution})")
        return _integral(self.quality_hist_high / self.quality_bin,
                         "SummaryOptions.quality_bin must divide quality_hist_high")


def _quantise(x: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(int64 units, row ok) for x [k, E]: a row is ok when every value is finite and within MAX_UNITS."""
    y = x * float(scale)
    ok = np.abs(y) <= MAX_UNITS                  # False for NaN and inf as well
    if not ok.all():
        y[~ok] = 0.0                             # keeps the cast defined; those rows are dropped anyway
    return np.rint(y, out=y).astype(np.int64), ok.all(axis=1)


def _rows(rows, batch: int) -> np.ndarray:
    idx = np.arange(rows.stop)[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
    if idx.ndim != 1 or len(idx) != batch:
        raise ValueError(f"rows must be {batch} scenario indices, one per result, got shape {idx.shape}")
    if len(idx) and (idx.min() < 0 or idx.max() > MAX_SCENARIOS - 1):
        raise ValueError(f"scenario indices must lie in 0..{MAX_SCENARIOS - 1}")
    return idx


class SummaryAccumulator:
    """Integer state of running statistics per (time, node) and (time, link); see the module docstring.

    Nodes are junctions first (NetworkArrays' order): `n_junctions` (default: every node) bounds the nodes
    where the service-pressure probability and unserved demand mean something.
    """

    def __init__(self, n_times: int, n_nodes: int, n_links: int, options: SummaryOptions = SummaryOptions(),
                 *, n_junctions: int | None = None, quality: bool = False):
        if not isinstance(options, SummaryOptions):
            raise TypeError("options must be a SummaryOptions")
        t, n, l = int(n_times), int(n_nodes), int(n_links)
        nj = n if n_junctions is None else int(n_junctions)
        if min(t, n, l) < 0 or not 0 <= nj <= n:
            raise ValueError(f"bad dimensions: times {t}, nodes {n}, links {l}, junctions {nj}")
        self.dims = (t, n, l, nj)
        self.options = options
        _, _, n_bins = options.histogram_units()
        hist_width = n_bins + 2 if options.quantiles else 0    # + underflow and overflow counts
        i64 = lambda *shape: np.zeros(shape, np.int64)  # noqa: E731
        s = {name: i64() for name in ("n_scenarios", "n_failed", "n_converged", "duplicates_ignored")}
        s.update({name: i64(t) for name in ("n_valid", "n_unconverged", "n_invalid")})
        s["pressure_below"] = i64(t, n)
        s["pressure_hist"] = np.zeros((t, n, hist_width), np.uint32)
        for name in _SUMS:
            width = l if name.startswith("flow") else n
            s[name + "_hi"], s[name + "_lo"] = i64(t, width), i64(t, width)
        for name in _MINS + _MAXS:
            s[name] = np.full((t, l if name.startswith("flow") else n), np.inf if name in _MINS else -np.inf)
        self._s = s
        # Counted scenarios, one bit each, capacity grown by doubling; `_top` is the highest index set,
        # so to_arrays can trim to a length that depends only on the set (not on the growth history).
        self._bits = np.zeros(0, np.uint8)
        self._top = -1
        self.quality = None
        if quality:
            options.quality_bins()
            self.quality = QualityAccumulator(t, n, options)

    # ------------------------------------------------------------------ counted scenarios
    def _grow(self, top: int) -> None:
        need = top // 8 + 1
        if need > len(self._bits):
            bits = np.zeros(max(need, 2 * len(self._bits)), np.uint8)
            bits[: len(self._bits)] = self._bits
            self._bits = bits

    def _claim(self, rows: np.ndarray) -> np.ndarray:
        """Mark rows counted; return which of them are new (first occurrence, not counted before)."""
        fresh = np.zeros(len(rows), bool)
        if len(rows) == 0:
            return fresh
        fresh[np.unique(rows, return_index=True)[1]] = True
        self._grow(int(rows.max()))
        seen = (self._bits[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1
        fresh &= seen == 0
        new = rows[fresh]
        np.bitwise_or.at(self._bits, new >> 3, (1 << (new & 7)).astype(np.uint8))
        if len(new):
            self._top = max(self._top, int(new.max()))
        self._s["duplicates_ignored"] += len(rows) - len(new)
        return fresh

    def counted_mask(self, n_scenarios: int) -> np.ndarray:
        """Bool [n_scenarios]: which scenario indices are counted."""
        bits = np.zeros((n_scenarios + 7) // 8, np.uint8)
        k = min(len(bits), len(self._bits))
        bits[:k] = self._bits[:k]
        return np.unpackbits(bits, bitorder="little")[:n_scenarios].astype(bool)

    @property
    def n_scenarios(self) -> int:
        return int(self._s["n_scenarios"])

    @property
    def duplicates_ignored(self) -> int:
        return int(self._s["duplicates_ignored"])

    # ------------------------------------------------------------------ adding
    def add(self, results: ResultSet, rows, required_demand_m3s: np.ndarray | None = None) -> np.ndarray:
        """Count one chunk. `rows` are the scenarios' indices (a slice or ints), used only to ignore
        scenarios already counted. `required_demand_m3s` [B, T, N]: the demand asked for (only junction
        columns are read); unserved = max(required - delivered, 0). None (demand-driven runs, where
        delivered = required) counts unserved as 0. Returns the bool mask of rows counted by this call."""
        t, n, l, nj = self.dims
        b = results.batch_size
        for name, width in (("pressure_m", n), ("leak_m3s", n), ("demand_m3s", n), ("flow_m3s", l)):
            if getattr(results, name).shape != (b, t, width):
                raise ValueError(f"results.{name} has shape {getattr(results, name).shape}, not {(b, t, width)}")
        if np.shape(results.converged) != (b, t) or len(results.failure) != b:
            raise ValueError("results.converged must be [B, T] and results.failure [B]")
        if required_demand_m3s is not None and np.shape(required_demand_m3s) != (b, t, n):
            raise ValueError(f"required_demand_m3s has shape {np.shape(required_demand_m3s)}, not {(b, t, n)}")
        fresh = self._claim(_rows(rows, b))
        local = np.flatnonzero(fresh)
        if len(local) == 0:
            return fresh
        s = self._s
        failed = np.asarray([str(v) != "" for v in np.asarray(results.failure, dtype=object)[local]], bool)
        converged = np.asarray(results.converged, bool)[local]
        ok = converged & ~failed[:, None]
        s["n_scenarios"] += len(local)
        s["n_failed"] += int(failed.sum())
        s["n_converged"] += int(ok.all(axis=1).sum())
        s["n_unconverged"] += (~converged & ~failed[:, None]).sum(axis=0)
        for k in range(t):
            sel = local[ok[:, k]]
            if len(sel):
                self._add_time(k, sel, results, required_demand_m3s)
        if self.quality is not None and results.node_quality is not None:
            self.quality.add(results.node_quality[local], ok)
        return fresh

    def _add_time(self, k: int, sel: np.ndarray, res: ResultSet, required) -> None:
        nj = self.dims[3]
        s, o = self._s, self.options
        # + 0.0 turns -0.0 into +0.0: min/max of equal-comparing zeros would otherwise depend on order.
        take = lambda a, cols=slice(None): np.asarray(a[sel, k, cols], np.float64) + 0.0  # noqa: E731
        p, leak, flow = take(res.pressure_m), take(res.leak_m3s), take(res.flow_m3s)
        (qp, good), (ql, okl), (qf, okf) = (_quantise(x, sc) for x, sc in
                                            ((p, o.pressure_scale), (leak, o.flow_scale), (flow, o.flow_scale)))
        good &= okl & okf
        qu = None
        if required is not None:
            # NaN propagates through np.maximum, so a NaN requirement makes the time invalid, not 0.
            unserved = np.maximum(take(required, slice(0, nj)) - take(res.demand_m3s, slice(0, nj)), 0.0)
            qu, oku = _quantise(unserved, o.flow_scale)
            good &= oku
        s["n_invalid"][k] += int((~good).sum())
        if not good.all():
            p, leak, flow, qp, ql, qf = (a[good] for a in (p, leak, flow, qp, ql, qf))
            qu = None if qu is None else qu[good]
        if len(p) == 0:
            return
        s["n_valid"][k] += len(p)
        s["pressure_min"][k] = np.minimum(s["pressure_min"][k], p.min(axis=0))
        s["pressure_max"][k] = np.maximum(s["pressure_max"][k], p.max(axis=0))
        s["pressure_below"][k] += (p < o.service_pressure_m).sum(axis=0)
        s["leak_max"][k] = np.maximum(s["leak_max"][k], leak.max(axis=0))
        s["flow_min"][k] = np.minimum(s["flow_min"][k], flow.min(axis=0))
        s["flow_max"][k] = np.maximum(s["flow_max"][k], flow.max(axis=0))
        for name, q in (("pressure_sum", qp), ("leak_sum", ql), ("flow_sum", qf), ("flow_abs_sum", np.abs(qf))):
            self._add_units(name, k, q, slice(None))
        if qu is not None:
            self._add_units("unserved_sum", k, qu, slice(0, nj))
        if o.quantiles:
            self._add_histogram(k, qp)

    def _add_units(self, name: str, k: int, q: np.ndarray, cols: slice) -> None:
        # Each word's chunk sum is exact: lo parts are < 2**32 and a chunk has < 2**31 rows.
        hi, lo = self._s[name + "_hi"], self._s[name + "_lo"]
        lo[k, cols] += (q & _LOW_MASK).sum(axis=0)
        hi[k, cols] += (q >> _LOW_BITS).sum(axis=0)
        hi[k, cols] += lo[k, cols] >> _LOW_BITS
        lo[k, cols] &= _LOW_MASK

    def _add_histogram(self, k: int, qp: np.ndarray) -> None:
        low, width, n_bins = self.options.histogram_units()
        hist = self._s["pressure_hist"][k]            # [N, n_bins + 2], a view
        slots = np.clip((qp - low) // width + 1, 0, n_bins + 1)
        keys = (slots + np.arange(qp.shape[1]) * hist.shape[1]).ravel()
        flat = hist.reshape(-1)
        if keys.size * 8 < flat.size:
            # Few values against many bins: sorting the keys costs less than a dense count array.
            uniq, counts = np.unique(keys, return_counts=True)
            flat[uniq] += counts.astype(np.uint32)
        else:
            np.add(flat, np.bincount(keys, minlength=flat.size), out=flat, casting="unsafe")

    # ------------------------------------------------------------------ merging and saving
    def merge(self, other: "SummaryAccumulator") -> "SummaryAccumulator":
        """Add `other`'s scenarios to this one (in place; returns self). Their scenario sets must be
        disjoint: statistics cannot subtract a scenario counted by both, so an overlap raises."""
        if self.dims != other.dims or self.options != other.options:
            raise ValueError(f"cannot merge accumulators of other dimensions or SummaryOptions: {self.dims}, "
                             f"{other.dims}; {self.options}, {other.options}")
        self._grow(max(other._top, 0))
        ob = np.zeros(len(self._bits), np.uint8)
        ob[: min(len(ob), len(other._bits))] = other._bits[: len(ob)]
        if np.any(self._bits & ob):
            raise ValueError("accumulators share scenarios; merge needs disjoint scenario sets")
        self._bits |= ob
        self._top = max(self._top, other._top)
        s, os_ = self._s, other._s
        for name in _COUNTS + tuple(n + w for n in _SUMS for w in ("_hi", "_lo")):
            np.add(s[name], os_[name], out=s[name], casting="unsafe")
        for name in _SUMS:
            s[name + "_hi"] += s[name + "_lo"] >> _LOW_BITS
            s[name + "_lo"] &= _LOW_MASK
        for name in _MINS:
            np.minimum(s[name], os_[name], out=s[name])
        for name in _MAXS:
            np.maximum(s[name], os_[name], out=s[name])
        if (self.quality is None) != (other.quality is None):
            raise ValueError("cannot merge an accumulator with quality statistics and one without")
        if self.quality is not None:
            self.quality.merge(other.quality)
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole state as arrays (copies), canonical: equal sets of scenarios give equal bytes."""
        out = {name: np.array(v) for name, v in self._s.items()}
        out["counted"] = self._bits[: self._top // 8 + 1].copy() if self._top >= 0 else np.zeros(0, np.uint8)
        out["dims"] = np.asarray(self.dims, np.int64)
        out["options_json"] = np.frombuffer(self.options.to_json().encode(), np.uint8).copy()
        if self.quality is not None:
            out.update(self.quality.to_arrays())
        return out

    @staticmethod
    def from_arrays(arrays: dict) -> "SummaryAccumulator":
        """Rebuild from `to_arrays()` output (a longer zero-padded `counted` bitmap is accepted)."""
        options = SummaryOptions.from_json(np.asarray(arrays["options_json"], np.uint8).tobytes().decode())
        t, n, l, nj = (int(v) for v in np.asarray(arrays["dims"]))
        acc = SummaryAccumulator(t, n, l, options, n_junctions=nj, quality=QualityAccumulator.present(arrays))
        if acc.quality is not None:
            acc.quality.load(arrays)
        for name, current in acc._s.items():
            value = np.asarray(arrays[name])
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(f"state array {name!r}: {value.dtype}{value.shape}, expected "
                                 f"{current.dtype}{current.shape}")
            acc._s[name] = value.copy()
        bits = np.asarray(arrays["counted"], np.uint8)
        set_bits = np.flatnonzero(np.unpackbits(bits, bitorder="little"))
        acc._top = int(set_bits[-1]) if len(set_bits) else -1
        acc._bits = bits[: acc._top // 8 + 1].copy() if acc._top >= 0 else np.zeros(0, np.uint8)
        if len(set_bits) != acc.n_scenarios:
            raise ValueError(f"state is inconsistent: {len(set_bits)} scenarios marked, {acc.n_scenarios} counted")
        return acc

    # ------------------------------------------------------------------ results
    def _mean(self, name: str, scale: int) -> np.ndarray:
        n = self._s["n_valid"].astype(np.float64)[:, None]
        total = self._s[name + "_hi"].astype(np.float64) * 2.0**_LOW_BITS + self._s[name + "_lo"]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / n / scale, np.nan)

    def finalize(self, diameter_m: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Statistics as arrays (floats; counts as int64), NaN where no scenario counted at that time.
        `diameter_m` [L] (optional) adds mean |velocity|, NaN where the diameter is not positive (pumps)."""
        t, n, l, nj = self.dims
        s, o = self._s, self.options
        none = (s["n_valid"] == 0)[:, None]
        blank = lambda a: np.where(none, np.nan, a)  # noqa: E731
        junction = np.arange(n) < nj
        out = {
            "pressure_min": blank(s["pressure_min"]), "pressure_max": blank(s["pressure_max"]),
            "pressure_mean": self._mean("pressure_sum", o.pressure_scale),
            "pressure_quantiles": self._quantiles(), "quantile_levels": np.asarray(o.quantiles, np.float64),
            "leak_mean": self._mean("leak_sum", o.flow_scale), "leak_max": blank(s["leak_max"]),
            "flow_min": blank(s["flow_min"]), "flow_max": blank(s["flow_max"]),
            "flow_mean": self._mean("flow_sum", o.flow_scale),
            "flow_abs_mean": self._mean("flow_abs_sum", o.flow_scale),
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            prob = s["pressure_below"] / s["n_valid"][:, None].astype(np.float64)
        out["pressure_below_service_prob"] = np.where(junction & ~none, prob, np.nan)
        out["unserved_mean"] = np.where(junction, self._mean("unserved_sum", o.flow_scale), np.nan)
        if diameter_m is not None:
            d = np.asarray(diameter_m, np.float64)
            if d.shape != (l,):
                raise ValueError(f"diameter_m has shape {d.shape}, not {(l,)}")
            with np.errstate(invalid="ignore", divide="ignore"):
                area = np.where(d > 0, np.pi * d * d / 4.0, np.nan)
                out["velocity_abs_mean"] = out["flow_abs_mean"] / area
        hist = s["pressure_hist"] if o.quantiles else np.zeros((t, n, 1), np.uint32)
        out["pressure_hist_underflow"], out["pressure_hist_overflow"] = (hist[..., j].astype(np.int64) for j in (0, -1))
        out.update({name: np.array(s[name]) for name in _COUNTS[:7]})
        if self.quality is not None:
            out.update(self.quality.finalize())
        return out

    def _quantiles(self) -> np.ndarray:
        """[Q, T, N]: the order statistic of rank ceil(q*n) (numpy's 'inverted_cdf', q read as the decimal
        it prints as), located to its histogram bin narrowed to [min, max], reported at the middle."""
        t, n, _, _ = self.dims
        o, s = self.options, self._s
        out = np.full((len(o.quantiles), t, n), np.nan)
        if not o.quantiles:
            return out
        low, width, n_bins = o.histogram_units()
        scale = float(o.pressure_scale)
        edges = (low + width * np.arange(n_bins + 1)) / scale
        histogram_quantiles(out, o.quantiles, edges, s["n_valid"], s["pressure_hist"], s["pressure_min"],
                            s["pressure_max"])
        return out

    def nbytes(self) -> int:
        """Memory held by the state, bitmap included."""
        return sum(v.nbytes for v in self._s.values()) + self._bits.nbytes + \
            (self.quality.nbytes() if self.quality is not None else 0)
