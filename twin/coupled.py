"""The coupled park run: allocation (twin.balance), the three networks solved, balance and indicators.

Two modes. The 24 h run (the default, ``duration_s=86400``): each enterprise draws and discharges its
daily volumes over its shift hours (twin.park_hydraulics), the networks run 24 h from midnight with
their tanks, controls and patterns, and every daily figure is the day's integral of the hourly flows.
The snapshot (``duration_s=0``): the enterprise flows are constant daily means, solved once, and a day
of network leaks is the snapshot's leak flow times 86,400 s.

The allocation of water by grade is daily (m³/d) in both modes: the reclaimed plant's capacity is a
daily volume and its product storage is assumed to buffer the hours. In the networks every junction that
is not an enterprise junction has its demand switched off (``keep_background=False``): all of the park's
water is drawn by its enterprises. In the discharge network an enterprise's wastewater is a negative
demand, which EPANET treats as an inflow at the junction.

Network leaks are extra losses of the park (fresh network: drawn from fresh intake; reclaimed network:
from unconventional supply). Sewer leaks are part of the enterprises' discharge and only reduce what
reaches the wastewater plant. Demand a network could not deliver (pressure-driven runs, failures) is not
water drawn, so it is reported as ``unserved_m3d`` per network rather than booked as a loss. Tank storage
change over the day is reported per network and closes the network's own balance (source outflow =
delivered + leaks + storage change); the park balance takes the day as one cycle of the tanks.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from parktwin.hydraulics.compile import load_network
from parktwin.hydraulics.extended import run_extended
from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
from parktwin.twin import balance as bal
from parktwin.twin.boundary import CLOSURE_TOLERANCE, BoundaryBalance, boundary_balance
from parktwin.twin.indicators import (IntensityBaseline, ParkBalance, Targets, evaluate, low_pressure_junctions, network_leakage_rate,
                             unserved_demand)
from parktwin.twin.park_hydraulics import (SECONDS_PER_DAY, JunctionLoad, NetworkHydraulics, combine_loads, daily_network,
                                  snapshot_inputs, with_perturbations)
from parktwin.twin.park_quality import ParkQuality, park_quality
from parktwin.twin.park_schema import NETWORKS, Park
from parktwin.twin.periodic import ONE_DAY, DailyVolumes, Periodicity, level_change_m, tank_levels_at_midnight

MIN_PRESSURE_M = 10.0
DURATIONS_S = (0, SECONDS_PER_DAY)
# Enterprise demands come from the allocation; these perturbation attributes would fight it.
DEMAND_ATTRIBUTES = ("demand_multiplier", "base_demand_m3s")


@dataclass(frozen=True)
class NetworkService:
    """One network's hydraulic figures over the run (m³/d, m); pressures are minima over the day."""
    name: str
    converged: bool
    leaks_m3d: float
    requested_m3d: float            # |enterprise demand| set at the enterprise junctions
    delivered_m3d: float            # |demand| the solver delivered there
    low_pressure_junctions: tuple[str, ...]
    min_pressure_m: float
    enterprise_pressure_m: dict = field(default_factory=dict)   # enterprise -> min pressure at its junction
    source_outflow_m3d: float = 0.0  # what the reservoirs gave (negative: took in, the discharge plant)
    storage_change_m3d: float = 0.0  # tank volume at the end of the day minus at its start
    closure_residual_m3d: float = 0.0  # source outflow - (junction demands + leaks + storage change)
    # What junctions drew that no enterprise booked (background demands, emitters in the file), m³/d.
    unbooked_outflow_m3d: float = 0.0
    failure: str = ""

    @property
    def unserved_m3d(self) -> float:
        return max(self.requested_m3d - self.delivered_m3d, 0.0)

    def as_dict(self) -> dict:
        return {"converged": self.converged, "failure": self.failure, "leaks_m3d": self.leaks_m3d,
                "requested_m3d": self.requested_m3d, "delivered_m3d": self.delivered_m3d,
                "unserved_m3d": self.unserved_m3d, "source_outflow_m3d": self.source_outflow_m3d,
                "storage_change_m3d": self.storage_change_m3d, "closure_residual_m3d": self.closure_residual_m3d,
                "unbooked_outflow_m3d": self.unbooked_outflow_m3d,
                "min_pressure_m": self.min_pressure_m, "low_pressure_junctions": list(self.low_pressure_junctions),
                "enterprise_pressure_m": dict(self.enterprise_pressure_m)}


