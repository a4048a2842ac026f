"""Specifications expanded into scenarios: perturbation tables and solver inputs, a chunk at a time.

`expand(spec, net, start, stop)` maps rows [start, stop) of the specification's unit sample
(scenarios.unit_samples; one column per random choice, laid out by `Selection.dimensions`) through inverse
CDFs: LHS and Sobol' therefore stratify every input, the discrete ones (leak junctions, broken pipes, pump
outages) included. Scenario i's rows are a function of the specification, the network and i alone, so a
table expanded in chunks is the table expanded at once. `sample_inputs` gives the same scenarios' solver
inputs straight from the numbers: what `build_batch` makes of the table, without writing it as text and
parsing it back. `SampledBatch` is a whole study sampled a chunk at a time, what `scenarios.montecarlo`
solves. Any change to the specification (N, a section, a count) may change every scenario.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri     # the inverse standard normal CDF, what scipy.stats.norm.ppf calls

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import NetworkArrays
from parktwin.scenarios.attributes import ATTRIBUTES, BY_NAME, STATUS_WORDS, ValueKind, element_ids
from parktwin.scenarios.batch import ScenarioBatch, build_batch, inputs_from_rows
from parktwin.scenarios.perturbations import PerturbationTable, write_h5_tables
from parktwin.scenarios.spec import ScenarioSpec
from parktwin.scenarios.unit_samples import sample_unit

# Perturbation rows expanded at a time when a study's table is written: a row costs about 1 KB while its
# table is built (api.server.sizing.TABLE_ROW_BYTES), so a step holds about 256 MB.
SAMPLE_ROWS = 250_000
_CLOSED = float(STATUS_WORDS["closed"])
_WORDS = np.array(sorted(STATUS_WORDS, key=STATUS_WORDS.get))    # status code -> its word


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
    column: np.ndarray           # [k] or [n, k] columns of the attribute's elements (element_columns); -1: '*'
    value: np.ndarray            # [n, k] or broadcastable, float64 (a status as its STATUS_WORDS code)
    keep: np.ndarray | None = None   # [n, k]: rows that exist (pump outages)


def _text(values) -> np.ndarray:
    # numpy writes float64 as its shortest round-trip text, as PerturbationTable.from_columns does, so the
    # table's text reads back as exactly the numbers sample_inputs uses.
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


def _blocks(spec: ScenarioSpec, net: NetworkArrays, start: int, stop: int | None) -> tuple[np.ndarray, list[_Block]]:
    """The ids of scenarios [start, stop) and their rows as blocks of per-scenario columns, in section order."""
    sel = spec.validate(net)
    start, stop, _ = slice(start, stop).indices(spec.scenarios)
    stop = max(start, stop)
    unit = sample_unit(spec.sampler, spec.scenarios, sel.n_dimensions, spec.seed, start, stop)
    n = len(unit)
    offsets = np.cumsum([0] + [d for _, d in sel.dimensions])
    column = {name: unit[:, offsets[i]:offsets[i + 1]] for i, (name, _) in enumerate(sel.dimensions)}
    blocks: list[_Block] = []
    leaks, demand = spec.leaks, spec.demand
    if leaks is not None and leaks.count:
        where = sel.leak_junctions[choose_distinct(column["leaks.location"], sel.leak_weight)]
        blocks.append(_Block("leak_area_m2", where, _leak_area_m2(leaks.area, column.get("leaks.area"),
                                                                   (n, leaks.count))))
        if leaks.cd is not None:
            blocks.append(_Block("leak_cd", where, np.array([[leaks.cd]], float)))
    if demand is not None:
        factor = _demand_factor(demand, column.get("demand"), n)
        blocks.append(_Block("demand_multiplier", np.array([-1]), factor[:, None]))
        if demand.junction_sd > 0:
            # A junction row replaces '*' there (it does not multiply), so it carries the global factor too.
            own = np.maximum(0.0, 1.0 + demand.junction_sd * ndtri(column["demand.junction_sd"]))
            blocks.append(_Block("demand_multiplier", sel.demand_junctions, factor[:, None] * own))
    if spec.breaks is not None and spec.breaks.count:
        pipes = sel.break_links[choose_distinct(column["breaks"], sel.break_weight)]
        blocks.append(_Block("status", pipes, np.array([[_CLOSED]])))
    if spec.pump_outages is not None:
        # Closed rather than speed 0 so that the table reads as an outage. It is the initial status only:
        # in an extended run a control or rule that opens the pump still does.
        off = column["pump_outages"] < spec.pump_outages.probability
        blocks.append(_Block("status", net.pump_link[sel.pumps], np.array([[_CLOSED]]), off))
    if spec.tank_levels is not None:
        low, high = net.tank_min_level_m[sel.tanks], net.tank_max_level_m[sel.tanks]
        blocks.append(_Block("tank_level_m", sel.tanks, np.clip(low + (high - low) * column["tank_levels"], low, high)))
    if spec.reservoir_heads is not None:
        base = net.reservoir_head_m[sel.reservoirs]
        head = base + spec.reservoir_heads.delta_m * (2.0 * column["reservoir_heads"] - 1.0)
        blocks.append(_Block("reservoir_head_m", sel.reservoirs, head))
    if spec.source_quality is not None:
        sq = spec.source_quality
        blocks.append(_Block("source_quality", sel.source_nodes, sq.min + (sq.max - sq.min) * column["source_quality"]))
    if spec.roughness is not None:
        scale = 1.0 + spec.roughness.fraction * (2.0 * column["roughness"] - 1.0)
        blocks.append(_Block("roughness", sel.pipes, net.roughness[sel.pipes] * scale))
    return scenario_ids(spec, start, stop), blocks


def _rows(n: int, blocks: list[_Block]) -> tuple[np.ndarray, ...]:
    """Scenario-major rows of the blocks: each kept row's scenario position, block, column and value."""
    widths = [np.broadcast_shapes(np.shape(b.column), np.shape(b.value))[-1] for b in blocks]
    column = np.concatenate([np.broadcast_to(b.column, (n, w)) for b, w in zip(blocks, widths)], axis=1).ravel()
    value = np.concatenate([np.broadcast_to(np.asarray(b.value, np.float64), (n, w))
                            for b, w in zip(blocks, widths)], axis=1).ravel()
    keep = np.concatenate([np.ones((n, w), bool) if b.keep is None else b.keep
                           for b, w in zip(blocks, widths)], axis=1).ravel()
    block = np.tile(np.repeat(np.arange(len(blocks)), widths), n)
    scenario = np.repeat(np.arange(n), sum(widths))
    return scenario[keep], block[keep], column[keep], value[keep]


