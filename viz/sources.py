"""What to draw, read from where it lives: a full result file, a Monte-Carlo summary file, a plain .inp.

Each reader returns a `ViewData`: the network, one SI value per node or link for the chosen quantity,
time and scenario, and the title and subtitle that say which. Wrong choices (a quantity the source does
not hold, a time or scenario not in the file) are ValueErrors that name the value and the valid choices,
which the command line prints as one line.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.results import short_names
from parktwin.viz.quantities import (NETWORK_QUANTITIES, RESULT_QUANTITIES, SUMMARY_QUANTITIES, Quantity,
                            get_quantity)

MAX_LISTED = 12   # choices listed in an error before "... (N in all)"


@dataclass(frozen=True)
class ViewData:
    net: NetworkArrays
    quantity: Quantity
    values_si: np.ndarray | None     # [N] or [L] as quantity.location says; None: the network alone
    title: str
    subtitle: str = ""


def _listed(choices) -> str:
    shown = [str(c) for c in list(choices)[:MAX_LISTED]]
    more = f", ... ({len(choices)} in all)" if len(choices) > MAX_LISTED else ""
    return ", ".join(shown) + more


def pick_time(times_s: np.ndarray, time_s: float | None, where: str) -> int:
    """Index of `time_s` (seconds, exactly a report time of the file); None: the first."""
    times = np.asarray(times_s)
    if time_s is None:
        return 0
    hits = np.flatnonzero(np.isclose(times.astype(float), float(time_s), rtol=0.0, atol=1e-6))
    if hits.size == 0:
        raise ValueError(f"time {time_s:g} s is not in {where}; valid (s): {_listed([int(t) for t in times])}")
    return int(hits[0])


def pick_scenario(ids, scenario: str | None, where: str) -> str:
    ids = list(ids)
    if not ids:
        raise ValueError(f"{where} holds no scenario")
    if scenario is None:
        return ids[0]
    if scenario not in ids:
        raise ValueError(f"scenario {scenario!r} is not in {where}; valid: {_listed(ids)}")
    return scenario


def load_inp(path) -> NetworkArrays:
    from parktwin.hydraulics.compile import load_network
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return load_network(path)


def network_from_inp_bytes(inp: bytes, name: str) -> NetworkArrays:
    """The network a result file was solved on, from the .inp text stored in it (network/inp). Compiled
    networks are cached by the file's bytes, so a second call skips the reader."""
    from parktwin.hydraulics.compile import load_network
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or "network"))
    with tempfile.TemporaryDirectory(prefix="parktwin-viz-") as folder:
        path = Path(folder) / f"{safe}.inp"
        path.write_bytes(inp)
        return load_network(path)


