"""Leak alarm and localisation from meter readings: is there a leak, and at which junction, how big?

A utility reads pressures at a few junctions and flows in a few pipes (the park's intake meter, say) and
asks the two questions of the water-efficiency plans: raise the alarm automatically, and say where to
send the crew. The batched solver answers with a model-based search, in three batches:

1. the no-leak case: the readings' χ² against it, χ² = Σ ((reading − model) / noise)²; the **alarm** is
   raised when that χ² exceeds the χ² distribution's `alarm_confidence` quantile for as many meters
   (the model without a leak is not consistent with the meters' noise);
2. one scenario per candidate junction with a reference orifice (`reference_area_m2`): each junction's
   signature, the change it makes at the meters per m³/s of leak. The readings' departure from the
   no-leak case is fitted by each signature with the best leak flow (weighted least squares, ≥ 0), a
   linearised χ² per candidate;
3. the `refine` best candidates solved again at the orifice area their fitted flow implies, times a few
   scales around it: the exact χ² of each, the best area kept.

Each candidate's probability is the posterior with a uniform prior and Gaussian meter noise,
P ∝ exp(−χ²/2), at its best area (exact where refined, linearised elsewhere). The network is taken in
its state at t = 0 with its own demands, or with `inputs` (e.g. the day's demand multiplier): a model
whose demands do not match the real network's points at the wrong place, as any model-based method does.
"""
from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions

QUANTITIES = {"pressure_m": "node", "flow_m3s": "link"}
DEFAULT_NOISE = {"pressure_m": 0.05, "flow_m3s": 1e-3}


@dataclass(frozen=True)
class Reading:
    element: str
    quantity: str          # one of QUANTITIES
    value: float           # SI: m of pressure, m³/s of flow
    noise: float           # the meter's standard deviation, SI


@dataclass(frozen=True)
class LocateOptions:
    reference_area_m2: float = 2e-4
    refine: int = 20
    area_scales: tuple[float, ...] = (0.7, 0.85, 1.0, 1.15, 1.3)
    candidates: tuple[str, ...] | None = None     # junction ids; None: every junction
    top: int = 10
    alarm_confidence: float = 0.999


@dataclass(frozen=True)
class Candidate:
    junction: str
    area_m2: float
    leak_m3s: float
    chi2: float
    probability: float


@dataclass(frozen=True)
class LeakLocation:
    alarm: bool
    chi2_no_leak: float
    chi2_alarm_threshold: float
    n_meters: int
    candidates: tuple[Candidate, ...]

    def as_dict(self) -> dict:
        return {"alarm": self.alarm, "chi2_no_leak": self.chi2_no_leak,
                "chi2_alarm_threshold": self.chi2_alarm_threshold, "n_meters": self.n_meters,
                "candidates": [asdict(c) for c in self.candidates]}


def read_readings(path) -> list[Reading]:
    """CSV `element,quantity,value[,noise]` (pressure_m in m, flow_m3s in m³/s); errors name file and row."""
    path = Path(path)
    out = []
    with path.open(newline="") as fh:
        rows = csv.DictReader(fh)
        missing = {"element", "quantity", "value"} - set(rows.fieldnames or ())
        if missing:
            raise ValueError(f"{path.name}: missing column(s) {', '.join(sorted(missing))} "
                             "(expected element,quantity,value[,noise])")
        for i, row in enumerate(rows, start=2):
            quantity = (row["quantity"] or "").strip()
            if quantity not in QUANTITIES:
                raise ValueError(f"{path.name}: row {i}: unknown quantity {quantity!r} "
                                 f"(valid: {', '.join(QUANTITIES)})")
            try:
                value = float(row["value"])
                noise = float(row["noise"]) if (row.get("noise") or "").strip() else DEFAULT_NOISE[quantity]
            except ValueError:
                raise ValueError(f"{path.name}: row {i}: value and noise must be numbers") from None
            if not (math.isfinite(value) and math.isfinite(noise) and noise > 0):
                raise ValueError(f"{path.name}: row {i}: value must be finite and noise > 0")
            out.append(Reading((row["element"] or "").strip(), quantity, value, noise))
    if not out:
        raise ValueError(f"{path.name}: no readings")
    return out


class _Meters:
    """The readings as index arrays, and the model's values at the meters for a result set."""

    def __init__(self, net: NetworkArrays, readings: list[Reading]):
        node, link = [], []
        for r in readings:
            if r.quantity not in QUANTITIES:
                raise ValueError(f"reading {r.element!r}: unknown quantity {r.quantity!r} "
                                 f"(valid: {', '.join(QUANTITIES)})")
            if not (math.isfinite(r.value) and math.isfinite(r.noise) and r.noise > 0):
                raise ValueError(f"reading {r.element!r}: value must be finite and noise > 0")
            kind = QUANTITIES[r.quantity]
            try:
                index = net.node_index(r.element) if kind == "node" else net.link_index(r.element)
            except KeyError:
                raise ValueError(f"reading {r.element!r}: {net.name} has no {kind} of that id") from None
            (node if kind == "node" else link).append(index)
        order = [r for r in readings if QUANTITIES[r.quantity] == "node"] + \
                [r for r in readings if QUANTITIES[r.quantity] == "link"]
        self.node, self.link = np.asarray(node, np.int64), np.asarray(link, np.int64)
        self.value = np.array([r.value for r in order])
        self.noise = np.array([r.noise for r in order])

    def model(self, res) -> np.ndarray:
        """[B, M] the model's readings; NaN where a scenario failed."""
        parts = [np.asarray(res.pressure_m[:, 0, self.node], float), np.asarray(res.flow_m3s[:, 0, self.link], float)]
        values = np.concatenate(parts, axis=1)
        failed = ~np.all(res.converged, axis=1) | (np.asarray(res.failure) != "")
        values[failed] = np.nan
        return values

    def chi2(self, model: np.ndarray) -> np.ndarray:
        chi2 = np.sum(((self.value[None, :] - model) / self.noise[None, :]) ** 2, axis=1)
        return np.where(np.isfinite(chi2), chi2, np.inf)