def expand(spec: ScenarioSpec, net: NetworkArrays, start: int = 0, stop: int | None = None) -> PerturbationTable:
    """The perturbation table of scenarios [start, stop) of the specification (all by default).

    Rows come scenario by scenario, in section order. A scenario can have no rows (no pump failed and
    nothing else varies); pass `scenario_ids(spec)` to `build_batch`, or use `sample_batch`. Only the
    unit-sample rows of [start, stop) are drawn.
    """
    ids, blocks = _blocks(spec, net, start, stop)
    source = f"<spec seed={spec.seed}>"
    n = len(ids)
    if not blocks or n == 0:
        empty = np.zeros(0, str)
        return PerturbationTable.from_columns(empty, empty, empty, empty, source=source)
    scenario, block, column, value = _rows(n, blocks)
    # Each block's ids by column, '*' last so that column -1 names it.
    kinds = [BY_NAME[b.attribute].element for b in blocks]
    tables = [np.append(element_ids(net, kind), "*") for kind in kinds]
    start_of = np.cumsum([0] + [len(t) for t in tables])[:-1]
    element = np.concatenate(tables)[start_of[block] + np.where(column < 0, np.array([len(t) for t in tables])[block] - 1,
                                                                column)]
    text = _text(value)
    status = np.array([BY_NAME[b.attribute].value is ValueKind.STATUS_WORD for b in blocks])[block]
    text[status] = _WORDS[value[status].astype(np.int64)]
    attribute = np.array([b.attribute for b in blocks])[block]
    return PerturbationTable.from_columns(ids[scenario], element, attribute, text, source=source)


