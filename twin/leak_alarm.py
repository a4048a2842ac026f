"""Leak alarms over time: meter time series against the model, with the demand level fitted at every step,
an alarm only when the departure persists, and the leak localised over the alarm's time steps.

`twin.leak_location` judges one instant with the model's demands taken as exact. Over days that fails
twice: demand follows daily cycles and wanders from the model, and one noisy hour must not raise an
alarm. Here, for hourly steps t (the readings averaged per step):

1. **Model per step.** Each step is a snapshot of the network at its clock time: every junction's demand
   is the network's own patterns at t (a per-junction factor on the demands at time 0), times a
   **demand level** m_t common to all junctions; tank levels come from level meters where the tank has
   one. The batched solver solves every step at a grid of levels at once; each meter's value is
   interpolated quadratically in m, and m_t is the level that fits the meters best (weighted least
   squares). What the level cannot explain is the residual r_t.
2. **Training.** Over the first `train_steps` (leak-free by assumption, as BattLeDIM's historical year)
   each meter's residual mean μ and spread σ are learnt: the model's and the demand's own error, which
   no noise figure on a data sheet gives.
3. **Alarm.** z_t = Σ_k ((r_k,t − μ_k)/σ_k)² / K; the alarm statistic is z's mean over the last
   `window_steps` steps, and the alarm is raised when it exceeds the χ² quantile for K·W degrees of
   freedom at `false_alarm_probability` per window **and** at least half of the window's steps depart
   on their own (z above its 99 % quantile): a departure must persist, one wild hour cannot raise it.
   After an alarm the detector is quiet for `refractory_steps`.
4. **Localisation.** Every candidate junction at every step of the alarm's window, with a reference
   orifice, in one batch: each candidate's signature at the meters, with the demand level's own effect
   projected out (a leak must not be explained as demand). One leak flow per candidate fits all steps;
   candidates are ranked by χ² and given posterior probabilities ∝ exp(−χ²/2).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import scipy.sparse as sp

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
from parktwin.twin.leak_location import Candidate

# quantity -> (element kind, noise floor): σ never below the floor, so a meter that happened to be
# quiet in training does not turn every later wiggle into an alarm
RESIDUAL_QUANTITIES = {"pressure_m": ("node", 0.01), "flow_m3s": ("link", 1e-5)}
PERSISTENT_STEP_QUANTILE = 0.99       # a step "departs" when its own z exceeds this χ² quantile


@dataclass(frozen=True)
class AlarmOptions:
    train_steps: int = 168                    # a week of hourly steps, leak-free
    window_steps: int = 12                    # the departure must persist this long
    false_alarm_probability: float = 1e-6     # per window, under the trained no-leak model
    refractory_steps: int = 24
    levels: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2, 1.4)   # demand-level grid the solver evaluates
    reference_area_m2: float = 2e-4
    top: int = 10
    candidates: tuple[str, ...] | None = None
    localise: bool = True                     # False: alarms only (localise_alarm() later, per alarm)


@dataclass(frozen=True)
class MeterSeries:
    """Readings per step: times_s [T] on the network's clock (s from its time 0), values [T, K]."""
    times_s: np.ndarray
    ids: tuple[str, ...]                      # element ids: node (pressure_m, level_m) or link (flow_m3s)
    quantities: tuple[str, ...]
    values: np.ndarray


@dataclass(frozen=True)
class Alarm:
    step: int
    time_s: float
    statistic: float
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class AlarmResult:
    alarms: tuple[Alarm, ...]
    statistic: np.ndarray                     # [T] window mean of z (NaN before training ends)
    threshold: float
    demand_level: np.ndarray                  # [T] fitted m_t
    sigma: np.ndarray                         # [K'] trained residual spread of the residual meters
    residual: np.ndarray                      # [T, K'] departure from the model at m_t, less the trained mean
    slope: np.ndarray                         # [T, K'] the meters' sensitivity to the demand level at m_t

    def as_dict(self) -> dict:
        return {"threshold": self.threshold,
                "alarms": [{"step": a.step, "time_s": a.time_s, "statistic": a.statistic,
                            "candidates": [asdict(c) for c in a.candidates]} for a in self.alarms],
                "demand_level": self.demand_level.tolist(),
                "statistic": [None if not math.isfinite(x) else x for x in self.statistic.tolist()]}


