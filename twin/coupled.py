"""The coupled park run: allocation (twin.balance), the three networks solved, balance and indicators.

Snapshot only for now (``duration_s=0``): every figure is a daily average in m³/d, the enterprise flows
enter the networks as constant demands at their junctions (need / 86400 s), and network leaks at that
instant are taken as the day's average. Each enterprise junction's first demand category is set so that
the demand at t = 0 equals the enterprise flow (the file's pattern factor at t = 0 and global demand
multiplier are divided out); every other junction's demand is switched off (``keep_background=False``)
because all water of the park is drawn by its enterprises. In the discharge network an enterprise's
wastewater is a negative demand, which EPANET treats as an inflow at the junction.

Network leaks are extra losses of the park (fresh network: drawn from fresh intake; reclaimed network:
from unconventional supply). Sewer leaks are part of the enterprises' discharge and only reduce what
reaches the wastewater plant. Demand a network could not deliver (pressure-driven runs, failures) is not
water drawn, so it is reported as ``unserved_m3d`` per network rather than booked as a loss.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hydraulics.compile import load_network
from hydraulics.inputs import BatchInputs
from hydraulics.solver import HydraulicSolver, SolverOptions
from twin import balance as bal
from twin.indicators import ParkBalance, Targets, evaluate
from twin.park_schema import NETWORKS, Park

SECONDS_PER_DAY = 86400.0
MIN_PRESSURE_M = 10.0


@dataclass(frozen=True)
class NetworkService:
    """One network's hydraulic figures (m³/d, m)."""
    name: str
    converged: bool
    leaks_m3d: float
    requested_m3d: float            # |enterprise demand| set at the enterprise junctions
    delivered_m3d: float            # |demand| the solver delivered there
    low_pressure_junctions: tuple[str, ...]
    min_pressure_m: float
    enterprise_pressure_m: dict = field(default_factory=dict)   # enterprise -> pressure at its junction

    @property
    def unserved_m3d(self) -> float:
        return max(self.requested_m3d - self.delivered_m3d, 0.0)

    def as_dict(self) -> dict:
        return {"converged": self.converged, "leaks_m3d": self.leaks_m3d, "requested_m3d": self.requested_m3d,
                "delivered_m3d": self.delivered_m3d, "unserved_m3d": self.unserved_m3d,
                "min_pressure_m": self.min_pressure_m, "low_pressure_junctions": list(self.low_pressure_junctions),
                "enterprise_pressure_m": dict(self.enterprise_pressure_m)}


@dataclass(frozen=True)
class ParkRunResult:
    park_name: str
    duration_s: int
    allocation: bal.Allocation
    park_balance: ParkBalance
    indicators: dict
    balance: dict                   # twin.balance.balance_table
    service: dict                   # network name -> NetworkService
    min_pressure_m: float = MIN_PRESSURE_M


def enterprise_flows_m3s(park: Park, alloc: bal.Allocation) -> dict[str, dict[str, float]]:
    """network -> junction id -> flow in m³/s (discharge network: negative, an inflow)."""
    out = {n: {} for n in NETWORKS}
    for e, f in zip(park.enterprises, alloc.enterprises):
        for net_name, q in (("supply", f.intake_fresh), ("reclaimed", f.intake_reclaimed),
                            ("discharge", -f.discharge)):
            jid = e.junctions[net_name]
            out[net_name][jid] = out[net_name].get(jid, 0.0) + q / SECONDS_PER_DAY
    return out


def _demand_inputs(net, flows: dict[str, float], keep_background: bool) -> BatchInputs:
    """Base demands that give `flows` (m³/s) at t = 0 at the named junctions."""
    nj = net.n_junctions
    base = np.full((1, nj), np.nan)
    mult = np.ones((1, nj)) if keep_background else np.zeros((1, nj))
    categories = np.bincount(net.demand_node[net.demand_node < nj], minlength=nj)
    t = net.time
    period = t.pattern_start_s // t.pattern_step_s if t.pattern_step_s > 0 else 0
    for jid, q in flows.items():
        j = net.node_index(jid)
        cats = np.flatnonzero(net.demand_node == j)
        if categories[j] == 0 and q != 0.0:
            raise ValueError(f"{net.name}: junction {jid!r} has no demand category to carry an enterprise flow "
                             "(give it a [DEMANDS]/[JUNCTIONS] demand, even 0)")
        if categories[j] > 1 and np.any(net.demand_base_m3s[cats[1:]] != 0):
            raise ValueError(f"{net.name}: junction {jid!r} has {categories[j]} demand categories; an "
                             "enterprise junction may carry only its enterprise's demand")
        pat = net.demand_pattern[cats[0]] if len(cats) else -1
        factor = net.options.demand_multiplier * (net.patterns.at_period(pat, period) if pat >= 0 else 1.0)
        if factor == 0.0 and q != 0.0:
            raise ValueError(f"{net.name}: junction {jid!r}: its demand pattern is 0 at t = 0")
        base[0, j] = q / factor if q != 0.0 else 0.0
        mult[0, j] = 1.0
    return BatchInputs(batch_size=1, base_demand_m3s=base, demand_multiplier=mult)