def _with_leaks(inputs: BatchInputs | None, net: NetworkArrays, junctions: np.ndarray, areas: np.ndarray):
    b = len(junctions)
    leaks = sp.csr_matrix((areas, (np.arange(b), junctions)), shape=(b, net.n_junctions))
    if inputs is None:
        return BatchInputs(b, leak_area_m2=leaks)
    base = inputs.subset(np.zeros(b, np.int64))
    if base.leak_area_m2 is not None:
        raise ValueError("inputs: the operating state must not have leaks of its own")
    return BatchInputs(**{**{f: getattr(base, f) for f in BatchInputs.__dataclass_fields__},
                          "batch_size": b, "leak_area_m2": leaks})


def _candidates(net: NetworkArrays, ids) -> np.ndarray:
    if ids is None:
        return np.arange(net.n_junctions)
    out = []
    for jid in ids:
        try:
            j = net.node_index(jid)
        except KeyError:
            raise ValueError(f"candidates: {net.name} has no node {jid!r}") from None
        if j >= net.n_junctions:
            raise ValueError(f"candidates: {jid!r} is not a junction of {net.name}")
        out.append(j)
    if not out:
        raise ValueError("candidates: none given")
    return np.asarray(out, np.int64)


def locate_leak(net: NetworkArrays, readings: list[Reading], options: LocateOptions = LocateOptions(),
                solver_options: SolverOptions = SolverOptions(), inputs: BatchInputs | None = None) -> LeakLocation:
    """Alarm and the most likely leak junctions for these readings (see the module's docstring)."""
    from scipy.stats import chi2 as chi2_distribution
    if not readings:
        raise ValueError("readings: none given")
    if not options.reference_area_m2 > 0 or not all(s > 0 for s in options.area_scales):
        raise ValueError("options: reference_area_m2 and area_scales must be > 0")
    meters = _Meters(net, readings)
    junctions = _candidates(net, options.candidates)
    solver = HydraulicSolver(net, solver_options)
    base_inputs = inputs.subset(np.zeros(1, np.int64)) if inputs is not None else BatchInputs(1)
    base = meters.model(solver.run(base_inputs, 0))[0]
    chi2_base = float(meters.chi2(base[None, :])[0])
    threshold = float(chi2_distribution.ppf(options.alarm_confidence, len(meters.value)))

    # Signatures: what a reference leak at each candidate does at the meters, per m³/s of leak.
    ref = solver.run(_with_leaks(inputs, net, junctions, np.full(len(junctions), options.reference_area_m2)), 0)
    leak_ref = np.asarray(ref.leak_m3s[np.arange(len(junctions)), 0, junctions], float)
    with np.errstate(invalid="ignore", divide="ignore"):
        signature = (meters.model(ref) - base[None, :]) / leak_ref[:, None]
    departure = (meters.value - base) / meters.noise
    s = signature / meters.noise[None, :]
    usable = np.all(np.isfinite(s), axis=1) & (leak_ref > 0)
    s = np.where(usable[:, None], s, 0.0)
    norm = np.sum(s * s, axis=1)
    flow = np.where(norm > 0, np.maximum(np.sum(s * departure[None, :], axis=1) / np.where(norm > 0, norm, 1), 0), 0)
    chi2_linear = np.where(usable, np.sum((departure[None, :] - flow[:, None] * s) ** 2, axis=1), np.inf)

    # Refine the best: the area their fitted flow implies (the orifice law is linear in area), and around it.
    best = np.argsort(chi2_linear, kind="stable")[:max(options.refine, 1)]
    best = best[np.isfinite(chi2_linear[best]) & (flow[best] > 0)]
    chi2 = chi2_linear.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.where(usable, options.reference_area_m2 * flow / leak_ref, np.nan)   # the linear estimate
    leak = flow.copy()
    if len(best):
        scales = np.asarray(options.area_scales, float)
        fitted = options.reference_area_m2 * flow[best] / leak_ref[best]
        rows = np.repeat(best, len(scales))
        areas = np.repeat(fitted, len(scales)) * np.tile(scales, len(best))
        res = solver.run(_with_leaks(inputs, net, junctions[rows], areas), 0)
        exact = meters.chi2(meters.model(res))
        leaks = np.asarray(res.leak_m3s[np.arange(len(rows)), 0, junctions[rows]], float)
        for k in range(len(best)):
            sl = slice(k * len(scales), (k + 1) * len(scales))
            i = int(np.argmin(exact[sl]))
            chi2[best[k]], area[best[k]], leak[best[k]] = exact[sl][i], areas[sl][i], leaks[sl][i]
    finite = np.isfinite(chi2)
    weight = np.where(finite, np.exp(-0.5 * (chi2 - (chi2[finite].min() if finite.any() else 0.0))), 0.0)
    probability = weight / weight.sum() if weight.sum() > 0 else weight
    order = [i for i in np.argsort(chi2, kind="stable")[:max(options.top, 1)] if np.isfinite(chi2[i])]
    candidates = tuple(Candidate(net.node_ids[junctions[i]], float(area[i]), float(leak[i]), float(chi2[i]),
                                 float(probability[i])) for i in order)
    return LeakLocation(alarm=chi2_base > threshold, chi2_no_leak=chi2_base, chi2_alarm_threshold=threshold,
                        n_meters=len(meters.value), candidates=candidates)
