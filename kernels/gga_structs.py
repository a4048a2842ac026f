"""The named structures the fused numba solve (kernels.gga_block.solve_blocks) takes, in place of a long
positional argument list. They are NamedTuples, which numba passes to compiled code as typed tuples
(attribute access compiles to a field load), so naming costs nothing at run time.

Units are EPANET's internal ones (ft, cfs); arrays are [element] for the network and [element, B] for
the batch.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class FusedNetwork(NamedTuple):
    """What the iteration reads of the network (built once per solver by hydraulics.fused)."""
    n_junctions: int
    start: np.ndarray          # [L] int64 start node
    end: np.ndarray            # [L] int64 end node
    kind: np.ndarray           # [L] int64 EPANET link type code (kernels.epanet_codes)
    pump_of: np.ndarray        # [L] int64 pump index of a pump link, -1 otherwise
    pump_type: np.ndarray      # [P] int64 pump curve type code
    pump_curve: np.ndarray     # [P] int64 curve index, -1 for none
    edge_of: np.ndarray        # [L] int64 off-diagonal matrix entry of the link, -1 for none
    ctl_valves: np.ndarray     # int64 PRV/PSV/FCV links in EPANET's valve order
    tank_of: np.ndarray        # [N] int64 tank index of a node, -1 otherwise
    status_links: np.ndarray   # int64 links whose status linkstatus() can change
    power_pumps: np.ndarray    # int64 links of the power-function and constant-power pumps
    prv_psv: np.ndarray        # int64 PRVs and PSVs
    minor_loss: np.ndarray     # [L] minor-loss coefficient, ft per cfs^2
    diameter4: np.ndarray      # [L] diameter^4, ft^4 (TCV loss)
    flow_exponent: float       # head-loss flow exponent (1.852 Hazen-Williams, 2 Chezy-Manning)
    pump_h0: np.ndarray        # [P] shutoff head, ft
    pump_r: np.ndarray         # [P] power-law coefficient
    pump_n: np.ndarray         # [P] power-law exponent
    pump_hmax: np.ndarray      # [P] largest head the pump delivers, ft
    elevation: np.ndarray      # [N] ft
    emitter_ke: np.ndarray     # [N] emitter head-loss coefficient (0 = none)
    tank_hmin: np.ndarray      # [T] ft
    tank_hmax: np.ndarray      # [T] ft
    tank_area: np.ndarray      # [T] ft^2 (0 = a reservoir-like tank)
    tank_overflow: np.ndarray  # [T] 1.0 where the tank may overflow
    curve_x: np.ndarray        # pump curve points, cfs
    curve_y: np.ndarray        # pump curve points, ft
    curve_offset: np.ndarray   # [curves + 1] int64 start of each curve's points


class FactorPlan(NamedTuple):
    """The symbolic LDL^T plan (kernels.symbolic.SymbolicPlan) as the numeric kernels read it."""
    perm: np.ndarray
    edge_slot: np.ndarray
    col_ptr: np.ndarray
    row_idx: np.ndarray
    op_ptr: np.ndarray
    op_target: np.ndarray
    op_a: np.ndarray
    op_b: np.ndarray
    op_pivot: np.ndarray
    nslots: int


class IterationControl(NamedTuple):
    """EPANET's hydraulic options for hydsolve()."""
    accuracy: float            # relative flow change that ends the iterations
    max_trials: float
    check_frequency: float     # CHECKFREQ
    max_check: float           # MAXCHECK
    damp_limit: float          # DAMPLIMIT
    emitter_exponent: float    # 1 / EMITTER EXPONENT (2 on the fused path)
    emitter_backflow: float    # 1.0 where emitters may take flow back


class BatchArrays(NamedTuple):
    """The batch's state and per-scenario inputs [element, B] (hydraulics.state.HydraulicState)."""
    flow: np.ndarray
    head: np.ndarray
    status: np.ndarray
    setting: np.ndarray
    resistance: np.ndarray     # [L, 1] or [L, B]
    emitter_flow: np.ndarray
    leak_flow: np.ndarray
    leak_ke: np.ndarray
    demand_flow: np.ndarray
    node_outflow: np.ndarray


class LaneArrays(NamedTuple):
    """Per-scenario iteration bookkeeping [B] (EPANET's per-solve counters)."""
    state: np.ndarray          # int8: 0 running, 1 finished
    iters: np.ndarray
    next_check: np.ndarray
    relax: np.ndarray
    relerr: np.ndarray
    converged: np.ndarray
    bad_node: np.ndarray       # >= 0: the node whose pivot failed (badvalve() rescue by the caller)


class LeakLists(NamedTuple):
    """Orifice leaks listed per scenario: junctions node[ptr[b]:ptr[b + 1]] of scenario b, ascending."""
    ptr: np.ndarray
    node: np.ndarray


class PipeLeakage(NamedTuple):
    """EPANET 2.3's pipe leakage [Nj, B] (hydraulics.leakage) and its junctions listed per scenario."""
    cfa: np.ndarray            # fixed-area inverted emitter coefficient
    cva: np.ndarray            # variable-area inverted emitter coefficient
    qfa: np.ndarray            # fixed-area leak flow, cfs
    qva: np.ndarray            # variable-area leak flow, cfs
    va_pow: np.ndarray         # |qva|^(-1/3), taken in the kernel at each trial
    ptr: np.ndarray
    node: np.ndarray
