"""Unit samples (Monte Carlo, Latin hypercube, Sobol') and their expansion into perturbation tables.

`expand(spec, net)` draws one unit sample [N, D] for the whole specification, one column per random
choice (laid out by `Selection.dimensions`), and maps each column through an inverse CDF: LHS and
Sobol' therefore stratify every input, the discrete ones (leak junctions, broken pipes, pump outages)
included. Scenario i's rows are a function of row i of that sample alone, so the table is the same
whether it is expanded at once or in chunks (`start`, `stop`), and the same (spec, network) gives the
same table. Any change to the specification (N, a section, a count) may change every scenario; the
numbers are reproducible for the same numpy and scipy versions.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri     # the inverse standard normal CDF, what scipy.stats.norm.ppf calls
from scipy.stats import qmc

from parktwin.hydraulics.network import NetworkArrays
from parktwin.scenarios.batch import ScenarioBatch, build_batch
from parktwin.scenarios.perturbations import PerturbationTable
from parktwin.scenarios.spec import ScenarioSpec
from parktwin.scenarios.spec_errors import SAMPLERS
from parktwin.scenarios.spec_errors import check as _check

# scipy 1.15 renamed qmc's `seed` to `rng`; a Generator passed either way gives the same stream.
_QMC_RNG = "rng" if "rng" in inspect.signature(qmc.Sobol).parameters else "seed"
_BELOW_ONE = np.nextafter(1.0, 0.0)


def sample_unit(sampler: str, n: int, dims: int, seed: int) -> np.ndarray:
    """n points in [0, 1)^dims: `mc` (independent uniforms), `lhs` (each of n equal bins of every
    dimension holds exactly one point) or `sobol` (scrambled; the first n points of 2^ceil(log2 n), so
    n need not be a power of two and scipy's balance warning does not apply)."""
    _check(sampler in SAMPLERS, "sampler", f"unknown sampler {sampler!r} (valid: {', '.join(SAMPLERS)})")
    if n < 1 or dims < 0:
        raise ValueError(f"need n >= 1 and dims >= 0, got n={n}, dims={dims}")
    if dims == 0:
        return np.zeros((n, 0))
    rng = np.random.default_rng(seed)
    if sampler == "mc":
        return rng.random((n, dims))
    if sampler == "lhs":
        unit = qmc.LatinHypercube(dims, **{_QMC_RNG: rng}).random(n)
    else:
        unit = qmc.Sobol(dims, scramble=True, **{_QMC_RNG: rng}).random_base2((n - 1).bit_length())[:n]
    # LHS puts a point at (k - u)/n, which is 1.0 when u == 0; inverse CDFs need u < 1.
    return np.minimum(unit, _BELOW_ONE)


# ---------------------------------------------------------------------- expansion
def scenario_ids(spec: ScenarioSpec, start: int = 0, stop: int | None = None) -> np.ndarray:
    """`s0`, `s1`, ... zero padded to the width of N - 1 (s000 ... s999 for N = 1000), [start, stop)."""
    start, stop, _ = slice(start, stop).indices(spec.scenarios)
    width = len(str(spec.scenarios - 1))
    return np.char.add("s", np.char.zfill(np.arange(start, max(start, stop)).astype(str), width))


def choose_distinct(unit: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Column j of `unit` [n, k] picks the j-th of k distinct candidates per row, each with probability
    proportional to its weight among those not yet picked (sequential sampling without replacement,
    by inverse CDF so that stratified columns give stratified choices). Returns positions [n, k]."""
    n, k = unit.shape
    cdf = np.cumsum(weight)
    picks = np.empty((n, k), np.int64)
    taken = np.zeros(n)                       # weight already picked in each row
    for j in range(k):
        target = unit[:, j] * (cdf[-1] - taken)
        pos = np.searchsorted(cdf, target, side="right")
        # Walk past earlier picks in ascending order: each one at or before the position shifts the
        # target by its weight, as if it had been cut out of the cumulative weights.
        for earlier in np.sort(picks[:, :j], axis=1).T:
            hit = earlier <= pos
            target = np.where(hit, target + weight[earlier], target)
            pos = np.where(hit, np.searchsorted(cdf, target, side="right"), pos)
        picks[:, j] = np.minimum(pos, len(weight) - 1)
        taken += weight[picks[:, j]]
    _repair_rounding(picks, len(weight))
    return picks


def _repair_rounding(picks: np.ndarray, n_candidates: int) -> None:
    # With float weights a shifted target can round onto a picked candidate when it falls within an ulp
    # of a boundary; such a row takes the nearest free candidate instead, so every row stays distinct.
    ordered = np.sort(picks, axis=1)
    for row in np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1)):
        for j in range(1, picks.shape[1]):
            if picks[row, j] in picks[row, :j]:
                free = np.setdiff1d(np.arange(n_candidates), picks[row, :j])
                picks[row, j] = free[np.argmin(np.abs(free - picks[row, j]))]


@dataclass(frozen=True)
class _Block:
    attribute: str
    element: np.ndarray          # [k] or [n, k] ids
    value: np.ndarray            # [n, k] (or broadcastable) text
    keep: np.ndarray | None = None   # [n, k]: rows that exist (pump outages)


def _text(values) -> np.ndarray:
    # numpy writes float64 as its shortest round-trip text, as PerturbationTable.from_columns does.
    return np.asarray(values, np.float64).astype(str)


def _leak_area_m2(area, unit: np.ndarray | None, shape) -> np.ndarray:
    if area.distribution == "lognormal":
        return area.median_m2 * np.exp(area.sigma * ndtri(unit))
    if area.distribution == "uniform":
        return area.min_m2 + (area.max_m2 - area.min_m2) * unit
    return np.full(shape, area.value_m2)


def _demand_factor(demand, unit: np.ndarray | None, n: int) -> np.ndarray:
    if demand.distribution == "uniform":
        return demand.min + (demand.max - demand.min) * unit[:, 0]
    if demand.distribution == "normal":
        return np.maximum(0.0, demand.mean + demand.sd * ndtri(unit[:, 0]))
    return np.full(n, demand.value)


def expand(spec: ScenarioSpec, net: NetworkArrays, start: int = 0, stop: int | None = None) -> PerturbationTable:
    """The perturbation table of scenarios [start, stop) of the specification (all by default).

    Rows come scenario by scenario, in section order. A scenario can have no rows (no pump failed and
    nothing else varies); pass `scenario_ids(spec)` to `build_batch`, or use `sample_batch`. The unit
    sample is drawn for all N scenarios on every call (LHS and Sobol' designs span all of them).
    """
    sel = spec.validate(net)
    start, stop, _ = slice(start, stop).indices(spec.scenarios)
    unit = sample_unit(spec.sampler, spec.scenarios, sel.n_dimensions, spec.seed)[start:max(start, stop)]
    n = len(unit)
    offsets = np.cumsum([0] + [d for _, d in sel.dimensions])
    column = {name: unit[:, offsets[i]:offsets[i + 1]] for i, (name, _) in enumerate(sel.dimensions)}
    junction_ids = np.array(net.node_ids[: net.n_junctions])
    link_ids, node_ids = np.array(net.link_ids), np.array(net.node_ids)
    blocks: list[_Block] = []
    leaks, demand = spec.leaks, spec.demand
    if leaks is not None and leaks.count:
        where = junction_ids[sel.leak_junctions[choose_distinct(column["leaks.location"], sel.leak_weight)]]
        area = _leak_area_m2(leaks.area, column.get("leaks.area"), (n, leaks.count))
        blocks.append(_Block("leak_area_m2", where, _text(area)))
        if leaks.cd is not None:
            blocks.append(_Block("leak_cd", where, _text([[leaks.cd]])))
    if demand is not None:
        factor = _demand_factor(demand, column.get("demand"), n)
        blocks.append(_Block("demand_multiplier", np.array(["*"]), _text(factor[:, None])))
        if demand.junction_sd > 0:
            # A junction row replaces '*' there (it does not multiply), so it carries the global factor too.
            own = np.maximum(0.0, 1.0 + demand.junction_sd * ndtri(column["demand.junction_sd"]))
            blocks.append(_Block("demand_multiplier", junction_ids[sel.demand_junctions],
                                 _text(factor[:, None] * own)))
    if spec.breaks is not None and spec.breaks.count:
        pipes = link_ids[sel.break_links[choose_distinct(column["breaks"], sel.break_weight)]]
        blocks.append(_Block("status", pipes, np.array([["closed"]])))
    if spec.pump_outages is not None:
        # Closed rather than speed 0 so that the table reads as an outage. It is the initial status only:
        # in an extended run a control or rule that opens the pump still does.
        off = column["pump_outages"] < spec.pump_outages.probability
        blocks.append(_Block("status", link_ids[net.pump_link[sel.pumps]], np.array([["closed"]]), off))
    if spec.tank_levels is not None:
        low, high = net.tank_min_level_m[sel.tanks], net.tank_max_level_m[sel.tanks]
        level = np.clip(low + (high - low) * column["tank_levels"], low, high)
        blocks.append(_Block("tank_level_m", node_ids[net.tank_node[sel.tanks]], _text(level)))
    if spec.reservoir_heads is not None:
        base = net.reservoir_head_m[sel.reservoirs]
        head = base + spec.reservoir_heads.delta_m * (2.0 * column["reservoir_heads"] - 1.0)
        blocks.append(_Block("reservoir_head_m", node_ids[net.reservoir_node[sel.reservoirs]], _text(head)))
    if spec.source_quality is not None:
        sq = spec.source_quality
        blocks.append(_Block("source_quality", node_ids[sel.source_nodes],
                             _text(sq.min + (sq.max - sq.min) * column["source_quality"])))
    if spec.roughness is not None:
        scale = 1.0 + spec.roughness.fraction * (2.0 * column["roughness"] - 1.0)
        blocks.append(_Block("roughness", link_ids[sel.pipes], _text(net.roughness[sel.pipes] * scale)))
    return _assemble(scenario_ids(spec, start, stop), blocks, f"<spec seed={spec.seed}>")


def _assemble(ids: np.ndarray, blocks: list[_Block], source: str) -> PerturbationTable:
    """Scenario-major rows from blocks of per-scenario columns."""
    n = len(ids)
    if not blocks or n == 0:
        empty = np.zeros(0, str)
        return PerturbationTable.from_columns(empty, empty, empty, empty, source=source)
    widths = [np.broadcast_shapes(np.shape(b.element), np.shape(b.value))[-1] for b in blocks]
    element = np.concatenate([np.broadcast_to(b.element, (n, w)) for b, w in zip(blocks, widths)], axis=1)
    value = np.concatenate([np.broadcast_to(b.value, (n, w)) for b, w in zip(blocks, widths)], axis=1)
    keep = np.concatenate([np.ones((n, w), bool) if b.keep is None else b.keep
                           for b, w in zip(blocks, widths)], axis=1).ravel()
    attribute = np.repeat(np.array([b.attribute for b in blocks]), widths)
    scenario = np.repeat(ids, sum(widths))
    return PerturbationTable.from_columns(scenario[keep], element.ravel()[keep],
                                          np.tile(attribute, n)[keep], value.ravel()[keep], source=source)


def sample_batch(spec: ScenarioSpec, net: NetworkArrays, start: int = 0,
                 stop: int | None = None) -> ScenarioBatch:
    """`expand` then `build_batch` with every scenario id of the range (those without rows included)
    and the specification's seed."""
    table = expand(spec, net, start, stop)
    return build_batch(table, net, scenario_ids=scenario_ids(spec, start, stop).tolist(), seed=spec.seed)