def junction_factors(net: NetworkArrays, times_s: np.ndarray) -> np.ndarray:
    """[T, Nj]: each junction's demand at each time over its demand at time 0 (the snapshot's own)."""
    t = net.time
    step = t.pattern_step_s or 3600
    periods = ((np.asarray(times_s, np.int64) + t.pattern_start_s) // step).astype(np.int64)
    d = np.zeros((len(periods) + 1, net.n_junctions))
    for c in range(len(net.demand_node)):
        pat = net.demand_pattern[c]
        if pat >= 0:
            values = net.patterns.values(pat)
            f = values[np.concatenate([[t.pattern_start_s // step], periods]) % len(values)]
        else:
            f = np.ones(len(periods) + 1)
        d[:, net.demand_node[c]] += net.demand_base_m3s[c] * f
    zero = (d[0] == 0) & np.any(d[1:] != 0, axis=0)
    if np.any(zero):
        jid = net.node_ids[int(np.flatnonzero(zero)[0])]
        raise NotImplementedError(f"{net.name}: junction {jid!r} draws nothing at time 0 but does later; "
                                  "a per-step snapshot cannot scale its demand (leak alarms over time)")
    return np.where(d[0] != 0, d[1:] / np.where(d[0] != 0, d[0], 1.0), 1.0)


class _StepModel:
    def __init__(self, net: NetworkArrays, series: MeterSeries, solver_options: SolverOptions):
        self.net, self.solver = net, HydraulicSolver(net, solver_options)
        node, link, sigma0, level_cols, tanks = [], [], [], [], []
        tank_ids = [net.node_ids[i] for i in net.tank_node]
        keep = []
        for k, (eid, q) in enumerate(zip(series.ids, series.quantities)):
            if q == "level_m":
                if eid not in tank_ids:
                    raise ValueError(f"level meter {eid!r}: {net.name} has no tank of that id")
                level_cols.append(k)
                tanks.append(tank_ids.index(eid))
                continue
            if q not in RESIDUAL_QUANTITIES:
                raise ValueError(f"meter {eid!r}: quantity {q!r} is not used by the leak alarm "
                                 f"(valid: {', '.join(RESIDUAL_QUANTITIES)}, level_m)")
            kind = RESIDUAL_QUANTITIES[q][0]
            try:
                (node if kind == "node" else link).append(net.node_index(eid) if kind == "node" else net.link_index(eid))
            except KeyError:
                raise ValueError(f"meter {eid!r}: {net.name} has no {kind} of that id") from None
            keep.append(k)
        order = [k for k in keep if RESIDUAL_QUANTITIES[series.quantities[k]][0] == "node"] + \
                [k for k in keep if RESIDUAL_QUANTITIES[series.quantities[k]][0] == "link"]
        if not order:
            raise ValueError("no pressure or flow meter to judge by")
        self.node, self.link = np.asarray(node, np.int64), np.asarray(link, np.int64)
        self.y = np.asarray(series.values, float)[:, order]
        self.ids = tuple(series.ids[k] for k in order)
        self.floor = np.array([RESIDUAL_QUANTITIES[series.quantities[k]][1] for k in order])
        self.factors = junction_factors(net, series.times_s)
        self.tank_levels = None
        if level_cols:
            self.tank_levels = np.full((len(series.times_s), len(net.tank_node)), np.nan)
            self.tank_levels[:, tanks] = np.asarray(series.values, float)[:, level_cols]

    def inputs(self, steps: np.ndarray, levels: np.ndarray, leak_junctions=None, area_m2: float = 0.0) -> BatchInputs:
        b = len(steps)
        leaks = None
        if leak_junctions is not None:
            leaks = sp.csr_matrix((np.full(b, area_m2), (np.arange(b), leak_junctions)), shape=(b, self.net.n_junctions))
        tanks = None if self.tank_levels is None else self.tank_levels[steps]
        return BatchInputs(b, demand_multiplier=self.factors[steps] * levels[:, None], tank_level_m=tanks,
                           leak_area_m2=leaks)

    def solve(self, inputs: BatchInputs, leak_at: np.ndarray | None = None):
        """[B, K] the meters' values (NaN where a scenario failed); with `leak_at` also the leak flow there."""
        res = self.solver.run(inputs, 0)
        values = np.concatenate([np.asarray(res.pressure_m[:, 0, self.node], float),
                                 np.asarray(res.flow_m3s[:, 0, self.link], float)], axis=1)
        failed = ~np.all(res.converged, axis=1) | (np.asarray(res.failure) != "")
        values[failed] = np.nan
        if leak_at is None:
            return values
        return values, np.asarray(res.leak_m3s[np.arange(len(leak_at)), 0, leak_at], float)


def _fit_levels(model: _StepModel, grid: np.ndarray, sigma: np.ndarray):
    """Per step: the demand level m_t, the residual at it and the meters' sensitivity to m there."""
    n_steps, n_grid = len(model.y), len(grid)
    steps = np.repeat(np.arange(n_steps), n_grid)
    values = model.solve(model.inputs(steps, np.tile(grid, n_steps))).reshape(n_steps, n_grid, -1)
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(values), axis=(1, 2)))[0])
        raise RuntimeError(f"the model did not solve at step {bad} for every demand level of {tuple(grid)}")
    coeff = np.polynomial.polynomial.polyfit(grid, values.transpose(1, 0, 2).reshape(n_grid, -1), 2)
    coeff = coeff.reshape(3, n_steps, -1)                               # [3, T, K]
    dense = np.linspace(grid[0], grid[-1], 161)
    fitted = coeff[0][None] + coeff[1][None] * dense[:, None, None] + coeff[2][None] * dense[:, None, None] ** 2
    chi2 = np.nansum(((model.y[None] - fitted) / sigma) ** 2, axis=2)   # [dense, T]
    level = dense[np.argmin(chi2, axis=0)]
    at = coeff[0] + coeff[1] * level[:, None] + coeff[2] * level[:, None] ** 2
    slope = coeff[1] + 2 * coeff[2] * level[:, None]
    return level, model.y - at, slope


def detect_leaks(net: NetworkArrays, series: MeterSeries, options: AlarmOptions = AlarmOptions(),
                 solver_options: SolverOptions = SolverOptions()) -> AlarmResult:
    """Alarms and their most likely leak junctions for a time series of readings (module docstring)."""
    from scipy.stats import chi2 as chi2_distribution
    model = _StepModel(net, series, solver_options)
    n_steps, w = len(model.y), options.window_steps
    if n_steps < options.train_steps + w:
        raise ValueError(f"{n_steps} steps of readings: the alarm needs {options.train_steps} to train and "
                         f"{w} more to judge")
    grid = np.asarray(options.levels, float)
    # The level fit weighs meters by their spread, which training learns from the fit's residuals: a first
    # pass weighs by 1 % of each meter's own range (pressures and flows on comparable footing), the
    # second by the spread the first pass found.
    sigma = np.maximum(np.nanstd(model.y, axis=0) * 0.01, model.floor)
    for _ in range(2):
        level, residual, slope = _fit_levels(model, grid, sigma)
        train = residual[:options.train_steps]
        mu = np.nanmean(train, axis=0)
        sigma = np.maximum(np.nanstd(train, axis=0), model.floor)
    k = residual.shape[1]
    z = np.nansum(((residual - mu) / sigma) ** 2, axis=1) / k
    window = np.convolve(z, np.ones(w) / w, mode="full")[:n_steps]
    statistic = np.full(n_steps, np.nan)
    statistic[options.train_steps + w - 1:] = window[options.train_steps + w - 1:]
    threshold = float(chi2_distribution.ppf(1.0 - options.false_alarm_probability, k * w) / (k * w))
    # Persistence: besides the window's mean, half of its steps must depart on their own (one wild hour
    # can lift a mean, it cannot lift half a window).
    step_threshold = float(chi2_distribution.ppf(PERSISTENT_STEP_QUANTILE, k) / k)
    above = np.convolve((z > step_threshold).astype(float), np.ones(w), mode="full")[:n_steps]
    result = AlarmResult((), statistic, threshold, level, sigma, residual - mu, slope)
    alarms, quiet_until = [], -1
    for t in range(options.train_steps + w - 1, n_steps):
        if statistic[t] > threshold and above[t] >= math.ceil(w / 2) and t > quiet_until:
            found = localise_alarm(net, series, result, t, options, model) if options.localise else ()
            alarms.append(Alarm(t, float(series.times_s[t]), float(statistic[t]), found))
            quiet_until = t + options.refractory_steps
    return replace(result, alarms=tuple(alarms))


def localise_alarm(net: NetworkArrays, series: MeterSeries, result: AlarmResult, step: int,
                   options: AlarmOptions = AlarmOptions(), model: "_StepModel | None" = None,
                   solver_options: SolverOptions = SolverOptions()) -> tuple[Candidate, ...]:
    """The most likely leak junctions for an alarm raised at `step` (its window's steps)."""
    model = model or _StepModel(net, series, solver_options)
    steps = np.arange(step - options.window_steps + 1, step + 1)
    return _localise(model, options, steps, result.demand_level[steps], result.residual[steps], result.slope[steps],
                     result.sigma)


def _localise(model: _StepModel, options: AlarmOptions, steps, level, residual, slope, sigma) -> tuple[Candidate, ...]:
    net = model.net
    if options.candidates is None:
        junctions = np.arange(net.n_junctions)
    else:
        try:
            junctions = np.array([net.node_index(j) for j in options.candidates], np.int64)
        except KeyError as exc:
            raise ValueError(f"candidates: {net.name} has no node {exc.args[0]!r}") from None
    n_c, w = len(junctions), len(steps)
    base = model.solve(model.inputs(steps, level))                                    # [W, K]
    rows = np.tile(steps, n_c)
    at = np.repeat(junctions, w)
    leaky, leak_flow = model.solve(model.inputs(rows, np.tile(level, n_c), at, options.reference_area_m2), at)
    leak_flow = np.nanmean(leak_flow.reshape(n_c, w), axis=1)
    signature = leaky.reshape(n_c, w, -1) - base[None]                                 # [C, W, K]
    weight = 1.0 / sigma ** 2
    # The demand level's direction at each step, projected out of residuals and signatures alike.
    g = slope
    gg = np.sum(g * g * weight, axis=1)                                                # [W]

    def project(x):
        return x - g * (np.sum(x * g * weight, axis=-1) / gg)[..., None]
    r = project(np.nan_to_num(residual))
    s = project(np.nan_to_num(signature))
    usable = np.all(np.isfinite(signature), axis=(1, 2))
    ss = np.sum(s * s * weight, axis=(1, 2))
    sr = np.sum(s * r[None] * weight, axis=(1, 2))
    scale = np.where(usable & (ss > 0), np.maximum(sr / np.where(ss > 0, ss, 1.0), 0.0), 0.0)
    chi2 = np.sum((r[None] - scale[:, None, None] * s) ** 2 * weight, axis=(1, 2))
    chi2 = np.where(usable, chi2, np.inf)
    finite = np.isfinite(chi2)
    p = np.where(finite, np.exp(-0.5 * (chi2 - chi2[finite].min())), 0.0) if finite.any() else np.zeros(n_c)
    p = p / p.sum() if p.sum() > 0 else p
    order = [i for i in np.argsort(chi2, kind="stable")[:options.top] if finite[i]]
    return tuple(Candidate(net.node_ids[junctions[i]], float(scale[i] * options.reference_area_m2),
                           float(scale[i] * leak_flow[i]), float(chi2[i]), float(p[i])) for i in order)