def _solve(park: Park, net_name: str, flows: dict[str, float], options: SolverOptions,
           min_pressure_m: float, keep_background: bool) -> NetworkService:
    net = load_network(park.network_path(net_name))
    res = HydraulicSolver(net, options).run(_demand_inputs(net, flows, keep_background), 0)
    nj = net.n_junctions
    p = np.asarray(res.pressure_m[0, 0, :nj], dtype=float)
    idx = {jid: net.node_index(jid) for jid in flows}
    delivered = math.fsum(abs(float(res.demand_m3s[0, 0, i])) for i in set(idx.values())) * SECONDS_PER_DAY
    requested = math.fsum(abs(q) for q in flows.values()) * SECONDS_PER_DAY
    pressures = {e.name: float(p[net.node_index(e.junctions[net_name])]) for e in park.enterprises}
    return NetworkService(
        name=net_name, converged=bool(np.all(res.converged)) and not any(res.failure),
        leaks_m3d=float(np.nansum(res.leak_m3s[0, 0, :])) * SECONDS_PER_DAY,
        requested_m3d=requested, delivered_m3d=delivered,
        low_pressure_junctions=tuple(net.node_ids[i] for i in np.flatnonzero(p < min_pressure_m)),
        min_pressure_m=float(np.min(p)) if nj else math.nan, enterprise_pressure_m=pressures)


def indicator_targets(park: Park) -> Targets:
    t = park.targets
    return Targets(reuse_rate=t.reuse_rate_fraction, substitution_rate=t.substitution_rate_fraction)


def _apply_sector_quotas(park: Park, indicators: dict) -> dict:
    """The park's own sector quotas replace the provincial benchmark as target of intake per unit product."""
    for e in park.enterprises:
        quota = park.targets.sector_quotas_m3_per_unit.get(e.sector)
        d = indicators.get(f"intake_per_unit_product[{e.name}]")
        if quota is None or d is None:
            continue
        d["target"], d["target_source"] = quota, "park.toml targets.sector_quotas_m3_per_unit"
        d["met"] = None if d["value"] is None else d["value"] <= quota
    return indicators


def run_park(park: Park, duration_s: int = 0, options: SolverOptions = SolverOptions(), *,
             min_pressure_m: float = MIN_PRESSURE_M, keep_background: bool = False) -> ParkRunResult:
    """Allocate, solve the supply, reclaimed and discharge networks, close the balance, evaluate."""
    if duration_s:
        raise NotImplementedError("the coupled 24 h run is not implemented yet; use duration_s=0 (snapshot, "
                                  "daily averages)")
    first = bal.allocate(park)
    flows = enterprise_flows_m3s(park, first)
    service = {n: _solve(park, n, flows[n], options, min_pressure_m, keep_background) for n in NETWORKS}
    alloc = bal.allocate(park, sewer_losses_m3d=service["discharge"].leaks_m3d)
    bal.check_closure(alloc)
    pb = bal.park_balance(park, alloc, network_losses_fresh=service["supply"].leaks_m3d,
                          network_losses_reclaimed=service["reclaimed"].leaks_m3d)
    indicators = _apply_sector_quotas(park, evaluate(pb, indicator_targets(park)))
    table = bal.balance_table(alloc, pb)
    table["networks"] = {n: s.as_dict() for n, s in service.items()}
    return ParkRunResult(park.name, int(duration_s), alloc, pb, indicators, table, service, min_pressure_m)


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
            "mode": "snapshot (daily averages)" if result.duration_s == 0 else "extended period"}
    ind_path, bal_path = out / "indicators.json", out / "balance.json"
    ind_path.write_text(json.dumps(_plain({**meta, "indicators": result.indicators}), indent=2, ensure_ascii=False))
    bal_path.write_text(json.dumps(_plain({**meta, "min_pressure_m": result.min_pressure_m, **result.balance}),
                                   indent=2, ensure_ascii=False))
    return ind_path, bal_path
