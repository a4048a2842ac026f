"""The enterprises' water as network inputs, and what the networks did with it.

The park twin never edits an EPANET file: each network is compiled once (`hydraulics.compile`) and the
enterprise flows enter as `BatchInputs` (base demand at the enterprise junction, every other junction's
demand switched off). For a 24 h run the compiled network is copied with one extra time pattern per
enterprise junction (its enterprises' shift profiles) and the park's clock (24 h, hourly reports); the
network's own patterns, controls and tanks are kept.

Shift profiles (a modelling choice): an enterprise draws, and discharges, its daily volume evenly over
its shift hours, clock time: 24 h all day, 16 h from 06:00 to 22:00, 8 h from 08:00 to 16:00.
Daily volumes (delivered demand, leaks, source outflow, tank storage) are summed over every hydraulic
step of the day, each step's flows held for the step (`hydraulics.extended.StepVolumes`, EPANET's
mass-balance convention), so a tank filling between two hourly reports is counted too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import NetworkArrays, NodeKind, Patterns, TimeOptions
from parktwin.hydraulics.results import ResultSet

SECONDS_PER_DAY = 86400
SECONDS_PER_HOUR = 3600
SHIFT_START_HOUR = {24: 0, 16: 6, 8: 8}


def shift_profile(shift_hours: int) -> np.ndarray:
    """24 hourly factors of the daily mean flow, clock hours 0..23; mean 1."""
    if shift_hours not in SHIFT_START_HOUR:
        raise ValueError(f"shift_hours: expected one of {sorted(SHIFT_START_HOUR)}, got {shift_hours!r}")
    hours = (np.arange(24) - SHIFT_START_HOUR[shift_hours]) % 24
    return np.where(hours < shift_hours, 24.0 / shift_hours, 0.0)


@dataclass(frozen=True)
class JunctionLoad:
    """What the enterprises at one junction put on a network: daily mean m³/s and a clock profile."""
    mean_m3s: float
    profile: np.ndarray = field(default_factory=lambda: np.ones(24))    # 24 hourly factors, mean 1


def combine_loads(parts: list[tuple[float, int]]) -> JunctionLoad:
    """(mean m³/s, shift hours) of each enterprise at one junction -> one load."""
    total = math.fsum(q for q, _ in parts)
    if total == 0.0:
        return JunctionLoad(0.0)
    profile = sum(q * shift_profile(h) for q, h in parts) / total
    return JunctionLoad(total, profile)


def _first_categories(net: NetworkArrays, loads: dict[str, JunctionLoad]) -> dict[int, int]:
    """junction index -> its first demand category, checking it can carry an enterprise load."""
    out = {}
    for jid, load in loads.items():
        j = net.node_index(jid)
        cats = np.flatnonzero(net.demand_node == j)
        if len(cats) == 0:
            if load.mean_m3s != 0.0:
                raise ValueError(f"{net.name}: junction {jid!r} has no demand category to carry an enterprise "
                                 "flow (give it a [DEMANDS]/[JUNCTIONS] demand, even 0)")
            continue
        if len(cats) > 1 and np.any(net.demand_base_m3s[cats[1:]] != 0):
            raise ValueError(f"{net.name}: junction {jid!r} has {len(cats)} demand categories; an enterprise "
                             "junction may carry only its enterprise's demand")
        out[j] = int(cats[0])
    return out


def snapshot_inputs(net: NetworkArrays, loads: dict[str, JunctionLoad] | list[dict[str, JunctionLoad]],
                    keep_background: bool = False) -> BatchInputs:
    """Base demands that give each load's daily mean at t = 0 (the file's pattern factor at t = 0 and
    global demand multiplier divided out). A list of load dicts (same junctions) gives one scenario each."""
    scenarios = loads if isinstance(loads, list) else [loads]
    flows = {jid: np.array([s[jid].mean_m3s for s in scenarios]) for jid in scenarios[0]}
    return demand_inputs(net, flows, daily=False, keep_background=keep_background)


def demand_inputs(net: NetworkArrays, flows_m3s: dict[str, np.ndarray], daily: bool,
                  keep_background: bool = False) -> BatchInputs:
    """One scenario per entry of the flow arrays (junction id -> [S] m³/s): each junction's first demand
    category set so that it carries that flow, every other junction's demand off (unless
    keep_background). Snapshot: the flow at t = 0, the file's pattern factor there divided out; daily:
    the daily mean, the junction's shift pattern being in the daily network (`daily_network`)."""
    n = len(next(iter(flows_m3s.values()))) if flows_m3s else 1
    base = np.full((n, net.n_junctions), np.nan)
    mult = np.ones(net.n_junctions) if keep_background else np.zeros(net.n_junctions)
    t = net.time
    period = t.pattern_start_s // t.pattern_step_s if t.pattern_step_s > 0 else 0
    categories = _first_categories(net, {j: JunctionLoad(float(np.max(np.abs(q), initial=0.0)))
                                         for j, q in flows_m3s.items()})
    for jid, q in flows_m3s.items():
        j = net.node_index(jid)
        mult[j] = 1.0
        if j not in categories:
            continue
        factor = net.options.demand_multiplier
        pat = net.demand_pattern[categories[j]]
        if not daily and pat >= 0:
            factor *= net.patterns.at_period(pat, period)
        if factor == 0.0 and np.any(q != 0.0):
            raise ValueError(f"{net.name}: junction {jid!r}: its demand pattern is 0 at t = 0" if not daily else
                             f"{net.name}: the demand multiplier is 0: no enterprise flow can be set")
        base[:, j] = q / factor if factor != 0.0 else 0.0
    return BatchInputs(batch_size=n, base_demand_m3s=base, demand_multiplier=np.tile(mult, (n, 1)))