def velocity_m_s(net: NetworkArrays, flow_m3s: np.ndarray) -> np.ndarray:
    """|q| / (pi d^2 / 4) per link; NaN where the link has no diameter (pumps)."""
    d = np.asarray(net.diameter_m, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.where(d > 0, np.pi * d * d / 4.0, np.nan)
        return np.abs(np.asarray(flow_m3s, dtype=float)) / area


def hydraulic_values(net: NetworkArrays, quantity: Quantity, *, pressure_m=None, head_m=None, demand_m3s=None,
                     leak_m3s=None, flow_m3s=None) -> np.ndarray:
    """One time of one run -> the values of `quantity` (SI)."""
    name = quantity.name
    if name == "elevation":
        return np.asarray(net.elevation_m, dtype=float)
    if name == "velocity":
        return velocity_m_s(net, flow_m3s)
    found = {"pressure": pressure_m, "head": head_m, "demand": demand_m3s, "leak": leak_m3s, "flow": flow_m3s}
    if name not in found or found[name] is None:
        raise ValueError(f"quantity {name!r} is not available here")
    return np.asarray(found[name], dtype=float)


# The quantity of a result file each view needs (velocity is drawn from the flows).
_RECORDED_AS = {"pressure": "pressure_m", "head": "head_m", "demand": "demand_m3s", "leak": "leak_m3s",
                "flow": "flow_m3s", "velocity": "flow_m3s"}


def file_kind(path) -> str:
    """'summary' or 'full' for a ParkTwin HDF5 file; ValueError for anything else."""
    import h5py
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("store", "") == "summary":
                return "summary"
            # a full file records pressure unless its run chose otherwise (--record: attribute `recorded`)
            if ("node/pressure" in f or "recorded" in f.attrs) and "network/inp" in f:
                return "full"
    except OSError as exc:
        raise ValueError(f"{path}: not an HDF5 result file ({exc})") from None
    raise ValueError(f"{path}: not a ParkTwin result or summary file")


def _time_label(t_s: float) -> str:
    t = float(t_s)
    return f"t = {t:g} s" if t < 3600 or t % 3600 else f"t = {t / 3600:g} h"


def from_result_file(path, quantity: str, time_s: float | None = None, scenario: str | None = None) -> ViewData:
    """A full result file (`parktwin solve|run|mc --store full`): one scenario at one report time."""
    import h5py
    from parktwin.scenarios.store import file_recorded, read_results, require_recorded
    path = Path(path)
    q = get_quantity(quantity, RESULT_QUANTITIES, f"result file {path}")
    with h5py.File(path, "r") as f:
        ids = tuple(f["scenario/ids"].asstr()[()])
        times = f["time_s"][()]
        name = str(f.attrs.get("network_name", path.stem))
        inp = f["network/inp"][()].tobytes()
        recorded = file_recorded(f)
    if q.name in _RECORDED_AS:      # a quantity the run may have left out (--record)
        require_recorded(path, _RECORDED_AS[q.name], recorded, asked=q.name)
    sid = pick_scenario(ids, scenario, str(path))
    k = pick_time(times, time_s, str(path))
    res, meta = read_results(path, scenarios=[sid])
    net = network_from_inp_bytes(inp, name)
    if tuple(res.node_ids) != tuple(net.node_ids):
        raise ValueError(f"{path}: the node ids of the results differ from those of the stored network")
    if not bool(meta["done"][0]):
        raise ValueError(f"{path}: scenario {sid!r} has not been solved yet (the run was interrupted; "
                         "finish it with --resume)")
    if q.name == "quality":
        if res.node_quality is None:
            held = ", ".join(short_names(recorded)) or "no element quantity"
            raise ValueError(f"{path}: no water quality in this file (the network's QUALITY option is NONE, "
                             f"the run is a snapshot, or --record left it out; recorded: {held})")
        q = replace(q, unit=str(meta["attrs"].get("quality_units", "")),
                    label=f"{meta['attrs'].get('quality_kind', 'water')} quality")
        values = np.asarray(res.node_quality[0, k], dtype=float)
    else:
        values = hydraulic_values(net, q, pressure_m=res.pressure_m[0, k], head_m=res.head_m[0, k],
                                  demand_m3s=res.demand_m3s[0, k], leak_m3s=res.leak_m3s[0, k],
                                  flow_m3s=res.flow_m3s[0, k])
    failure = str(res.failure[0])
    note = f"; FAILED: {failure}" if failure else ("" if bool(res.converged[0, k]) else "; NOT CONVERGED")
    title = f"{name}: {q.label}, scenario {sid}, {_time_label(times[k])}"
    return ViewData(net, q, values, title, f"{path.name}, {len(ids)} scenario(s){note}")


def from_summary_file(path, quantity: str, time_s: float | None = None, scenario: str | None = None) -> ViewData:
    """A Monte-Carlo summary file (`parktwin mc --store summary`): a statistic over all scenarios."""
    from parktwin.scenarios.summary_store import read_summary
    path = Path(path)
    if scenario is not None:
        raise ValueError(f"{path} is a Monte-Carlo summary: it holds statistics over all scenarios, not "
                         f"scenario {scenario!r}; omit --scenario")
    q = get_quantity(quantity, SUMMARY_QUANTITIES, f"Monte-Carlo summary {path}")
    stats, meta = read_summary(path)
    k = pick_time(meta["time_s"], time_s, str(path))
    name = str(meta["attrs"].get("network_name", path.stem))
    net = network_from_inp_bytes(meta["network_inp"], name)
    if q.name == "elevation":
        values = np.asarray(net.elevation_m, dtype=float)
    else:
        if q.summary_key not in stats:
            raise ValueError(f"{path}: the summary has no {q.summary_key!r} statistic")
        values = np.asarray(stats[q.summary_key][k], dtype=float)
        if q.name.startswith("quality"):
            q = replace(q, unit=str(meta["attrs"].get("quality_units", "")))
    n = int(stats.get("n_scenarios", len(meta["scenario_ids"])))
    seed = meta["attrs"].get("seed", "none")
    service = meta["options"].service_pressure_m
    title = f"{name}: {q.label}, Monte-Carlo over {n:,} scenarios, {_time_label(meta['time_s'][k])}"
    subtitle = f"{path.name}; seed {seed}; service pressure {service:g} m"
    if not meta["complete"]:
        subtitle += "; INCOMPLETE run (statistics of the scenarios done so far)"
    return ViewData(net, q, values, title, subtitle)


def from_inp(path, quantity: str, time_s: float | None = None, scenario: str | None = None) -> ViewData:
    """A plain .inp: its elevations, or its base case solved as a snapshot at t = 0."""
    path = Path(path)
    if scenario is not None:
        raise ValueError(f"{path} is a network, not a result file: it has no scenario {scenario!r}; omit "
                         "--scenario (or render a result file of `parktwin run`)")
    if time_s not in (None, 0):
        raise ValueError(f"{path}: a plain network is drawn at t = 0 only (its base case solved as a snapshot); "
                         f"for time {time_s:g} s render the result file of `parktwin solve --duration`")
    q = get_quantity(quantity, NETWORK_QUANTITIES, f"network {path}")
    net = load_inp(path)
    if q.name == "elevation":
        return ViewData(net, q, np.asarray(net.elevation_m, dtype=float), f"{net.name}: elevation", path.name)
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    res = HydraulicSolver(net, SolverOptions()).run(None, 0)
    values = hydraulic_values(net, q, pressure_m=res.pressure_m[0, 0], head_m=res.head_m[0, 0],
                              demand_m3s=res.demand_m3s[0, 0], leak_m3s=res.leak_m3s[0, 0],
                              flow_m3s=res.flow_m3s[0, 0])
    return ViewData(net, q, values, f"{net.name}: {q.label}, base case, t = 0 s", f"{path.name} (solved here)")
