"""The numba backend's fast path: hydsolve() with each iteration fused into one compiled call.

It runs the reference algorithm (hydraulics.gga) with the same arithmetic in the same order, so both
paths agree to the last bit (tests/test_equivalence.py); networks that use a feature the fused kernel
does not carry fall back to the reference path, which supports everything.
"""
from __future__ import annotations

import numpy as np

from hydraulics.coefficients import CLOSED, XFCV, XPRESSURE, ACTIVE
from hydraulics.epanet_units import TINY, SolverNetwork
from hydraulics.network import HeadlossFormula, LinkKind, PumpCurveKind

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
    def __init__(self, sn: SolverNetwork, assembler, settings):
        from kernels import gga_numba
        self.kernel = gga_numba.iterate
        self.sn = sn
        self.settings = settings
        kind = sn.kind.astype(np.int64)
        tank_of = np.full(sn.n_nodes, -1, np.int64)
        tank_of[sn.tank_node] = np.arange(len(sn.tank_node))
        self.net_i = (
            sn.start.astype(np.int64), sn.end.astype(np.int64), kind, sn.pump_of_link.astype(np.int64),
            sn.pump_type.astype(np.int64), sn.pump_curve.astype(np.int64), assembler.edge_of_link,
            assembler.ctl_valves.astype(np.int64), tank_of, np.flatnonzero(kind == LinkKind.FCV),
            np.flatnonzero((kind == LinkKind.PRV) | (kind == LinkKind.PSV)),
        )
        self.net_f = (
            sn.minor_ft_per_cfs2.astype(float), assembler.diameter4, np.array([sn.flow_exponent]),
            sn.pump_h0, sn.pump_r, sn.pump_n, sn.pump_hmax, sn.elevation_ft, sn.emitter_ke.astype(float),
            sn.tank_hmin_ft, sn.tank_hmax_ft, sn.tank_area_ft2, sn.tank_can_overflow.astype(float),
        )
        plan = assembler.plan
        self.plan_i = (plan.perm, plan.edge_slot, plan.col_ptr, plan.row_idx, plan.op_ptr, plan.op_target,
                       plan.op_a, plan.op_b, plan.op_pivot)
        self.nslots = int(plan.nslots)
        self.curves = (sn.curve_x, sn.curve_y, sn.curve_offset.astype(np.int64))
        self.power_pumps = [(k, p, 1.0 if abs(sn.pump_n[p] - 1.0) < TINY else sn.pump_n[p])
                            for p, k in enumerate(sn.pump_link) if sn.pump_type[p] in (PumpCurveKind.POWER_FUNC,
                                                                                      PumpCurveKind.CONST_HP)]
        self.ctrl = (settings.accuracy, float(settings.max_trials), float(settings.check_frequency),
                     float(settings.max_check), settings.damp_limit, sn.emitter_qexp,
                     1.0 if sn.emitter_backflow else 0.0)
        self.rescue = assembler  # only for its valve list via the reference badvalve()

    def _powers(self, st, q_pow, speed_pow):
        """The non-integer powers, by numpy exactly as the reference path computes them."""
        np.abs(st.flow, out=q_pow)
        np.power(q_pow, self.sn.flow_exponent - 1.0, out=q_pow)
        for k, p, n in self.power_pumps:
            setting = st.setting[k]
            closed = (st.status[k] <= CLOSED) | (setting == 0.0)
            speed = np.where(closed, 1.0, setting)
            speed_pow[p] = speed ** (2.0 - n)
            if n != 1.0:
                q_pow[k] = np.abs(st.flow[k]) ** (n - 1.0)

    def solve(self, st, bad_valve):
        import numba
        from hydraulics.gga import StepOutcome
        s = self.settings
        batch = st.batch_size
        max_total = s.max_trials + (s.extra_trials if s.extra_trials > 0 else 0)
        lane_state = np.zeros(batch, np.int8)
        iters = np.ones(batch, np.int64)
        next_check = np.full(batch, s.check_frequency, np.int64)
        relax = np.ones(batch)
        relerr = np.zeros(batch)
        converged = np.zeros(batch, bool)
        failed = np.zeros(batch, bool)
        bad = np.full(batch, -1, np.int64)
        q_pow = np.empty_like(st.flow)
        speed_pow = np.ones((len(self.sn.pump_link), batch))
        lane_state[iters > max_total] = 1
        resistance = np.ascontiguousarray(st.resistance)
        n_blocks = -(-batch // BLOCK)
        n_workers = max(1, min(n_blocks, numba.get_num_threads()))
        while (lane_state == 0).any():
            self._powers(st, q_pow, speed_pow)
            self.kernel(self.sn.n_junctions, self.net_i, self.net_f, *self.curves, self.plan_i, self.nslots,
                        self.ctrl, BLOCK, n_workers, st.flow, q_pow, speed_pow, st.head, st.status, st.setting,
                        resistance, st.emitter_flow, st.leak_flow, st.leak_ke, st.demand_flow,
                        st.node_outflow, lane_state, iters, next_check, relax, relerr, converged, bad)
            hit = np.flatnonzero((bad >= 0) & (lane_state == 0))
            if len(hit):
                rescued = bad_valve(st, hit, bad[hit])
                lost = hit[~rescued]
                failed[lost] = True
                lane_state[lost] = 1
            lane_state[(lane_state == 0) & (iters > max_total)] = 1
        return StepOutcome(converged=converged & ~failed, iterations=np.minimum(iters, max_total),
                           relative_error=relerr, failed=failed)
