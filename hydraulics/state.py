"""The batched hydraulic state: everything that changes between iterations and time steps.

All arrays are [element, B] in EPANET's internal units; per-scenario inputs that a perturbation may change
(resistances, demands, leaks, settings) live here too, so the compiled network stays shared and frozen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parktwin.hydraulics.coefficients import ACTIVE, CLOSED, OPEN, pcv_loss_coeff
from parktwin.hydraulics.epanet_units import QZERO, SolverNetwork
from parktwin.hydraulics.network import LinkKind, STATUS_ACTIVE, STATUS_CLOSED


@dataclass(frozen=True)
class StepOutcome:
    """One time step's solve, per scenario (what hydsolve() returns, batched)."""
    converged: np.ndarray      # [B] bool
    iterations: np.ndarray     # [B] int
    relative_error: np.ndarray # [B]
    failed: np.ndarray         # [B] bool: matrix could not be solved (EPANET error 110)


@dataclass
class HydraulicState:
    head: np.ndarray            # [N, B] ft
    flow: np.ndarray            # [L, B] cfs
    status: np.ndarray          # [L, B] int8, EPANET StatusType
    setting: np.ndarray         # [L, B] nan = MISSING
    emitter_flow: np.ndarray    # [Nj, B]
    leak_flow: np.ndarray       # [Nj, B]
    demand_flow: np.ndarray     # [Nj, B] delivered
    full_demand: np.ndarray     # [Nj, B] required
    node_outflow: np.ndarray    # [N, B] EPANET NodeDemand (fixed-grade nodes: net outflow)
    resistance: np.ndarray      # [L, 1] or [L, B]
    rel_roughness: np.ndarray   # [L, 1] or [L, B] (Darcy-Weisbach only)
    leak_ke: np.ndarray         # [Nj, B] head-loss coefficient of the leak orifice (0 = none)
    tank_volume: np.ndarray     # [Tk, B] ft3
    # EPANET's link->R of each PCV, in link order [Pcv, B]: its loss coefficient at the setting it was
    # last given by inithyd(), controls() or a rule (pswitch() changes the setting but not R)
    pcv_r: np.ndarray | None = None
    # EPANET 2.3 pipe leakage (hydraulics.leakage), [Nj, B], None where nothing leaks that way: the
    # inverted emitter coefficients of each junction's fixed- and variable-area leaks and their flows (cfs)
    favad_cfa: np.ndarray | None = None
    favad_cva: np.ndarray | None = None
    favad_qfa: np.ndarray | None = None
    favad_qva: np.ndarray | None = None

    @property
    def batch_size(self) -> int:
        return self.head.shape[1]


def initial_state(sn: SolverNetwork, status0: np.ndarray, setting0: np.ndarray, fixed_head0: np.ndarray,
                  resistance: np.ndarray, rel_roughness: np.ndarray, leak_ke: np.ndarray, flow_prev: np.ndarray | None = None,
                  pcv_setting0: np.ndarray | None = None) -> HydraulicState:
    """EPANET's inithyd(): statuses, settings and starting flows for a batch.

    status0 holds the network's initial status codes (0 closed, 1 open, 2 active) per scenario [L, B];
    setting0 SI-converted settings in internal units [L, B]; fixed_head0 the heads of tanks/reservoirs
    [N, B] (junction rows ignored). pcv_setting0: each PCV's percent open as the file (or a perturbation)
    gives it, before a fixed status drops it (EPANET's Kc, from which resistcoeff() takes R); default setting0.
    """
    n_links, batch = status0.shape
    kind = sn.kind[:, None]
    status = np.where(status0 == STATUS_CLOSED, CLOSED, np.where(status0 == STATUS_ACTIVE, ACTIVE, OPEN)).astype(np.int8)
    setting = setting0.copy()
    pcvs = np.flatnonzero(sn.kind == LinkKind.PCV)
    kc = setting0 if pcv_setting0 is None else pcv_setting0
    pcv_r = np.zeros((len(pcvs), batch))
    for row, k in enumerate(pcvs):
        pcv_r[row] = pcv_loss_coeff(np, sn, k, kc[k])
    is_valve = (kind > LinkKind.PUMP) & (kind != LinkKind.GPV)
    setting = np.where(is_valve & (status != ACTIVE), np.nan, setting)
    ctl = (kind == LinkKind.PRV) | (kind == LinkKind.PSV) | (kind == LinkKind.FCV)
    status = np.where(ctl & ~np.isnan(setting), ACTIVE, status).astype(np.int8)

    open_flow = np.pi * sn.diameter_ft ** 2 / 4.0
    if flow_prev is None:
        flow = np.repeat(open_flow[:, None], batch, axis=1)
    else:
        flow = flow_prev.copy()
        small = np.abs(flow) <= QZERO
        if small.any():
            flow[small] = np.broadcast_to(open_flow[:, None], flow.shape)[small]
    for row in sn.pump_link:
        # initlinkflow(): a pump starts at its design flow times its speed (when its flow needs setting)
        fresh = np.abs(flow_prev[row]) <= QZERO if flow_prev is not None else np.ones(batch, bool)
        q0 = sn.pump_q0[sn.pump_of_link[row]]
        flow[row] = np.where(fresh, np.nan_to_num(setting[row], nan=1.0) * q0, flow[row])
    flow[status <= CLOSED] = QZERO

    nj = sn.n_junctions
    emitter_flow = np.repeat(np.where(sn.emitter_ke[:nj] > 0, 1.0, 0.0)[:, None], batch, axis=1)
    leak_flow = (leak_ke > 0).astype(float)
    head = fixed_head0.copy()
    return HydraulicState(
        head=head, flow=flow, status=status, setting=setting, emitter_flow=emitter_flow,
        leak_flow=leak_flow, demand_flow=np.zeros((nj, batch)), full_demand=np.zeros((nj, batch)),
        node_outflow=np.zeros((sn.n_nodes, batch)), resistance=resistance,
        rel_roughness=rel_roughness, leak_ke=leak_ke,
        tank_volume=np.zeros((len(sn.tank_node), batch)), pcv_r=pcv_r,
    )
