"""The numba backend's fast path: hydsolve() with every trial of a block of scenarios in one compiled call
(kernels.gga_block).

It runs the reference algorithm (hydraulics.gga) with the same arithmetic in the same order; only the
non-integer powers differ (kernels.powers, within 2 units in the last place of numpy's), so the two paths
agree to 1e-9 (tests/test_equivalence.py). Networks that use a feature the fused kernel does not carry
fall back to the reference path, which supports everything.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from parktwin.hydraulics.epanet_units import SolverNetwork
from parktwin.hydraulics.network import HeadlossFormula, LinkKind, PumpCurveKind
from parktwin.hydraulics.state import StepOutcome
from parktwin.kernels.gga_structs import (BatchArrays, FactorPlan, FusedNetwork, IterationControl, LaneArrays,
                                          LeakLists, PipeLeakage)

BLOCK = 32   # scenarios per work item: the block's work arrays stay in cache



def unsupported_reason(sn: SolverNetwork, settings, junction_controls) -> str | None:
    """Why the fused path cannot run this network (None: it can)."""
    if sn.headloss == HeadlossFormula.DW:
        return "Darcy-Weisbach head loss"
    if np.isin(sn.kind, [LinkKind.GPV, LinkKind.PCV]).any():
        return "GPV or PCV valves"
    if sn.pda:
        return "pressure-driven demands"
    if (sn.emitter_ke[: sn.n_junctions] > 0).any() and sn.emitter_qexp != 2.0:
        return "emitter exponent other than 0.5"
    if settings.head_error_limit_ft > 0 or settings.flow_change_limit_cfs > 0:
        return "HEADERROR/FLOWCHANGE convergence limits"
    if junction_controls:
        return "controls on junction pressure"
    if sn.n_junctions == 0:
        return "no junctions"
    return None


class FusedGradientSolver:
    carries_pipe_leakage = True    # EPANET 2.3's [LEAKAGE] (HydraulicState.favad_*) is in the kernel
    # Powers by libm's pow (as the device kernels take them) instead of kernels.powers: slower (the loops
    # that take them no longer vectorise); tests/test_cudasim.py sets it for its bit-for-bit comparison.
    libm_powers = False

    def __init__(self, sn: SolverNetwork, assembler, settings):
        from parktwin.kernels import gga_block
        self.kernel = gga_block.solve_blocks
        self.sn = sn
        self.settings = settings
        kind = sn.kind.astype(np.int64)
        tank_of = np.full(sn.n_nodes, -1, np.int64)
        tank_of[sn.tank_node] = np.arange(len(sn.tank_node))
        f64 = partial(np.ascontiguousarray, dtype=np.float64)
        i64 = partial(np.ascontiguousarray, dtype=np.int64)
        self.net = FusedNetwork(
            n_junctions=int(sn.n_junctions), start=i64(sn.start), end=i64(sn.end), kind=kind,
            pump_of=i64(sn.pump_of_link), pump_type=i64(sn.pump_type), pump_curve=i64(sn.pump_curve),
            edge_of=i64(assembler.edge_of_link), ctl_valves=i64(assembler.ctl_valves), tank_of=tank_of,
            status_links=self._status_links(sn, tank_of),
            power_pumps=i64([k for p, k in enumerate(sn.pump_link)
                             if sn.pump_type[p] in (PumpCurveKind.POWER_FUNC, PumpCurveKind.CONST_HP)]),
            prv_psv=i64(np.flatnonzero((kind == LinkKind.PRV) | (kind == LinkKind.PSV))),
            minor_loss=f64(sn.minor_ft_per_cfs2), diameter4=f64(assembler.diameter4),
            flow_exponent=float(sn.flow_exponent), pump_h0=f64(sn.pump_h0), pump_r=f64(sn.pump_r),
            pump_n=f64(sn.pump_n), pump_hmax=f64(sn.pump_hmax), elevation=f64(sn.elevation_ft),
            emitter_ke=f64(sn.emitter_ke), tank_hmin=f64(sn.tank_hmin_ft), tank_hmax=f64(sn.tank_hmax_ft),
            tank_area=f64(sn.tank_area_ft2), tank_overflow=f64(sn.tank_can_overflow),
            curve_x=f64(sn.curve_x), curve_y=f64(sn.curve_y), curve_offset=i64(sn.curve_offset))
        plan = assembler.plan
        self.plan = FactorPlan(perm=plan.perm, edge_slot=plan.edge_slot, col_ptr=plan.col_ptr, row_idx=plan.row_idx,
                               op_ptr=plan.op_ptr, op_target=plan.op_target, op_a=plan.op_a, op_b=plan.op_b,
                               op_pivot=plan.op_pivot, nslots=int(plan.nslots))
        self.ctrl = IterationControl(
            accuracy=float(settings.accuracy), max_trials=float(settings.max_trials),
            check_frequency=float(settings.check_frequency), max_check=float(settings.max_check),
            damp_limit=float(settings.damp_limit), emitter_exponent=float(sn.emitter_qexp),
            emitter_backflow=1.0 if sn.emitter_backflow else 0.0)
        self.rescue = assembler  # only for its valve list via the reference badvalve()

    @staticmethod
    def _status_links(sn, tank_of):
        """Links whose status linkstatus() can change: check valves, pumps, FCVs, links to tanks."""
        kind = sn.kind
        at_tank = np.zeros(sn.n_links, bool)
        area = np.append(sn.tank_area_ft2, 0.0)     # index -1 (not a tank) reads the appended 0
        for end in (sn.start, sn.end):
            at_tank |= area[tank_of[end]] != 0.0
        keep = (kind == LinkKind.CVPIPE) | (kind == LinkKind.PUMP) | (kind == LinkKind.FCV) | at_tank
        return np.flatnonzero(keep).astype(np.int64)

    def _workspace(self, n_workers: int) -> np.ndarray:
        """The kernel's per-worker work arrays, kept for the solver's life (grown when threads are added)."""
        from parktwin.kernels.gga_block import workspace_size
        sn, plan = self.sn, self.plan
        size = workspace_size(sn.n_links, sn.n_nodes, sn.n_junctions, len(plan.edge_slot), plan.nslots,
                              len(sn.pump_link), BLOCK)
        ws = getattr(self, "_ws", None)
        if ws is None or ws.shape[0] < n_workers or ws.shape[1] != size:
            self._ws = ws = np.empty((n_workers, size))
        return ws

    def solve(self, st, bad_valve, accuracy: float | None = None):
        s = self.settings
        ctrl = self.ctrl if accuracy is None else self.ctrl._replace(accuracy=float(accuracy))
        max_total = s.max_trials + (s.extra_trials if s.extra_trials > 0 else 0)
        lanes = _Lanes(st.batch_size, s.check_frequency)
        lanes.state[lanes.iters > max_total] = 1
        # The kernel runs every scenario to its end; only a failed factorisation brings one back here.
        while (lanes.state == 0).any():
            self._run_kernel(st, lanes, ctrl, max_total)
            hit = np.flatnonzero((lanes.bad >= 0) & (lanes.state == 0))
            if len(hit):
                rescued = bad_valve(st, hit, lanes.bad[hit])
                lost = hit[~rescued]
                lanes.failed[lost] = True
                lanes.state[lost] = 1
        return StepOutcome(converged=lanes.converged & ~lanes.failed, iterations=lanes.iters.copy(),
                           relative_error=lanes.relerr, failed=lanes.failed)

    def _run_kernel(self, st, lanes, ctrl, max_total):
        import numba
        batch = st.batch_size
        cached = getattr(self, "_leak_lists", None)
        if cached is None or cached[0] is not st.leak_ke:
            # Leaks as a per-scenario list (junction ascending, the reference path's order): a scenario
            # has few, and scanning every junction for them cost more than the leaks themselves. Kept
            # while the state keeps its leak array: an extended run's every step (a state's leaks are
            # set when it is made and never changed in place while it is solved).
            ptr, node = _per_scenario_lists(st.leak_ke != 0.0)
            self._leak_lists = cached = (st.leak_ke, ptr, node)
        lanes.leaks = cached
        if st.favad_cfa is None:
            none = np.zeros((1, 1))     # no pipe leakage: empty per-scenario lists
            favad = PipeLeakage(none, none, none, none, none, np.zeros(batch + 1, np.int64), np.zeros(0, np.int64))
        else:
            if lanes.favad is None or lanes.favad[0] is not st.favad_cfa:
                # the junctions that leak, per scenario (junction ascending), as for the orifice leaks
                ptr, node = _per_scenario_lists((st.favad_cfa != 0.0) | (st.favad_cva != 0.0))
                lanes.favad = (st.favad_cfa, ptr, node, np.zeros(st.favad_cva.shape))
            _, fav_ptr, fav_node, v_pow = lanes.favad
            favad = PipeLeakage(st.favad_cfa, st.favad_cva, st.favad_qfa, st.favad_qva, v_pow, fav_ptr, fav_node)
        live_cols = np.flatnonzero(lanes.state == 0).astype(np.int64)
        n_workers = max(1, min(-(-len(live_cols) // BLOCK), numba.get_num_threads()))
        batch_arrays = BatchArrays(
            flow=st.flow, head=st.head, status=st.status, setting=st.setting,
            resistance=np.ascontiguousarray(st.resistance), emitter_flow=st.emitter_flow, leak_flow=st.leak_flow,
            leak_ke=st.leak_ke, demand_flow=st.demand_flow, node_outflow=st.node_outflow)
        lane_arrays = LaneArrays(state=lanes.state, iters=lanes.iters, next_check=lanes.next_check,
                                 relax=lanes.relax, relerr=lanes.relerr, converged=lanes.converged,
                                 bad_node=lanes.bad)
        self.kernel(self.net, self.plan, ctrl, batch_arrays, lane_arrays, LeakLists(lanes.leaks[1], lanes.leaks[2]),
                    favad, live_cols, BLOCK, n_workers, self._workspace(n_workers), int(max_total),
                    bool(self.libm_powers))


def _per_scenario_lists(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of a [node, B] mask by scenario: the nodes of scenario b are node[ptr[b]:ptr[b + 1]],
    ascending. (np.nonzero of the transposed mask gives the same order at ten times the cost.)"""
    node, lane = np.nonzero(mask)
    order = np.argsort(lane, kind="stable")
    ptr = np.searchsorted(lane[order], np.arange(mask.shape[1] + 1)).astype(np.int64)
    return ptr, node[order].astype(np.int64)


class _Lanes:
    """Per-scenario iteration bookkeeping of the fused solver (EPANET's per-solve counters)."""

    def __init__(self, batch: int, check_frequency: int):
        self.state = np.zeros(batch, np.int8)      # 0 running, 1 finished
        self.iters = np.ones(batch, np.int64)
        self.next_check = np.full(batch, check_frequency, np.int64)
        self.relax = np.ones(batch)
        self.relerr = np.zeros(batch)
        self.converged = np.zeros(batch, bool)
        self.failed = np.zeros(batch, bool)
        self.bad = np.full(batch, -1, np.int64)
        self.leaks = None
        self.favad = None