@dataclass(frozen=True)
class ParkRunResult:
    park_name: str
    duration_s: int
    allocation: bal.Allocation
    park_balance: ParkBalance
    indicators: dict
    balance: dict                   # twin.balance.balance_table, plus "networks"
    service: dict                   # network name -> NetworkService
    min_pressure_m: float = MIN_PRESSURE_M
    hydraulics: dict = field(default_factory=dict)   # network name -> twin.park_hydraulics.NetworkHydraulics
    boundary: BoundaryBalance | None = None          # twin.boundary: the balance at the park's fence
    days: dict = field(default_factory=dict)          # days run, the reported day, whether it is periodic
    quality: ParkQuality | None = None                # twin.park_quality: TDS; None without park.toml [quality]

    def service_violations(self) -> list[dict]:
        """Enterprises whose supply or reclaimed junction falls below the service pressure, and networks
        that did not converge or left demand unserved."""
        out = []
        for name, s in self.service.items():
            if not s.converged:
                out.append({"network": name, "kind": "not_converged", "detail": s.failure or "did not converge"})
            if s.unserved_m3d > 1e-6 * max(s.requested_m3d, 1.0):
                out.append({"network": name, "kind": "unserved_demand", "value_m3d": s.unserved_m3d})
            scale = max(abs(s.source_outflow_m3d), s.requested_m3d, 1.0)
            if abs(s.closure_residual_m3d) > bal.CLOSURE_TOLERANCE * scale:
                # Typically a part of the network cut off from every reservoir and tank (a full tank
                # closes its inlet): its demands cannot be met, whatever the solver reports.
                out.append({"network": name, "kind": "balance_not_closed", "value_m3d": s.closure_residual_m3d,
                            "detail": "source outflow differs from demands + leaks + storage change: part of the "
                                      "network is cut off from every reservoir and tank"})
            if name == "discharge":
                continue        # a sewer main's pressure is not a service level
            for ent, p in s.enterprise_pressure_m.items():
                if not p >= self.min_pressure_m:
                    out.append({"network": name, "kind": "low_pressure", "enterprise": ent, "pressure_m": p,
                                "min_pressure_m": self.min_pressure_m})
        return out


def enterprise_loads(park: Park, alloc: bal.Allocation) -> dict[str, dict[str, JunctionLoad]]:
    """network -> junction id -> load (daily mean m³/s, shift profile); discharge is negative (an inflow)."""
    parts: dict[str, dict[str, list]] = {n: {} for n in NETWORKS}
    for e, f in zip(park.enterprises, alloc.enterprises):
        for net_name, q in (("supply", f.intake_fresh), ("reclaimed", f.intake_reclaimed),
                            ("discharge", -f.discharge)):
            parts[net_name].setdefault(e.junctions[net_name], []).append((q / SECONDS_PER_DAY, e.shift_hours))
    return {n: {j: combine_loads(p) for j, p in by_j.items()} for n, by_j in parts.items()}


def perturbation_inputs(park: Park, net_name: str, net) -> BatchInputs | None:
    """The park's hydraulic what-ifs on one network as solver inputs (None when it has none)."""
    rows = [(c.element, c.attribute, c.value) for c in park.hydraulic_changes if c.network == net_name]
    if not rows:
        return None
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbations import PerturbationTable
    for element, attribute, _ in rows:
        if attribute in DEMAND_ATTRIBUTES:
            raise ValueError(f"{net_name}: {element}: {attribute}: the park's demands come from its enterprises; "
                             "change them with ExpandEnterprise or AddEnterprise")
    table = PerturbationTable.from_rows([("what-if", *r) for r in rows], source=f"{net_name} what-if")
    return build_batch(table, net).inputs