def sample_inputs(spec: ScenarioSpec, net: NetworkArrays, start: int = 0, stop: int | None = None) -> BatchInputs:
    """The solver inputs of scenarios [start, stop): those `build_batch` makes of `expand`'s table for the
    same scenarios, built from the sampled numbers directly (no text, no parsing)."""
    ids, blocks = _blocks(spec, net, start, stop)
    if not blocks or not len(ids):
        return BatchInputs(batch_size=len(ids))
    scenario, block, column, value = _rows(len(ids), blocks)
    code = np.array([ATTRIBUTES.index(BY_NAME[b.attribute]) for b in blocks], np.int64)[block]
    return inputs_from_rows(net, len(ids), scenario, code, value, column)


def sample_batch(spec: ScenarioSpec, net: NetworkArrays, start: int = 0,
                 stop: int | None = None) -> ScenarioBatch:
    """`expand` then `build_batch` with every scenario id of the range (those without rows included)
    and the specification's seed."""
    table = expand(spec, net, start, stop)
    return build_batch(table, net, scenario_ids=scenario_ids(spec, start, stop).tolist(), seed=spec.seed)


def sampling_step(spec: ScenarioSpec, net: NetworkArrays, max_step: int) -> int:
    """Scenarios expanded at a time when a study's table is written: at most `max_step` (the solver's
    chunk) and about SAMPLE_ROWS rows, counting each scenario's most rows (Selection.rows_per_scenario)."""
    per_scenario = max(spec.validate(net).rows_per_scenario, 1)
    return max(1, min(int(max_step), SAMPLE_ROWS // per_scenario))


@dataclass(frozen=True, eq=False)
class SampledBatch:
    """Every scenario of a specification, sampled a chunk at a time when asked for: what run_batch and
    run_summary take in place of a ScenarioBatch. The stores write its table `step` scenarios at a time
    (`perturbations.write_h5`) and the solver asks for each chunk's inputs (`inputs.subset(rows)`), so a
    study holds a chunk's rows and inputs, never the whole job's; a scenario is the same in any chunk."""

    spec: ScenarioSpec
    net: NetworkArrays
    ids: tuple[str, ...]
    step: int                        # scenarios expanded at a time when the table is written

    @staticmethod
    def of(spec: ScenarioSpec, net: NetworkArrays, max_step: int) -> "SampledBatch":
        """The study of `spec` on `net` (validated here), its table written `sampling_step` scenarios at
        a time."""
        return SampledBatch(spec, net, tuple(scenario_ids(spec).tolist()), sampling_step(spec, net, max_step))

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def inputs(self) -> "SampledInputs":
        return SampledInputs(self)

    @property
    def perturbations(self) -> "SampledTable":
        return SampledTable(self)


@dataclass(frozen=True, eq=False)
class SampledInputs:
    """A SampledBatch's inputs as the runner uses BatchInputs: `batch_size`, and `subset(rows)` sampled
    when asked for."""

    batch: SampledBatch

    @property
    def batch_size(self) -> int:
        return self.batch.size

    def subset(self, rows) -> BatchInputs:
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return BatchInputs(batch_size=0)
        unique, inverse = np.unique(rows, return_inverse=True)
        # Runs of consecutive scenarios, each sampled in one go (a resumed run's chunks can have gaps).
        runs = np.split(unique, np.flatnonzero(np.diff(unique) != 1) + 1)
        spec, net = self.batch.spec, self.batch.net
        parts = [sample_inputs(spec, net, int(run[0]), int(run[-1]) + 1) for run in runs]
        merged = parts[0] if len(parts) == 1 else BatchInputs.concatenate(parts, net)
        return merged if np.array_equal(unique, rows) else merged.subset(inverse)


@dataclass(frozen=True, eq=False)
class SampledTable:
    """A SampledBatch's perturbation table as the stores write it: `write_h5(group)`, `step` scenarios
    expanded at a time."""

    batch: SampledBatch

    def write_h5(self, group) -> None:
        b = self.batch
        write_h5_tables(group, (expand(b.spec, b.net, start, min(start + b.step, b.size))
                                for start in range(0, b.size, b.step)))