def _pattern_for_clock(profile: np.ndarray, time: TimeOptions) -> np.ndarray:
    """The hourly clock profile as multipliers at the network's pattern step (mean over each period)."""
    step = time.pattern_step_s
    if step <= 0 or SECONDS_PER_DAY % step:
        raise ValueError(f"the pattern time step ({step} s) must divide 24 h for a coupled 24 h run")
    n = SECONDS_PER_DAY // step
    minute = np.arange(0, SECONDS_PER_DAY, 60)
    values = np.empty(n)
    for k in range(n):
        # EPANET: period k covers simulation time [k*step - pattern_start, ...); the clock adds start_clocktime.
        t0 = k * step - time.pattern_start_s + time.start_clocktime_s
        inside = minute[minute < step] + t0
        values[k] = profile[((inside % SECONDS_PER_DAY) // SECONDS_PER_HOUR).astype(int)].mean()
    return values


def daily_network(net: NetworkArrays, loads: dict[str, JunctionLoad], report_step_s: int = SECONDS_PER_HOUR
                  ) -> tuple[NetworkArrays, BatchInputs]:
    """A copy of `net` for a 24 h run of the park: each loaded junction's first demand category follows
    its load's profile, the clock runs 24 h with reports every `report_step_s` (made to divide the
    hydraulic and pattern steps). Returns the network and inputs for one scenario."""
    time = net.time
    step = min(report_step_s, time.hydraulic_step_s or report_step_s, time.pattern_step_s or report_step_s)
    step = math.gcd(step, report_step_s, time.pattern_step_s or step)
    categories = _first_categories(net, loads)
    offsets, multipliers, ids = [net.patterns.offset], [net.patterns.multipliers], list(net.patterns.ids)
    pattern = net.demand_pattern.copy()
    base = net.demand_base_m3s.copy()
    end = int(net.patterns.offset[-1])
    new_offsets = []
    for jid, load in loads.items():
        j = net.node_index(jid)
        if j not in categories:
            continue
        values = _pattern_for_clock(load.profile, time)
        ids.append(f"parktwin-shift-{jid}")
        multipliers.append(values)
        end += len(values)
        new_offsets.append(end)
        pattern[categories[j]] = len(ids) - 1
        base[categories[j]] = load.mean_m3s / net.options.demand_multiplier if net.options.demand_multiplier else 0.0
    patterns = Patterns(ids=tuple(ids), offset=np.concatenate([offsets[0], np.asarray(new_offsets, np.int64)]),
                        multipliers=np.concatenate(multipliers))
    clock = replace(time, duration_s=SECONDS_PER_DAY, hydraulic_step_s=min(time.hydraulic_step_s, step) or step,
                    report_step_s=step, report_start_s=0, rule_step_s=min(time.rule_step_s, step) or step)
    daily = replace(net, demand_pattern=pattern, demand_base_m3s=base, patterns=patterns, time=clock)
    mult = np.zeros((1, net.n_junctions))
    for jid in loads:
        mult[0, net.node_index(jid)] = 1.0
    return daily, BatchInputs(batch_size=1, demand_multiplier=mult)


def with_perturbations(inputs: BatchInputs, extra: BatchInputs | None) -> BatchInputs:
    """`inputs` (the enterprise demands) with the hydraulic perturbations of a what-if added."""
    if extra is None:
        return inputs
    values = {name: getattr(extra, name) for name in BatchInputs.__dataclass_fields__
              if name not in ("batch_size", "base_demand_m3s", "demand_multiplier")}
    return replace(inputs, **values)


# ------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class NetworkHydraulics:
    """One network's hydraulic results in the park run (one scenario), SI; [T, N] or [T, L] at the
    report times, and the day's volumes per node [N] (m³)."""
    net: NetworkArrays
    times_s: np.ndarray
    pressure_m: np.ndarray
    head_m: np.ndarray
    demand_m3s: np.ndarray
    leak_m3s: np.ndarray
    flow_m3s: np.ndarray
    node_volume_m3: np.ndarray      # demand / tank inflow / reservoir inflow over the day, as demand_m3s
    leak_volume_m3: np.ndarray
    converged: bool
    failure: str = ""

    @staticmethod
    def from_results(net: NetworkArrays, res: ResultSet, volumes=None, b: int = 0) -> "NetworkHydraulics":
        """`volumes`: the run's hydraulics.extended.StepVolumes; None for a snapshot (a day at t = 0)."""
        if volumes is None:
            node_m3 = np.nan_to_num(np.asarray(res.demand_m3s[b, 0], float)) * SECONDS_PER_DAY
            leak_m3 = np.nan_to_num(np.asarray(res.leak_m3s[b, 0], float)) * SECONDS_PER_DAY
        else:
            node_m3, leak_m3 = volumes.node_m3[b].copy(), volumes.leak_m3[b].copy()
        return NetworkHydraulics(
            net, np.asarray(res.time_s), np.asarray(res.pressure_m[b], float), np.asarray(res.head_m[b], float),
            np.asarray(res.demand_m3s[b], float), np.asarray(res.leak_m3s[b], float),
            np.asarray(res.flow_m3s[b], float), node_m3, leak_m3,
            bool(np.all(res.converged[b])) and not res.failure[b], str(res.failure[b]))

    @property
    def is_snapshot(self) -> bool:
        return len(self.times_s) == 1

    def source_outflow_m3d(self) -> float:
        """Water the reservoirs put into the network over the day (negative: taken in)."""
        res_nodes = np.flatnonzero(self.net.node_kind == NodeKind.RESERVOIR)
        return -float(np.sum(self.node_volume_m3[res_nodes]))

    def storage_change_m3(self) -> float:
        """Tank volume at the end of the day minus at its start (a snapshot: the tanks' inflow for a day)."""
        # A tank's 'demand' is its net inflow (EPANET's convention).
        return float(np.sum(self.node_volume_m3[self.net.tank_node]))