def municipal_head_inputs(park: Park, net) -> BatchInputs | None:
    """The city's fresh-water head on the supply network's municipal reservoir, where the park names it."""
    if park.city.fresh_reservoir is None:
        return None
    heads = np.full((1, len(net.reservoir_node)), np.nan)
    r = list(net.reservoir_node).index(net.node_index(park.city.fresh_reservoir))
    heads[0, r] = park.city.fresh_head_m
    return BatchInputs(batch_size=1, reservoir_head_m=heads)


def network_changes(park: Park, net_name: str, net) -> BatchInputs | None:
    """Everything the park puts on one network besides its enterprises' demands, for one scenario: its
    hydraulic what-ifs and, on the supply network, the city's head (None when there is nothing)."""
    extra = perturbation_inputs(park, net_name, net)
    head = municipal_head_inputs(park, net) if net_name == "supply" else None
    if head is None:
        return extra
    if extra is None:
        return head
    if extra.reservoir_head_m is None:
        return replace(extra, reservoir_head_m=head.reservoir_head_m)
    # A raw reservoir_head_m row of a what-if is more specific than the city's head: it wins.
    return replace(extra, reservoir_head_m=np.where(np.isnan(extra.reservoir_head_m), head.reservoir_head_m,
                                                    extra.reservoir_head_m))


