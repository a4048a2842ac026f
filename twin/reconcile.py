"""The twin against its meters: a period of ledger readings reconciled with the park's model and books.

For the period [from, to) (whole days from the model's midnight) reconciliation
1. reads the declared meters' readings from the ledger, after verifying it (tampered data is refused);
2. runs the park's networks with the metered enterprise flows (each enterprise junction with a meter
   draws its metered flow, clock hour by clock hour, averaged over the period's days; the others their
   books), so the model answers "what should the intake, pressures and levels have been, given what
   the enterprises took?";
3. reports per meter measured against modelled (mean, bias, RMS difference, volume), the boundary
   balance from the meters against the books and against the model (twin.boundary), and per network
   the unexplained volume: intake − enterprise meters − storage change (supply, reclaimed: real
   losses plus meter error, what a utility calls non-revenue water) and enterprise discharges − outfall
   − storage change (discharge: exfiltration).

A flow reading holds until the next one (a meter reads the flow at its time); a volume meter is a
totaliser (volume = last − first); tank storage comes from level meters (level change × tank area) or,
for a tank without one, from the model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parktwin.hydraulics.solver import SolverOptions
from parktwin.twin import balance as bal
from parktwin.twin.boundary import boundary_balance
from parktwin.twin.coupled import MIN_PRESSURE_M, network_service
from parktwin.twin.ledger import LedgerError, connect
from parktwin.twin.meter_model import book_loads, meter_values, run_day
from parktwin.twin.meter_readings import format_time_us
from parktwin.twin.park_hydraulics import SECONDS_PER_DAY, JunctionLoad
from parktwin.twin.park_schema import NETWORKS, Meter, Park

US = 1_000_000


@dataclass(frozen=True)
class ReconcileOptions:
    report_step_s: int = 900                  # the model's report step, where readings are compared
    solver: SolverOptions = SolverOptions()


@dataclass(frozen=True)
class Series:
    meter: Meter
    t_s: np.ndarray          # seconds from the period's start
    values: np.ndarray


def read_series(ledger: Path, meters: tuple[Meter, ...], from_us: int, to_us: int) -> dict[str, Series]:
    """The declared meters' readings in [from, to] (to included: a level at the period's end)."""
    con = connect(ledger)
    try:
        rows = con.execute("SELECT meter, time_us, quantity, value FROM readings WHERE time_us >= ? AND time_us <= ? "
                           "ORDER BY meter, time_us", (from_us, to_us)).fetchall()
    finally:
        con.close()
    by_meter: dict[str, list] = {}
    declared = {m.id: m for m in meters}
    for meter, t, q, v in rows:
        m = declared.get(meter)
        if m is not None and m.quantity == q:
            by_meter.setdefault(meter, []).append((t, v))
    return {mid: Series(declared[mid], (np.array([t for t, _ in r]) - from_us) / US, np.array([v for _, v in r], float))
            for mid, r in by_meter.items()}


def flow_of(s: Series, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(times, m³/s) of a flow or volume meter inside [0, duration): a totaliser differenced."""
    if s.meter.quantity == "flow_m3s":
        keep = s.t_s < duration_s
        return s.t_s[keep], s.values[keep]
    dt = np.diff(s.t_s)
    if np.any(dt <= 0):
        raise ValueError(f"meter {s.meter.id!r}: two volume readings at one time")
    return s.t_s[:-1], np.diff(s.values) / dt


def held_volume_m3(t_s: np.ndarray, q: np.ndarray, duration_s: float) -> float:
    """∫ q dt over [0, duration), each reading held until the next (the first also back to 0)."""
    if len(t_s) == 0:
        return math.nan
    edges = np.concatenate([[0.0], t_s[1:], [duration_s]])
    return float(np.sum(q * np.diff(edges)))


