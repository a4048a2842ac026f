"""The perturbation attributes, declared once as data.

Everything that knows about attributes (validation, batch building, the API's schema, the docs) reads
this table, so adding an attribute is one row here plus the solver support behind its `inputs_field`.
Values are SI; `default` is what a scenario without a row for the element gets (None: the network's own
value).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from parktwin.hydraulics.inputs import LEAK_DISCHARGE_COEFF
from parktwin.hydraulics.network import LinkKind, NetworkArrays, NodeKind

# The element id that means "every junction" (only where the element kind allows it).
ALL_JUNCTIONS = "*"

# Status words as written in a table (case-insensitive) -> BatchInputs.link_status codes.
STATUS_WORDS: dict[str, int] = {"closed": 0, "open": 1}


class ElementKind(str, Enum):
    JUNCTION = "junction"
    JUNCTION_OR_ALL = "junction-or-*"
    PIPE = "pipe"            # pipes and check-valve pipes
    LINK = "link"            # any link: pipe, pump or valve
    TANK = "tank"
    RESERVOIR = "reservoir"
    PUMP = "pump"
    VALVE = "valve"          # PRV, PSV, PBV, FCV, TCV, PCV (a GPV's setting is a curve, not a number)
    NODE = "node"            # any node: junction, tank or reservoir

    @property
    def noun(self) -> str:
        return "junction" if self is ElementKind.JUNCTION_OR_ALL else self.value

    @property
    def plural(self) -> str:
        return {ElementKind.JUNCTION_OR_ALL: "junctions (or '*' for all of them)",
                ElementKind.VALVE: "PRV, PSV, PBV, FCV, TCV and PCV valves"}.get(self, self.value + "s")

    @property
    def is_node(self) -> bool:
        return self in (ElementKind.JUNCTION, ElementKind.JUNCTION_OR_ALL, ElementKind.TANK,
                        ElementKind.RESERVOIR, ElementKind.NODE)


class ValueKind(str, Enum):
    FLOAT = "float"
    POSITIVE_FLOAT = "positive float"
    NON_NEGATIVE_FLOAT = "non-negative float"
    STATUS_WORD = "status word"

    @property
    def is_numeric(self) -> bool:
        return self is not ValueKind.STATUS_WORD


@dataclass(frozen=True)
class Attribute:
    name: str
    element: ElementKind
    value: ValueKind
    unit: str
    default: float | str | None
    description: str
    inputs_field: str        # the hydraulics.inputs.BatchInputs field the attribute fills


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("leak_area_m2", ElementKind.JUNCTION, ValueKind.NON_NEGATIVE_FLOAT, "m2", 0.0,
              "leak orifice area at the junction, q = Cd A sqrt(2 g p)", "leak_area_m2"),
    Attribute("leak_cd", ElementKind.JUNCTION, ValueKind.POSITIVE_FLOAT, "1", LEAK_DISCHARGE_COEFF,
              "discharge coefficient of the junction's leak (needs leak_area_m2 on the same junction)",
              "leak_cd"),
    Attribute("demand_multiplier", ElementKind.JUNCTION_OR_ALL, ValueKind.NON_NEGATIVE_FLOAT, "1", 1.0,
              "factor on every base demand of the junction; '*' for all junctions", "demand_multiplier"),
    Attribute("base_demand_m3s", ElementKind.JUNCTION, ValueKind.FLOAT, "m3/s", None,
              "replaces the junction's first demand category (negative: inflow)", "base_demand_m3s"),
    Attribute("roughness", ElementKind.PIPE, ValueKind.POSITIVE_FLOAT,
              "H-W C / D-W m / Manning n", None,
              "pipe roughness in the network's head-loss law (Darcy-Weisbach in m, not EPANET's mm)",
              "roughness"),
    Attribute("status", ElementKind.LINK, ValueKind.STATUS_WORD, "open|closed", None,
              "initial status of the link; controls still act in extended runs", "link_status"),
    Attribute("tank_level_m", ElementKind.TANK, ValueKind.NON_NEGATIVE_FLOAT, "m", None,
              "initial tank level above the tank's bottom, within its min and max level", "tank_level_m"),
    Attribute("reservoir_head_m", ElementKind.RESERVOIR, ValueKind.FLOAT, "m", None,
              "fixed head of the reservoir (its head pattern still applies)", "reservoir_head_m"),
    Attribute("pump_speed", ElementKind.PUMP, ValueKind.NON_NEGATIVE_FLOAT, "1", None,
              "relative pump speed; 0 switches the pump off", "pump_speed"),
    Attribute("valve_setting", ElementKind.VALVE, ValueKind.NON_NEGATIVE_FLOAT,
              "m / m3/s / 1", None,
              "valve setting in SI: m of pressure (PRV, PSV, PBV), m3/s (FCV), loss coefficient (TCV), "
              "percent open (PCV)", "valve_setting"),
    Attribute("leak_favad_area_m2", ElementKind.PIPE, ValueKind.NON_NEGATIVE_FLOAT, "m2 per 100 m of pipe", None,
              "EPANET 2.3 pipe leakage (FAVAD, [LEAKAGE] C1): leak area along the pipe, EN_LEAK_AREA in m2 "
              "rather than mm2; leaks from the pipe's junction ends", "leak_favad_area_m2"),
    Attribute("leak_favad_expansion", ElementKind.PIPE, ValueKind.NON_NEGATIVE_FLOAT,
              "m2 per m of head per 100 m of pipe", None,
              "EPANET 2.3 pipe leakage (FAVAD, [LEAKAGE] C2): growth of the leak area with pressure head, "
              "EN_LEAK_EXPAN in m2 rather than mm2", "leak_favad_expansion"),
    Attribute("source_quality", ElementKind.NODE, ValueKind.NON_NEGATIVE_FLOAT,
              "the network's quality units (MASS sources: mass/min)", None,
              "strength of the node's water-quality source (a node without one gets a CONCEN source, as "
              "EN_setnodevalue(EN_SOURCEQUAL) does); extended runs of networks with a QUALITY option",
              "source_quality"),
    Attribute("bulk_coeff", ElementKind.PIPE, ValueKind.FLOAT, "1/day", None,
              "bulk reaction coefficient of the pipe, as in [REACTIONS] (negative: decay); extended runs of "
              "networks with a chemical QUALITY option", "bulk_coeff"),
)

BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}


def attribute_names() -> tuple[str, ...]:
    return tuple(a.name for a in ATTRIBUTES)


def get_attribute(name: str) -> Attribute:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown attribute {name!r}; valid: {', '.join(attribute_names())}") from None


# ---------------------------------------------------------------------- element kinds in a network
_PIPE_KINDS = (LinkKind.CVPIPE, LinkKind.PIPE)
_VALVE_KINDS = (LinkKind.PRV, LinkKind.PSV, LinkKind.PBV, LinkKind.FCV, LinkKind.TCV, LinkKind.PCV)


def element_columns(net: NetworkArrays, kind: ElementKind) -> dict[str, int]:
    """Id -> column in the BatchInputs array, for every element of that kind: junction index for
    junctions, link index for pipes, links and valves, position in tank_node / reservoir_node /
    pump_link for tanks, reservoirs and pumps (the '*' of JUNCTION_OR_ALL is not in it)."""
    links = net.link_ids
    if kind in (ElementKind.JUNCTION, ElementKind.JUNCTION_OR_ALL):
        return {nid: i for i, nid in enumerate(net.node_ids[: net.n_junctions])}
    if kind is ElementKind.NODE:
        return {nid: i for i, nid in enumerate(net.node_ids)}
    if kind is ElementKind.TANK:
        return {net.node_ids[n]: t for t, n in enumerate(net.tank_node.tolist())}
    if kind is ElementKind.RESERVOIR:
        return {net.node_ids[n]: r for r, n in enumerate(net.reservoir_node.tolist())}
    if kind is ElementKind.PUMP:
        return {links[k]: p for p, k in enumerate(net.pump_link.tolist())}
    if kind is ElementKind.LINK:
        return {lid: k for k, lid in enumerate(links)}
    wanted = np.isin(net.link_kind, _PIPE_KINDS if kind is ElementKind.PIPE else _VALVE_KINDS)
    return {links[k]: int(k) for k in np.flatnonzero(wanted)}


def element_ids(net: NetworkArrays, kind: ElementKind) -> np.ndarray:
    """Column -> id, the inverse of element_columns (indexed by link index for pipes and valves, as
    their columns are; the '*' of JUNCTION_OR_ALL, column -1, is the caller's)."""
    nodes, links = np.array(net.node_ids), np.array(net.link_ids)
    if kind in (ElementKind.JUNCTION, ElementKind.JUNCTION_OR_ALL):
        return nodes[: net.n_junctions]
    if kind is ElementKind.TANK:
        return nodes[net.tank_node]
    if kind is ElementKind.RESERVOIR:
        return nodes[net.reservoir_node]
    if kind is ElementKind.PUMP:
        return links[net.pump_link]
    return nodes if kind is ElementKind.NODE else links


def describe_element(net: NetworkArrays, element: str, prefer_nodes: bool = True) -> str | None:
    """What the id is in the network ('tank', 'pump', 'PRV valve', ...), None if nothing."""
    def as_node():
        try:
            return NodeKind(int(net.node_kind[net.node_index(element)])).name.lower()
        except KeyError:
            return None

    def as_link():
        try:
            kind = LinkKind(int(net.link_kind[net.link_index(element)]))
        except KeyError:
            return None
        return {LinkKind.CVPIPE: "check-valve pipe", LinkKind.PIPE: "pipe",
                LinkKind.PUMP: "pump"}.get(kind, f"{kind.name} valve")

    # Node and link ids are separate namespaces in EPANET; name the one the attribute lives in first.
    first, second = (as_node, as_link) if prefer_nodes else (as_link, as_node)
    return first() or second()