def _solve(park: Park, net_name: str, loads: dict[str, JunctionLoad], options: SolverOptions,
           duration_s: int, keep_background: bool):
    """Snapshot: the network's NetworkHydraulics. Otherwise a run of `duration_s` (whole days): the
    network, its ResultSet and its DailyVolumes."""
    net = load_network(park.network_path(net_name))
    extra = network_changes(park, net_name, net)
    if duration_s:
        if keep_background:
            raise ValueError("keep_background applies to the snapshot only")
        net, inputs = daily_network(net, loads)
    else:
        inputs = snapshot_inputs(net, loads, keep_background)
    solver = HydraulicSolver(net, options)
    inputs = with_perturbations(inputs, extra)
    if not duration_s:
        return NetworkHydraulics.from_results(net, solver.run(inputs, 0))
    volumes = DailyVolumes(inputs.batch_size, net.n_nodes, duration_s // SECONDS_PER_DAY)
    return net, run_extended(solver, inputs, duration_s, volumes=volumes), volumes


def _day_of(net, res, volumes: DailyVolumes, day: int) -> NetworkHydraulics:
    """One day (0-based) of a multi-day run, its report times from its midnight to the next, on the day's
    own clock (0 .. 86,400 s), as a one-day run gives them."""
    h = NetworkHydraulics.from_results(net, res, volumes.days[day])
    t = h.times_s
    keep = (t >= day * SECONDS_PER_DAY) & (t <= (day + 1) * SECONDS_PER_DAY)
    return replace(h, times_s=t[keep] - day * SECONDS_PER_DAY, pressure_m=h.pressure_m[keep], head_m=h.head_m[keep],
                   demand_m3s=h.demand_m3s[keep], leak_m3s=h.leak_m3s[keep], flow_m3s=h.flow_m3s[keep])


def _solve_periodic(park: Park, loads: dict, options: SolverOptions, periodicity: Periodicity):
    """The networks run for 1, 2, 4, ... days (or `periodicity.days`); the reported day and its figures."""
    for n_days in periodicity.run_lengths():
        runs = {n: _solve(park, n, loads[n], options, n_days * SECONDS_PER_DAY, False) for n in NETWORKS}
        levels = {n: tank_levels_at_midnight(net, np.asarray(res.time_s), np.asarray(res.head_m[0], float))
                  for n, (net, res, _) in runs.items()}
        failed = any(res.failure[0] for _, res, _ in runs.values())
        changes = [{n: level_change_m(lv, k) if lv.size == 0 or lv.shape[0] > k + 1 else math.nan for n, lv in levels.items()}
                   for k in range(n_days)]
        repeats = [all(c <= periodicity.tolerance_m for c in ch.values()) for ch in changes]
        if periodicity.days is not None:
            day = n_days - 1
        elif any(repeats) and not failed:
            day = repeats.index(True)
        elif n_days < periodicity.max_days and not failed:
            continue
        else:
            day = n_days - 1
        info = {"days_run": n_days, "reported_day": day + 1, "periodic": bool(repeats[day]),
                "tank_level_change_m": changes[day], "tolerance_m": periodicity.tolerance_m,
                "mode": "until periodic" if periodicity.days is None else f"{periodicity.days} day(s)"}
        return {n: _day_of(net, res, vol, day) for n, (net, res, vol) in runs.items()}, info
    raise AssertionError("run_lengths() is never empty")


def network_service(park: Park, net_name: str, loads: dict[str, JunctionLoad], h: NetworkHydraulics,
                    min_pressure_m: float) -> NetworkService:
    """Daily figures of one network from its hydraulics."""
    net = h.net
    nj = net.n_junctions
    p = np.nanmin(h.pressure_m[:, :nj], axis=0) if nj else np.zeros(0)
    loaded = sorted({net.node_index(j) for j in loads})
    delivered = math.fsum(abs(float(v)) for v in h.node_volume_m3[loaded])
    requested = math.fsum(abs(load.mean_m3s) for load in loads.values()) * SECONDS_PER_DAY
    leaks = float(np.sum(h.leak_volume_m3))
    junction_demand = float(np.sum(h.node_volume_m3[:nj]))
    source, storage = h.source_outflow_m3d(), h.storage_change_m3()
    pressures = {e.name: float(p[net.node_index(e.junctions[net_name])]) for e in park.enterprises}
    return NetworkService(
        name=net_name, converged=h.converged, leaks_m3d=leaks, requested_m3d=requested, delivered_m3d=delivered,
        low_pressure_junctions=tuple(net.node_ids[i] for i in np.flatnonzero(~(p >= min_pressure_m))),
        min_pressure_m=float(np.min(p)) if nj else math.nan, enterprise_pressure_m=pressures,
        source_outflow_m3d=source, storage_change_m3d=storage,
        closure_residual_m3d=source - (junction_demand + leaks + storage),
        unbooked_outflow_m3d=junction_demand - float(np.sum(h.node_volume_m3[loaded])), failure=h.failure)


def service_indicators(service: dict, min_pressure_m: float) -> dict:
    """Per service network (supply, reclaimed): CJJ 92 network leakage, junctions below the service
    pressure and unserved demand, keyed "<indicator>[<network>]"."""
    out = {}
    for name in ("supply", "reclaimed"):
        s = service[name]
        # Solver round-off (1e-12 m³/d) is not unserved demand.
        unserved = s.unserved_m3d if s.unserved_m3d > 1e-9 * max(s.requested_m3d, 1.0) else 0.0
        for ind in (network_leakage_rate(name, s.leaks_m3d, s.delivered_m3d),
                    low_pressure_junctions(name, len(s.low_pressure_junctions), min_pressure_m),
                    unserved_demand(name, unserved)):
            out[f"{ind.name}[{name}]"] = ind.as_dict()
    return out


def indicator_targets(park: Park) -> Targets:
    t = park.targets
    baseline = None
    if t.intensity_baseline_m3_per_10k_yuan is not None:
        baseline = IntensityBaseline(t.intensity_baseline_m3_per_10k_yuan, t.intensity_baseline_year,
                                     t.intensity_price_basis, t.intensity_reduction_fraction)
    return Targets(reuse_rate=t.reuse_rate_fraction, substitution_rate=t.substitution_rate_fraction,
                   park_reclaimed_as=t.park_reclaimed_as, water_per_10k_yuan_baseline=baseline)


def _apply_sector_quotas(park: Park, indicators: dict) -> dict:
    """The park's own sector quotas replace the provincial benchmark as target of intake per unit product."""
    for e in park.enterprises:
        quota = park.targets.sector_quotas_m3_per_unit.get(e.sector)
        d = indicators.get(f"intake_per_unit_product[{e.name}]")
        if d is not None and not e.has_quota:
            d["sector"] = e.sector
            d["quota_source"] = "none: the sector has no row in the provincial quota table"
        if quota is None or d is None:
            continue
        d["target"], d["target_source"] = quota, "park.toml targets.sector_quotas_m3_per_unit"
        d["met"] = None if d["value"] is None else d["value"] <= quota
    return indicators


def run_park(park: Park, duration_s: int = SECONDS_PER_DAY, options: SolverOptions = SolverOptions(), *,
             min_pressure_m: float = MIN_PRESSURE_M, keep_background: bool = False,
             periodicity: Periodicity = ONE_DAY) -> ParkRunResult:
    """Allocate, solve the supply, reclaimed and discharge networks (a day of a periodic run, or a
    snapshot), book the per-unit balance, measure the boundary balance, evaluate the indicators.
    `periodicity`: how many days to run (default one; `Periodicity()` runs until the tanks repeat)."""
    if duration_s not in DURATIONS_S:
        raise ValueError(f"duration_s: the coupled run is a day (86400) or a snapshot (0), got {duration_s!r}")
    first = bal.allocate(park)
    loads = enterprise_loads(park, first)
    if duration_s:
        hydraulics, days = _solve_periodic(park, loads, options, periodicity)
    else:
        hydraulics = {n: _solve(park, n, loads[n], options, 0, keep_background) for n in NETWORKS}
        days = {"days_run": 0, "reported_day": None, "periodic": None, "mode": "snapshot"}
    service = {n: network_service(park, n, loads[n], hydraulics[n], min_pressure_m) for n in NETWORKS}
    alloc = bal.allocate(park, sewer_losses_m3d=service["discharge"].leaks_m3d)
    bal.check_closure(alloc)
    pb = bal.park_balance(park, alloc, network_losses_fresh=service["supply"].leaks_m3d,
                          network_losses_reclaimed=service["reclaimed"].leaks_m3d,
                          network_losses_sewer=service["discharge"].leaks_m3d)
    indicators = _apply_sector_quotas(park, evaluate(pb, indicator_targets(park)))
    indicators.update(service_indicators(service, min_pressure_m))
    table = bal.balance_table(alloc, pb)
    table["networks"] = {n: s.as_dict() for n, s in service.items()}
    boundary = boundary_balance(park, alloc, service)
    table["boundary"] = boundary.as_dict()
    # The per-unit books close by construction (losses are what is left): only the boundary is a check.
    indicators = {k: v for k, v in indicators.items() if not k.startswith("balance_closure[")}
    indicators["boundary_closure"] = {
        "value": boundary.closure, "unit": "fraction", "target": CLOSURE_TOLERANCE,
        "met": None if boundary.closure is None else boundary.closes,
        "formula": "|Σin - Σout - ΔS| / Σin, metered at the park boundary (twin.boundary)",
        "reason": None if boundary.closure is not None else "nothing came in",
        "residual_m3d": boundary.residual_m3d}
    # TDS rides on the final allocation (after sewer losses): the same flows as the balance table.
    quality = park_quality(park, alloc)
    if quality is not None:
        table["quality"] = quality.as_dict()
    return ParkRunResult(park.name, int(duration_s), alloc, pb, indicators, table, service, min_pressure_m,
                         hydraulics, boundary, days, quality)


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


def write_outputs(result: ParkRunResult, out_dir: str | Path) -> tuple[Path, Path]:
    """indicators.json (value, unit, target, met, ...) and balance.json (m³/d) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"park": result.park_name, "duration_s": result.duration_s,
            "mode": "snapshot (daily averages)" if result.duration_s == 0 else "24 h (daily integrals)",
            "days": result.days}
    ind_path, bal_path = out / "indicators.json", out / "balance.json"
    ind_path.write_text(json.dumps(_plain({**meta, "indicators": result.indicators,
                                           "service_violations": result.service_violations()}),
                                   indent=2, ensure_ascii=False))
    bal_path.write_text(json.dumps(_plain({**meta, "min_pressure_m": result.min_pressure_m, **result.balance}),
                                   indent=2, ensure_ascii=False))
    return ind_path, bal_path