def hourly_load(t_s: np.ndarray, q: np.ndarray, duration_s: float) -> JunctionLoad:
    """The held flow's mean per clock hour over the period's days, as a load (mean and 24 factors)."""
    grid = np.arange(0.0, duration_s, 60.0)
    held = q[np.clip(np.searchsorted(t_s, grid, side="right") - 1, 0, None)]
    hours = ((grid % SECONDS_PER_DAY) // 3600).astype(int)
    hourly = np.bincount(hours, held, 24) / np.bincount(hours, minlength=24)
    mean = float(hourly.mean())
    return JunctionLoad(mean, hourly / mean if mean > 0 else np.ones(24))


def _metered_loads(park: Park, series: dict[str, Series], duration_s: float) -> tuple[dict, list[str]]:
    loads = book_loads(park)
    junction_of = {(e.name, n): e.junctions[n] for e in park.enterprises for n in NETWORKS}
    used = []
    for s in series.values():
        m = s.meter
        if m.role != "enterprise" or m.enterprise is None or junction_of[(m.enterprise, m.network)] != m.element:
            continue
        t, q = flow_of(s, duration_s)
        if len(t) == 0:
            continue
        load = hourly_load(t, q, duration_s)
        sign = -1.0 if m.network == "discharge" else 1.0      # wastewater enters as a negative demand
        loads[m.network][m.element] = JunctionLoad(sign * load.mean_m3s, load.profile)
        used.append(m.id)
    return loads, used


def _tank_area_m2(net, tank_id: str) -> float | None:
    t = int(np.flatnonzero(np.asarray(net.node_ids)[net.tank_node] == tank_id)[0])
    if net.tank_volume_curve[t] >= 0:
        return None
    return math.pi * float(net.tank_diameter_m[t]) ** 2 / 4.0


def reconcile(park: Park, ledger: Path, from_us: int, to_us: int, public_key=None,
              options: ReconcileOptions = ReconcileOptions()) -> dict:
    """The reconciliation of the period as a JSON-ready dict (see the module docstring)."""
    from parktwin.twin.ledger import verify
    duration_s = (to_us - from_us) / US
    if duration_s <= 0 or duration_s % SECONDS_PER_DAY:
        raise ValueError(f"the period must be whole days from the model's midnight, got {duration_s:g} s")
    days = int(duration_s // SECONDS_PER_DAY)
    if not park.meters:
        raise ValueError(f"{park.folder}/park.toml declares no [meters]: nothing to reconcile")
    ledger_state = {"path": str(ledger), "verified": None}
    if public_key is not None:
        report = verify(ledger, public_key)
        if not report.ok:
            raise LedgerError(f"{ledger}: does not verify ({report.problems[0]}); reconciliation refuses tampered data")
        ledger_state = {"path": str(ledger), "verified": True, "readings": report.readings}
    series = read_series(ledger, park.meters, from_us, to_us)
    if not series:
        raise ValueError(f"{ledger}: no readings of the declared meters between {format_time_us(from_us)} "
                         f"and {format_time_us(to_us)}")
    loads, metered_enterprises = _metered_loads(park, series, duration_s)
    model = run_day(park, loads, options.report_step_s, options.solver)
    meters = [_meter_row(s, model[s.meter.network], duration_s) for s in series.values()]
    networks = {n: _network(n, park, series, model[n], duration_s, days) for n in NETWORKS}
    alloc = bal.allocate(park)
    service = {n: network_service(park, n, loads[n], model[n], MIN_PRESSURE_M) for n in NETWORKS}
    return {"park": park.name, "ledger": ledger_state, "from": format_time_us(from_us), "to": format_time_us(to_us),
            "days": days, "metered_enterprise_loads": metered_enterprises,
            "unread_meters": sorted(m.id for m in park.meters if m.id not in series),
            "meters": meters, "networks": networks, "books": _books(park, alloc, series, duration_s, days),
            "model_boundary_per_day": boundary_balance(park, alloc, service).as_dict()}


def _meter_row(s: Series, h, duration_s: float) -> dict:
    m = s.meter
    model = meter_values(m, h)
    idx = np.clip(np.searchsorted(h.times_s, s.t_s % SECONDS_PER_DAY, side="right") - 1, 0, len(h.times_s) - 1)
    modelled = model[idx]
    if m.quantity == "volume_m3":     # compare increments from the first reading, the totaliser's zero is arbitrary
        modelled = modelled - modelled[0] + s.values[0]
    diff = s.values - modelled
    row = {"id": m.id, "network": m.network, "element": m.element, "quantity": m.quantity, "role": m.role,
           "enterprise": m.enterprise, "readings": int(len(s.values)),
           "measured_mean": float(np.mean(s.values)), "modelled_mean": float(np.mean(modelled)),
           "bias": float(np.mean(diff)), "rms_difference": float(np.sqrt(np.mean(diff ** 2))),
           "series": {"t_s": s.t_s.tolist(), "measured": s.values.tolist(), "modelled": modelled.tolist()}}
    if m.quantity in ("flow_m3s", "volume_m3"):
        t, q = flow_of(s, duration_s)
        row["measured_volume_m3"] = held_volume_m3(t, q, duration_s)
        flow_model = meter_values(Meter(m.id, m.network, m.element, "flow_m3s", m.role), h)
        day = held_volume_m3(h.times_s[:-1], flow_model[:-1], SECONDS_PER_DAY)
        row["modelled_volume_m3"] = day * duration_s / SECONDS_PER_DAY
    return row


def _volume(series: dict[str, Series], network: str, role: str, duration_s: float) -> tuple[float, list[str]]:
    picked = [s for s in series.values() if s.meter.network == network and s.meter.role == role
              and s.meter.quantity in ("flow_m3s", "volume_m3")]
    return math.fsum(held_volume_m3(*flow_of(s, duration_s), duration_s) for s in picked), [s.meter.id for s in picked]


def _network(name: str, park: Park, series: dict[str, Series], h, duration_s: float, days: int) -> dict:
    net = h.net
    storage, sources = 0.0, {}
    levels = {s.meter.element: s for s in series.values() if s.meter.network == name and s.meter.quantity == "level_m"}
    for t_index, node in enumerate(net.tank_node):
        tank = net.node_ids[node]
        area = _tank_area_m2(net, tank)
        s = levels.get(tank)
        if s is not None and area is not None and len(s.t_s) >= 2:
            change = float(np.interp(duration_s, s.t_s, s.values) - np.interp(0.0, s.t_s, s.values)) * area
            sources[tank] = "level meter"
        else:
            change = float(h.node_volume_m3[node]) * days      # the model's tank inflow over its day
            sources[tank] = "model"
        storage += change
    enterprises, ent_ids = _volume(series, name, "enterprise", duration_s)
    out = {"enterprise_meters": ent_ids, "enterprises_m3": enterprises, "storage_change_m3": storage,
           "storage_source": sources, "model_leaks_m3": float(np.sum(h.leak_volume_m3)) * days}
    if name == "discharge":
        outfall, ids = _volume(series, name, "outfall", duration_s)
        out.update(outfall_meters=ids, outfall_m3=outfall if ids else None)
        out["unexplained_m3"] = enterprises - outfall - storage if ids else None
        out["meaning"] = "enterprise discharges - outfall - storage change: exfiltration (negative: infiltration)"
        return out
    intake, ids = _volume(series, name, "intake", duration_s)
    out.update(intake_meters=ids, intake_m3=intake if ids else None)
    unexplained = intake - enterprises - storage if ids else None
    out["unexplained_m3"] = unexplained
    out["unexplained_fraction_of_intake"] = unexplained / intake if ids and intake > 0 else None
    out["meaning"] = "intake - enterprise meters - storage change: real losses and meter error (non-revenue water)"
    out["modelled_intake_m3"] = -float(np.sum(h.node_volume_m3[net.reservoir_node])) * days
    return out


def _books(park: Park, alloc, series: dict[str, Series], duration_s: float, days: int) -> dict:
    """Per enterprise meter: its booked volume over the period against the metered one."""
    booked_of = {"supply": lambda f: f.intake_fresh, "reclaimed": lambda f: f.intake_reclaimed,
                 "discharge": lambda f: f.discharge}
    rows = []
    for s in series.values():
        m = s.meter
        if m.role != "enterprise" or m.enterprise is None or m.quantity not in ("flow_m3s", "volume_m3"):
            continue
        booked = booked_of[m.network](alloc.flows(m.enterprise)) * days
        metered = held_volume_m3(*flow_of(s, duration_s), duration_s)
        rows.append({"meter": m.id, "enterprise": m.enterprise, "network": m.network, "booked_m3": booked,
                     "metered_m3": metered, "difference_m3": metered - booked})
    return {"enterprise_meters": rows,
            "fresh_intake_booked_m3": alloc.fresh_total * days,
            "reclaimed_intake_booked_m3": math.fsum(f.intake_reclaimed for f in alloc.enterprises) * days,
            "discharge_booked_m3": math.fsum(f.discharge for f in alloc.enterprises) * days}
