"""What a scenario specification draws from in one network: `select(spec, net)` (what `spec.validate(net)`
returns) resolves the id lists, checks counts against the candidates, the row cap and Sobol's dimension
limit, and lays out the unit-sample columns the samplers fill.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from parktwin.hydraulics.network import LinkKind, NetworkArrays
from parktwin.scenarios.attributes import ElementKind, describe_element, element_columns
from parktwin.scenarios.spec_errors import MAX_ROWS, SOBOL_MAX_DIMENSIONS, SpecError
from parktwin.scenarios.spec_errors import check as _check

if TYPE_CHECKING:   # for the annotations only: scenarios.spec imports this module to validate
    from parktwin.scenarios.spec import ScenarioSpec


@dataclass(frozen=True, eq=False)
class Selection:
    """What a validated specification draws from in one network (indices into its arrays)."""

    leak_junctions: np.ndarray       # junction indices (candidates with a positive weight)
    leak_weight: np.ndarray          # 1 (uniform) or half the length of the junction's pipes, m
    demand_junctions: np.ndarray     # junctions with their own demand factor
    break_links: np.ndarray          # pipe link indices
    break_weight: np.ndarray         # 1 or the pipe's length, m
    pumps: np.ndarray                # positions in net.pump_link
    tanks: np.ndarray                # positions in net.tank_node
    reservoirs: np.ndarray           # positions in net.reservoir_node
    pipes: np.ndarray                # link indices whose roughness varies
    source_nodes: np.ndarray         # node indices whose quality source strength varies
    dimensions: tuple[tuple[str, int], ...]   # unit-sample columns per input, in column order
    rows_per_scenario: int           # upper bound: pump outages count as if every pump failed

    @property
    def n_dimensions(self) -> int:
        return sum(n for _, n in self.dimensions)


# ---------------------------------------------------------------------- against a network
_PIPE_KINDS = (LinkKind.CVPIPE, LinkKind.PIPE)


def junction_pipe_length_m(net: NetworkArrays) -> np.ndarray:
    """Half the length of the pipes at each junction: the pipe length a leak there stands for."""
    half = np.where(np.isin(net.link_kind, _PIPE_KINDS), 0.5 * net.length_m, 0.0)
    total = (np.bincount(net.link_start, half, minlength=net.n_nodes)
             + np.bincount(net.link_end, half, minlength=net.n_nodes))
    return total[: net.n_junctions]


def _resolve(path: str, ids, kind: ElementKind, net: NetworkArrays) -> np.ndarray:
    """Columns (see attributes.element_columns) of the listed ids, in network order; all if None."""
    lookup = element_columns(net, kind)
    if ids is None:
        return np.array(sorted(lookup.values()), np.int64)
    for element in ids:
        if element not in lookup:
            what = describe_element(net, element, prefer_nodes=kind.is_node)
            raise SpecError(path, f"{element!r} is not a {kind.noun} of {net.name}"
                                  f"{f' (it is a {what})' if what else ''}")
    return np.sort(np.array([lookup[e] for e in ids], np.int64))


def _weighted(path: str, columns: np.ndarray, weight: np.ndarray, count: int, noun: str,
              location: str, net: NetworkArrays) -> tuple[np.ndarray, np.ndarray]:
    """Candidates that can be drawn (positive weight) and their weights; enough for `count` distinct."""
    keep = weight > 0
    columns, weight = columns[keep], weight[keep]
    note = " with pipes" if location == "pipe_length" else ""
    _check(len(columns) >= count, path, f"{count} per scenario need {count} distinct {noun}s; {net.name} has "
                                        f"{len(columns)} candidate {noun}s{note}")
    return columns, weight


def select(spec: ScenarioSpec, net: NetworkArrays) -> Selection:
    """`spec.validate(net)`: resolves every id list, checks counts against candidates, the row cap and
    Sobol's dimension limit, and lays out the unit-sample columns."""
    none = np.zeros(0, np.int64)
    sel = dict(leak_junctions=none, leak_weight=np.zeros(0), demand_junctions=none, break_links=none,
               break_weight=np.zeros(0), pumps=none, tanks=none, reservoirs=none, pipes=none, source_nodes=none)
    leaks, demand, breaks = spec.leaks, spec.demand, spec.breaks
    if leaks is not None:
        cols = _resolve("leaks.junctions", leaks.junctions, ElementKind.JUNCTION, net)
        weight = junction_pipe_length_m(net)[cols] if leaks.location == "pipe_length" else np.ones(len(cols))
        sel["leak_junctions"], sel["leak_weight"] = _weighted("leaks.count", cols, weight, leaks.count,
                                                              "junction", leaks.location, net)
    if demand is not None and demand.junction_sd > 0:
        if demand.junctions is None:    # junctions without a demand would get rows that change nothing
            with_demand = np.unique(net.demand_node[net.demand_base_m3s != 0])
            sel["demand_junctions"] = with_demand[with_demand < net.n_junctions].astype(np.int64)
            _check(len(sel["demand_junctions"]) > 0, "demand.junction_sd", f"no junction of {net.name} has a demand")
        else:
            sel["demand_junctions"] = _resolve("demand.junctions", demand.junctions, ElementKind.JUNCTION, net)
    if breaks is not None:
        cols = _resolve("breaks.pipes", breaks.pipes, ElementKind.PIPE, net)
        weight = net.length_m[cols] if breaks.location == "pipe_length" else np.ones(len(cols))
        sel["break_links"], sel["break_weight"] = _weighted("breaks.count", cols, weight, breaks.count,
                                                            "pipe", breaks.location, net)
    for name, key, kind in (("pump_outages", "pumps", ElementKind.PUMP), ("tank_levels", "tanks", ElementKind.TANK),
                            ("reservoir_heads", "reservoirs", ElementKind.RESERVOIR)):
        section = getattr(spec, name)
        if section is not None:
            sel[key] = _resolve(f"{name}.{key}", getattr(section, key), kind, net)
            _check(len(sel[key]) > 0, name, f"{net.name} has no {kind.value}s")
    if spec.source_quality is not None:
        sel["source_nodes"] = _resolve("source_quality.nodes", spec.source_quality.nodes, ElementKind.NODE, net)
    if spec.roughness is not None:
        sel["pipes"] = _resolve("roughness", None, ElementKind.PIPE, net)
        _check(len(sel["pipes"]) > 0, "roughness", f"{net.name} has no pipes")
    # Column order: the few inputs that matter most first, so Sobol' gives them its best dimensions;
    # the per-element inputs (hundreds of columns) last.
    n_leaks = leaks.count if leaks is not None else 0
    dimensions = (("leaks.location", n_leaks),
                  ("leaks.area", n_leaks if n_leaks and leaks.area.is_random else 0),
                  ("demand", int(demand is not None and demand.is_random)),
                  ("breaks", breaks.count if breaks is not None else 0),
                  ("pump_outages", len(sel["pumps"])), ("tank_levels", len(sel["tanks"])),
                  ("reservoir_heads", len(sel["reservoirs"])), ("source_quality", len(sel["source_nodes"])),
                  ("demand.junction_sd", len(sel["demand_junctions"])), ("roughness", len(sel["pipes"])))
    dimensions = tuple((name, n) for name, n in dimensions if n > 0)
    per_scenario = {"leaks": n_leaks * (1 + int(leaks is not None and leaks.cd is not None)),
                    "demand": int(demand is not None), "demand.junction_sd": len(sel["demand_junctions"]),
                    "roughness": len(sel["pipes"]), "breaks": breaks.count if breaks is not None else 0,
                    "pump_outages": len(sel["pumps"]), "tank_levels": len(sel["tanks"]),
                    "reservoir_heads": len(sel["reservoirs"]), "source_quality": len(sel["source_nodes"])}
    _check_size(spec, per_scenario, sum(n for _, n in dimensions))
    return Selection(**sel, dimensions=dimensions, rows_per_scenario=sum(per_scenario.values()))


def _check_size(spec: ScenarioSpec, per_scenario: dict[str, int], n_dimensions: int) -> None:
    n = spec.scenarios
    for name, noun in (("roughness", "pipes"), ("demand.junction_sd", "junctions")):
        rows = n * per_scenario[name]
        _check(rows <= MAX_ROWS, name, f"{n:,} scenarios x {per_scenario[name]:,} {noun} = {rows:,} rows, over "
                                       f"the cap of {MAX_ROWS:,} (one row per element per scenario); use "
                                       f"fewer scenarios")
    rows = n * sum(per_scenario.values())
    _check(rows <= MAX_ROWS, "scenarios", f"{n:,} scenarios could write {rows:,} rows, over the cap of "
                                          f"{MAX_ROWS:,}; use fewer scenarios")
    _check(spec.sampler != "sobol" or n_dimensions <= SOBOL_MAX_DIMENSIONS, "sampler",
           f"sobol supports at most {SOBOL_MAX_DIMENSIONS:,} dimensions; this specification needs "
           f"{n_dimensions:,} (use lhs or mc)")
