"""The compiled network: a frozen structure of arrays in SI units.

Built once per network from an EPANET model (see `hydraulics.compile`); solvers read it and never change
it. Node order is junctions first, then tanks, then reservoirs, so that the unknown heads are the first
`n_junctions` nodes, as in EPANET. Link order is the file's order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from parktwin.kernels import epanet_codes as codes


class NodeKind(IntEnum):
    JUNCTION = 0
    TANK = 1
    RESERVOIR = 2


class LinkKind(IntEnum):
    """EPANET's link types, in EPANET's order (valves after pumps); values from kernels.epanet_codes."""

    CVPIPE = codes.CVPIPE
    PIPE = codes.PIPE
    PUMP = codes.PUMP
    PRV = codes.PRV
    PSV = codes.PSV
    PBV = codes.PBV
    FCV = codes.FCV
    TCV = codes.TCV
    GPV = codes.GPV
    PCV = codes.PCV


class PumpCurveKind(IntEnum):
    CONST_HP = codes.CONST_HP
    POWER_FUNC = codes.POWER_FUNC
    CUSTOM = codes.CUSTOM
    NOCURVE = codes.NOCURVE


class HeadlossFormula(IntEnum):
    HW = 0
    DW = 1
    CM = 2


# Link status codes used throughout (the HDF5 layout's int8 codes).
STATUS_CLOSED = 0
STATUS_OPEN = 1
STATUS_ACTIVE = 2


@dataclass(frozen=True)
class Curves:
    """All curves of the network concatenated: curve c is x[offset[c]:offset[c+1]] (SI)."""

    ids: tuple[str, ...]
    offset: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def points(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offset[index], self.offset[index + 1]
        return self.x[lo:hi], self.y[lo:hi]


@dataclass(frozen=True)
class Patterns:
    """All time patterns concatenated: pattern p is multipliers[offset[p]:offset[p+1]]."""

    ids: tuple[str, ...]
    offset: np.ndarray
    multipliers: np.ndarray

    def values(self, index: int) -> np.ndarray:
        return self.multipliers[self.offset[index]: self.offset[index + 1]]

    def at_period(self, index: int, period: int) -> float:
        values = self.values(index)
        return float(values[period % len(values)])


@dataclass(frozen=True)
class TimeOptions:
    duration_s: int
    hydraulic_step_s: int
    pattern_step_s: int
    pattern_start_s: int
    report_step_s: int
    report_start_s: int
    start_clocktime_s: int
    rule_step_s: int


@dataclass(frozen=True)
class HydraulicOptions:
    headloss: HeadlossFormula
    viscosity_ratio: float          # relative to water at 20 C, as EPANET's VISCOSITY option
    specific_gravity: float
    demand_multiplier: float
    emitter_exponent: float
    accuracy: float
    max_trials: int
    extra_trials: int               # -1: stop when unbalanced; otherwise UNBALANCED CONTINUE n
    check_frequency: int
    max_check: int
    damp_limit: float
    head_error_limit_m: float
    flow_change_limit_m3s: float
    demand_model_pda: bool
    pda_min_pressure_m: float
    pda_required_pressure_m: float
    pda_pressure_exponent: float
    emitter_backflow: bool


@dataclass(frozen=True)
class NetworkArrays:
    """One network, compiled. Every array is indexed by node or link index."""

    name: str
    node_ids: tuple[str, ...]
    link_ids: tuple[str, ...]
    n_junctions: int
    node_kind: np.ndarray            # int8 [N]
    elevation_m: np.ndarray          # [N]
    xy_m: np.ndarray                 # [N, 2] coordinates as given (nan where absent)

    # Demands, one row per demand category.
    demand_node: np.ndarray          # int [D]
    demand_base_m3s: np.ndarray      # [D]
    demand_pattern: np.ndarray       # int [D], -1 = constant 1
    emitter_coeff: np.ndarray        # [N] m3/s per m^exponent (0 = none)

    # Tanks (t indexes tank_node) and reservoirs.
    tank_node: np.ndarray
    tank_init_level_m: np.ndarray
    tank_min_level_m: np.ndarray
    tank_max_level_m: np.ndarray
    tank_diameter_m: np.ndarray
    tank_min_volume_m3: np.ndarray
    tank_volume_curve: np.ndarray    # int, -1 = cylinder
    tank_can_overflow: np.ndarray    # bool
    reservoir_node: np.ndarray
    reservoir_head_m: np.ndarray
    reservoir_pattern: np.ndarray    # int, -1 = none

    # Links.
    link_start: np.ndarray           # int [L]
    link_end: np.ndarray             # int [L]
    link_kind: np.ndarray            # int8 [L] LinkKind
    length_m: np.ndarray             # [L] (0 for pumps and valves)
    diameter_m: np.ndarray           # [L]
    roughness: np.ndarray            # [L] H-W C, D-W roughness in m, Manning n
    minor_loss: np.ndarray           # [L] dimensionless K (v^2/2g basis)
    initial_status: np.ndarray       # int8 [L]: 0 closed, 1 open, 2 active
    initial_setting: np.ndarray      # [L] pump speed; valve setting in SI; nan = none
    valve_curve: np.ndarray          # int [L]: GPV head-loss curve or PCV curve, -1 = none

    # Pumps (p indexes pump_link).
    pump_link: np.ndarray
    pump_curve: np.ndarray           # int, -1 = none (power pump)
    pump_power_kw: np.ndarray        # [P] for constant-power pumps, else 0
    pump_speed_pattern: np.ndarray   # int, -1 = none

    curves: Curves
    patterns: Patterns
    time: TimeOptions
    options: HydraulicOptions
    # EPANET works in ft and cfs and converts the file's flow unit with its own factor (e.g. 28.317
    # L/s per cfs); keeping that factor lets the solver reproduce EPANET's numbers exactly.
    m3s_per_cfs: float
    flow_units: str
    controls: tuple = field(default=())   # simple controls, see hydraulics.controls_parse
    rules: tuple = field(default=())      # rule-based controls, see hydraulics.rules_parse
    source_path: str = ""
    source_sha256: str = ""
    # EPANET 2.3 pipe leakage ([LEAKAGE], FAVAD; hydraulics.leakage), per link, None without the section:
    # leak area in m² per 100 m of pipe and its growth in m² per m of pressure head per 100 m of pipe
    pipe_leak_area_m2: np.ndarray | None = None
    pipe_leak_expansion: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_links(self) -> int:
        return len(self.link_ids)

    def node_index(self, node_id: str) -> int:
        return self._lookup("_node_map", self.node_ids)[node_id]

    def link_index(self, link_id: str) -> int:
        return self._lookup("_link_map", self.link_ids)[link_id]

    def _lookup(self, cache_name: str, ids: tuple[str, ...]) -> dict[str, int]:
        """id -> index, built on first use and kept on the frozen instance."""
        cached = self.__dict__.get(cache_name)
        if cached is None:
            cached = {name: i for i, name in enumerate(ids)}
            object.__setattr__(self, cache_name, cached)
        return cached

    @property
    def junction_ids(self) -> tuple[str, ...]:
        return self.node_ids[: self.n_junctions]
