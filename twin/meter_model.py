"""The park's networks over a day with given enterprise loads, and what each declared meter reads in it.

Reconciliation runs the model with the metered enterprise flows; the synthetic readings of the tests and
benchmarks run it with the books' flows, demand noise and a hidden leak. Both go through here, so the
twin and its synthetic truth share one model.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from parktwin.hydraulics.compile import load_network
from parktwin.hydraulics.extended import run_extended
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
from parktwin.twin import balance as bal
from parktwin.twin.coupled import enterprise_loads, network_changes
from parktwin.twin.park_hydraulics import (SECONDS_PER_DAY, JunctionLoad, NetworkHydraulics, daily_network,
                                           with_perturbations)
from parktwin.twin.park_schema import NETWORKS, Meter, Park
from parktwin.twin.periodic import DailyVolumes


def book_loads(park: Park) -> dict[str, dict[str, JunctionLoad]]:
    """network -> enterprise junction -> load, from the park's books (discharge negative: an inflow)."""
    return enterprise_loads(park, bal.allocate(park))


def run_day(park: Park, loads: dict[str, dict[str, JunctionLoad]], report_step_s: int = 900,
            options: SolverOptions = SolverOptions()) -> dict[str, NetworkHydraulics]:
    """Each network solved for 24 h from its clock's midnight with `loads` and the park's what-ifs
    (`park.hydraulic_changes`: a hidden leak is one), reported every `report_step_s`."""
    out = {}
    for name in NETWORKS:
        net = load_network(park.network_path(name))
        extra = network_changes(park, name, net)
        day, inputs = daily_network(net, loads[name], report_step_s)
        volumes = DailyVolumes(1, day.n_nodes, 1)
        res = run_extended(HydraulicSolver(day, options), with_perturbations(inputs, extra), SECONDS_PER_DAY,
                           volumes=volumes)
        if res.failure[0]:
            raise RuntimeError(f"{name}.inp: the day did not solve: {res.failure[0]}")
        out[name] = NetworkHydraulics.from_results(day, res, volumes.days[0])
    return out


def meter_values(meter: Meter, h: NetworkHydraulics) -> np.ndarray:
    """What `meter` reads at the report times of `h` (SI; flows into an enterprise or out of a source
    positive, a discharge inflow positive)."""
    net = h.net
    if meter.quantity in ("pressure_m", "level_m"):
        i = net.node_index(meter.element)
        if meter.quantity == "pressure_m":
            return h.pressure_m[:, i]
        return h.head_m[:, i] - net.elevation_m[i]
    if meter.element in net.link_ids and meter.element not in net.junction_ids:
        flow = np.abs(h.flow_m3s[:, net.link_index(meter.element)])
    else:
        flow = np.abs(h.demand_m3s[:, net.node_index(meter.element)])
    if meter.quantity == "flow_m3s":
        return flow
    # volume_m3: a totaliser from 0 at midnight, the flow held over each report step
    dt = np.diff(h.times_s, append=h.times_s[-1])
    return np.concatenate([[0.0], np.cumsum(flow * dt)[:-1]])


def with_changes(park: Park, changes) -> Park:
    """The park with extra hydraulic what-ifs (a hidden leak), for synthetic truth."""
    return replace(park, hydraulic_changes=tuple(park.hydraulic_changes) + tuple(changes))
