"""The batched hydraulic solver: one compiled network, one reused gradient solver, many scenarios.

    solver = HydraulicSolver(load_network("net.inp"), SolverOptions(backend="numba"))
    results = solver.run(BatchInputs(...), duration_s=0)      # snapshot at time 0
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import scipy.sparse as sp

from parktwin.hydraulics.coefficients import CLOSED, OPEN
from parktwin.hydraulics.epanet_units import M_PER_FT, SolverNetwork, build_solver_network, tank_volume
from parktwin.hydraulics.gga import GgaSettings, GradientSolver
from parktwin.hydraulics.inputs import GRAVITY_MS2, LEAK_DISCHARGE_COEFF, BatchInputs
from parktwin.hydraulics.network import STATUS_ACTIVE, STATUS_CLOSED, STATUS_OPEN, HeadlossFormula, LinkKind, NetworkArrays
from parktwin.hydraulics.results import ResultSet, recorded_quantities
from parktwin.hydraulics.state import HydraulicState, StepOutcome, initial_state

# Snapshot answers are solved one decade past ACCURACY. EPANET's stopping rule (relative flow change below
# ACCURACY) leaves an answer as far from the solution as its last step: close after a quadratic finish, up
# to 1e-3 m of head away after a warm start's one short step, or on valve-heavy networks whose last trials
# converge linearly and where round-off in the factorisation decides at which trial the rule passes. Solved
# tighter, an answer lies next to the solution EPANET's own iterates approach (within its ACCURACY 1e-6
# answer), for about half an iteration more (L-Town leaks, warm: 6.9 -> 7.3 trials). A scenario that
# cannot meet it is solved again exactly as EPANET solves it (cold, at ACCURACY): its verdict and count of
# trials are then EPANET's, and the tighter stop never costs convergence.
SNAPSHOT_TIGHTENING = 10.0


@dataclass(frozen=True)
class SolverOptions:
    backend: str = "auto"               # a name from kernels.registry: auto, numpy, numba, cupy
    accuracy: float | None = None       # relative flow change (EPANET ACCURACY); None = the network's
    max_trials: int | None = None       # None = the network's TRIALS
    chunk_size: int = 2048              # scenarios solved together
    # Start every scenario of a snapshot batch from the base case's flows, as a user driving EPANET does
    # with EN_initH(0), but never at the cost of an answer: see HydraulicSolver.snapshot.
    warm_start: bool = True
    result_dtype: str = "float64"       # float dtype of the ResultSet arrays (float32 halves result files)
    # What the ResultSets record: names of results.RECORDABLE (results.parse_record), None = everything.
    # Unrecorded quantities get no columns and are neither computed nor stored; status, convergence,
    # iterations and failures are always recorded.
    record: tuple[str, ...] | None = None

    def __post_init__(self):
        from parktwin.hydraulics.results import parse_record
        object.__setattr__(self, "record", parse_record(self.record))   # short names, order, "all" -> canonical


class HydraulicSolver:
    def __init__(self, net: NetworkArrays, options: SolverOptions = SolverOptions()):
        from parktwin.kernels.registry import get_backend
        self.net = net
        self.options = options
        self.backend = get_backend(options.backend)
        self.sn: SolverNetwork = build_solver_network(net)
        o = net.options
        settings = GgaSettings(
            accuracy=options.accuracy if options.accuracy is not None else o.accuracy,
            max_trials=options.max_trials if options.max_trials is not None else o.max_trials,
            extra_trials=o.extra_trials, check_frequency=o.check_frequency, max_check=o.max_check,
            damp_limit=o.damp_limit, head_error_limit_ft=o.head_error_limit_m / M_PER_FT,
            flow_change_limit_cfs=o.flow_change_limit_m3s / net.m3s_per_cfs,
        )
        from parktwin.hydraulics.controls import to_internal
        self.controls = to_internal(net.controls, self.sn)
        self.gga = GradientSolver(self.sn, self.backend, settings,
                                  junction_controls=[c for c in self.controls if 0 <= c.node < net.n_junctions])
        nj = net.n_junctions
        d = len(net.demand_node)
        self.demand_matrix = sp.csr_matrix((np.ones(d), (net.demand_node, np.arange(d))), shape=(nj, d))
        self.first_category = np.full(nj, -1, np.int64)
        for i in range(d - 1, -1, -1):
            self.first_category[net.demand_node[i]] = i

    # ------------------------------------------------------------------ per-scenario inputs
    def _resistance(self, inputs: BatchInputs):
        """Resistances [L, 1], or [L, B] when roughness is perturbed (plus D-W relative roughness)."""
        sn, net = self.sn, self.net
        base_r = sn.resistance[:, None]
        base_e = sn.rel_roughness[:, None]
        if inputs.roughness is None:
            return base_r, base_e
        rough = np.where(np.isnan(inputs.roughness.T), net.roughness[:, None], inputs.roughness.T)
        d = sn.diameter_ft[:, None]
        length = net.length_m[:, None] / M_PER_FT
        pipes = (net.link_kind <= LinkKind.PIPE)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            if sn.headloss == HeadlossFormula.HW:
                r = 4.727 * length / rough ** 1.852 / d ** 4.871
                return np.where(pipes, r, base_r), base_e
            if sn.headloss == HeadlossFormula.CM:
                r = (4.0 * rough / (1.49 * np.pi * d ** 2)) ** 2 * (d / 4.0) ** -1.333 * length
                return np.where(pipes, r, base_r), base_e
            e = np.where(pipes, (rough / M_PER_FT) / d, 0.0)
            return base_r * np.ones_like(e), e

    _STRUCTURAL = ("link_status", "valve_setting", "pump_speed", "tank_level_m", "reservoir_head_m", "roughness")

    def _initial(self, inputs: BatchInputs, flow_prev=None) -> HydraulicState:
        """The batch's starting state; batches that change no link, tank or reservoir start from a copy of
        one cached template (per batch size and warm start), which is most chunks of a leak study."""
        if any(getattr(inputs, name) is not None for name in self._STRUCTURAL):
            st = self._initial_uncached(inputs, flow_prev)
            if flow_prev is not None and st.leak_ke.any():
                j, b = np.nonzero(st.leak_ke)
                st.leak_flow[j, b] = self._warm_leak_flow(j, st.leak_ke[j, b])
            return self._with_pipe_leakage(st, inputs)
        key = (inputs.batch_size, flow_prev is not None)
        cached = getattr(self, "_template", None)
        if cached is None or cached[0] != key:
            template = self._initial_uncached(BatchInputs.base(inputs.batch_size), flow_prev)
            self._template = cached = (key, template, self._reservoir_base_ft)
        _, template, self._reservoir_base_ft = cached
        leaks = self._leak_entries(inputs)
        # Shared read-only (resistances); written whole before any solve (demands: apply_demands() runs
        # first on every path); or replaced below (the leaks): none of them is worth a copy.
        shared = ("resistance", "rel_roughness")
        fresh = ("demand_flow", "full_demand") + (("leak_ke", "leak_flow") if len(leaks[0]) else ())
        st = replace(template, **{f.name: (np.empty_like if f.name in fresh else np.copy)(getattr(template, f.name))
                                  for f in fields(template)
                                  if f.name not in shared and getattr(template, f.name) is not None})
        if len(leaks[0]):
            j, b, ke = leaks
            st.leak_ke[...] = 0.0
            st.leak_ke[j, b] = ke
            st.leak_flow[...] = 0.0
            # inithyd() starts every emitter at 1 cfs; warm-started scenarios start nearer (_warm_leak_flow)
            st.leak_flow[j, b] = 1.0 if flow_prev is None else self._warm_leak_flow(j, ke)
        return self._with_pipe_leakage(st, inputs)

    def _warm_leak_flow(self, junction: np.ndarray, leak_ke: np.ndarray) -> np.ndarray:
        """A warm-started leak's starting flow (cfs): the orifice's own flow at the base case's pressure,
        sqrt(p / Ke). Started at EPANET's 1 cfs (28 L/s, several times a typical leak) it took two Newton
        trials more to come down (L-Town leak study: 7.3 -> 5.2 trials on average). The answer is the same
        solution to the same tolerance (SNAPSHOT_TIGHTENING); only the path to it is shorter."""
        return np.sqrt(np.maximum(self._base_pressure_ft[junction, 0], 0.0) / leak_ke)

    def _with_pipe_leakage(self, st: HydraulicState, inputs: BatchInputs) -> HydraulicState:
        """EPANET 2.3's [LEAKAGE] (and the leak_favad_* perturbations) on a fresh state."""
        from parktwin.hydraulics import leakage
        leakage.attach(self, st, inputs)
        return st

    def _initial_uncached(self, inputs: BatchInputs, flow_prev=None) -> HydraulicState:
        net, sn = self.net, self.sn
        b = inputs.batch_size
        status0 = np.repeat(net.initial_status[:, None], b, axis=1)
        setting0 = np.repeat(self._setting_internal(net.initial_setting)[:, None], b, axis=1)
        kc0 = setting0   # EPANET's Kc: a status change by hand drops the setting but not the PCV's R
        if inputs.link_status is not None:
            ls = inputs.link_status.T
            status0 = np.where(ls >= 0, np.where(ls == 0, STATUS_CLOSED, STATUS_OPEN), status0).astype(np.int8)
            # EPANET's setlinkstatus(): a valve opened or closed by hand loses its setting; pumps get speed 1 / 0.
            pumps = (net.link_kind == LinkKind.PUMP)[:, None]
            setting0 = np.where((ls >= 0) & pumps, np.where(ls == 0, 0.0, 1.0), setting0)
            valves = ((net.link_kind > LinkKind.PUMP) & (net.link_kind != LinkKind.GPV))[:, None]
            setting0 = np.where((ls >= 0) & valves, np.nan, setting0)
        if inputs.valve_setting is not None:
            vs = self._setting_internal(inputs.valve_setting.T, per_link=True)
            given = ~np.isnan(vs)
            status0 = np.where(given & (status0 != STATUS_CLOSED), STATUS_ACTIVE, status0).astype(np.int8)
            setting0 = np.where(given, vs, setting0)
            kc0 = np.where(given, vs, kc0)
        if inputs.pump_speed is not None:
            sp_ = inputs.pump_speed.T
            rows = net.pump_link
            given = ~np.isnan(sp_)
            setting0[rows] = np.where(given, sp_, setting0[rows])
            # EN_INITSETTING: a speed of 0 shuts the pump; a positive speed does not reopen a pump that
            # starts closed (a `status open` row does that).
            status0[rows] = np.where(given & (sp_ == 0), STATUS_CLOSED, status0[rows])
        fixed = np.zeros((net.n_nodes, b))
        tank_h = np.repeat(sn.tank_h0_ft[:, None], b, axis=1)
        if inputs.tank_level_m is not None:
            lv = inputs.tank_level_m.T
            tank_h = np.where(np.isnan(lv), tank_h, sn.elevation_ft[sn.tank_node][:, None] + lv / M_PER_FT)
        fixed[sn.tank_node] = tank_h
        res_h = np.repeat((net.reservoir_head_m / M_PER_FT)[:, None], b, axis=1)
        if inputs.reservoir_head_m is not None:
            rh = inputs.reservoir_head_m.T
            res_h = np.where(np.isnan(rh), res_h, rh / M_PER_FT)
        fixed[net.reservoir_node] = res_h
        self._reservoir_base_ft = res_h
        resistance, rel_rough = self._resistance(inputs)
        leak_ke = self._leak_ke(inputs)
        st = initial_state(sn, status0, setting0, fixed, resistance, rel_rough, leak_ke, flow_prev,
                           pcv_setting0=kc0)
        for t in range(len(sn.tank_node)):
            st.tank_volume[t] = tank_volume(sn, t, tank_h[t])
        return st

    def _setting_internal(self, setting_si, per_link=False):
        """Valve settings SI -> internal (PRV/PSV/PBV m -> ft, FCV m3/s -> cfs); pump speeds unchanged."""
        net, sn = self.net, self.sn
        kind = net.link_kind if setting_si.ndim == 1 else net.link_kind[:, None]
        out = np.array(setting_si, dtype=float, copy=True)
        pressure = (kind == LinkKind.PRV) | (kind == LinkKind.PSV) | (kind == LinkKind.PBV)
        out = np.where(pressure, setting_si * sn.pressure_si_to_ft, out)
        out = np.where(kind == LinkKind.FCV, setting_si / sn.m3s_per_cfs, out)
        return out

    def _leak_ke(self, inputs: BatchInputs):
        """Orifice q = Cd A sqrt(2 g p) as an emitter head loss p = Ke q^2 in ft and cfs, [Nj, B]."""
        ke = np.zeros((self.net.n_junctions, inputs.batch_size))
        j, b, values = self._leak_entries(inputs)
        ke[j, b] = values
        return ke

    def _leak_entries(self, inputs: BatchInputs):
        """The leaks as (junction, scenario, Ke) entries: a few per scenario, so the law is evaluated on
        them only."""
        if inputs.leak_area_m2 is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        b, j, area = _nonzero_entries(inputs.leak_area_m2)
        cd = np.full(len(b), LEAK_DISCHARGE_COEFF)
        if inputs.leak_cd is not None:
            given = np.asarray(inputs.leak_cd[b, j]).ravel()
            cd = np.where(given > 0, given, cd)
        c_si = cd * area * np.sqrt(2.0 * GRAVITY_MS2)                       # m3/s per m^0.5
        c_int = c_si * np.sqrt(M_PER_FT) / self.sn.m3s_per_cfs             # cfs per ft^0.5
        return j, b, 1.0 / c_int ** 2

    # ------------------------------------------------------------------ time-dependent inputs
    def pattern_period(self, time_s):
        t = self.net.time
        return (np.asarray(time_s) + t.pattern_start_s) // t.pattern_step_s

    def apply_demands(self, st: HydraulicState, inputs: BatchInputs, time_s: np.ndarray):
        """EPANET's demands(): full demand per junction, reservoir head patterns, pump speed patterns."""
        net, sn = self.net, self.sn
        period = np.broadcast_to(self.pattern_period(time_s), (st.batch_size,))
        scale = net.options.demand_multiplier / sn.m3s_per_cfs
        if inputs.base_demand_m3s is None:
            # Scenarios share base demands: evaluate each distinct pattern period once, then broadcast.
            uniq, inverse = np.unique(period, return_inverse=True)
            per_cat = net.demand_base_m3s[:, None] * self._pattern_factors(net.demand_pattern, uniq) * scale
            # Straight into the state: an extended run does this every step, and [Nj, B] temporaries cost
            # more than the product.
            full = np.take(np.asarray(self.demand_matrix @ per_cat), inverse, axis=1, out=st.full_demand)
        else:
            base = np.repeat(net.demand_base_m3s[:, None], st.batch_size, axis=1)
            override = inputs.base_demand_m3s.T                                # [Nj, B]
            jn = np.flatnonzero(self.first_category >= 0)
            rows = self.first_category[jn]
            base[rows] = np.where(np.isnan(override[jn]), base[rows], override[jn])
            full = self.demand_matrix @ (base * self._pattern_factors(net.demand_pattern, period) * scale)
        if full is not st.full_demand:
            st.full_demand[:] = full
        if inputs.demand_multiplier is not None:
            st.full_demand *= inputs.demand_multiplier.T
        st.demand_flow[:] = st.full_demand
        if len(net.reservoir_node) and (net.reservoir_pattern >= 0).any():
            f = self._pattern_factors(net.reservoir_pattern, period)
            st.head[net.reservoir_node] = self._reservoir_base_ft * f
        for p, k in enumerate(net.pump_link):
            pat = net.pump_speed_pattern[p]
            if pat < 0:
                continue
            speed = self._pattern_factors(np.array([pat]), period)[0]
            self._set_pump_speed(st, k, speed)

    def _set_pump_speed(self, st, k, speed):
        """setlinksetting() for a pump: speed 0 closes it; a positive speed reopens it."""
        reopen = (speed > 0) & (st.status[k] <= CLOSED)
        p = self.sn.pump_of_link[k]
        st.flow[k] = np.where(reopen, speed * self.sn.pump_q0[p], st.flow[k])
        st.status[k] = np.where(reopen, OPEN, np.where((speed == 0) & (st.status[k] > CLOSED), CLOSED, st.status[k]))
        st.setting[k] = speed

    def _pattern_factors(self, pattern_index: np.ndarray, period: np.ndarray) -> np.ndarray:
        pats = self.net.patterns
        period = np.atleast_1d(period)
        # Scenarios usually share a few clock times: evaluate each distinct period once.
        uniq, inverse = np.unique(period, return_inverse=True)
        if len(uniq) < len(period):
            return self._pattern_factors(pattern_index, uniq)[:, inverse]
        idx = np.asarray(pattern_index)
        safe = np.where(idx >= 0, idx, 0)
        if len(pats.ids) == 0:
            return np.ones((len(idx), len(period)))
        lengths = np.diff(pats.offset)[safe]
        pos = pats.offset[safe][:, None] + period[None, :] % lengths[:, None]
        return np.where(idx[:, None] >= 0, pats.multipliers[pos], 1.0)

    # ------------------------------------------------------------------ running
    def run(self, inputs: BatchInputs | None = None, duration_s: int = 0) -> ResultSet:
        inputs = inputs or BatchInputs.base(1)
        if duration_s and duration_s > 0:
            from parktwin.hydraulics.extended import run_extended
            return run_extended(self, inputs, int(duration_s))
        return self.snapshot(inputs)

    def base_flows(self) -> np.ndarray | None:
        """Link flows of the base case at time 0 (cached), the warm start of snapshot batches, or None where
        warm starts do not pay on this network.

        They pay where the base case, restarted from its own solution, converges in at most half the
        iterations of its cold solve. Elsewhere status changes dominate the iterations (valves and pumps
        reset by EN_initH(0) settle again slowly): a warm start saves little, and on such slowly converging
        networks where the answer stops within the tolerance depends on the starting point. Some cannot be
        restarted at all: Pacific City's valves cycle for 60 trials from EN_initH(0), in EPANET too."""
        if not hasattr(self, "_base_flows"):
            self._base_flows = None
            tight = self.gga.settings.accuracy / SNAPSHOT_TIGHTENING
            cold = self._solve_snapshot(BatchInputs.base(1), None, tight)
            if cold.converged.all():
                flows = self.last_state.flow[:, :1].copy()
                nj = self.net.n_junctions
                pressure_ft = self.last_state.head[:nj, :1] - self.sn.elevation_ft[:nj, None]
                restart = self._solve_snapshot(BatchInputs.base(1), flows, tight)
                if restart.converged.all() and 2 * restart.iterations[0] <= cold.iterations[0]:
                    self._base_flows = flows
                    self._base_pressure_ft = pressure_ft
        return self._base_flows

    def snapshot(self, inputs: BatchInputs, warm: bool | None = None) -> ResultSet:
        """Every scenario at time 0, warm-started from the base case where that pays (base_flows).

        Every scenario is solved one decade past ACCURACY (SNAPSHOT_TIGHTENING); those that do not converge
        so are solved again as EPANET solves them (cold, at ACCURACY), so neither a warm start nor the
        tighter stop ever costs convergence. Iterations reported are those of the answer kept."""
        warm = self.options.warm_start if warm is None else warm
        base = self.base_flows() if warm else None
        start = None if base is None else np.repeat(base, inputs.batch_size, axis=1)
        tight = self.gga.settings.accuracy / SNAPSHOT_TIGHTENING
        outcome = self._solve_snapshot(inputs, start, tight)
        st = self.last_state
        retry = np.flatnonzero(~outcome.converged)
        if len(retry):
            cold = self._solve_snapshot(inputs.subset(retry), None)
            outcome = self._merge(st, outcome, retry, self.last_state, cold)
        self.last_state, self.last_outcome = st, outcome
        res = self.take_results(np.zeros(1, np.int64), inputs.batch_size)
        self.record(res, 0, st, outcome)
        return res

    @staticmethod
    def _merge(st: HydraulicState, outcome, rows: np.ndarray, sub: HydraulicState, sub_outcome):
        """Put the columns of `sub` and their outcome in place of `rows` of the batch."""
        from parktwin.hydraulics.gga import put_columns
        put_columns(st, sub, rows)
        merged = {}
        for f in fields(outcome):
            values = getattr(outcome, f.name).copy()
            values[rows] = getattr(sub_outcome, f.name)
            merged[f.name] = values
        return StepOutcome(**merged)

    def _solve_snapshot(self, inputs: BatchInputs, flow_prev: np.ndarray | None, accuracy: float | None = None):
        """One solve at time 0 from flow_prev (warm) or from EPANET's initial flows (None), stopping at
        `accuracy` (None: ACCURACY); leaves the state in self.last_state and returns the outcome."""
        st = self._initial(inputs, flow_prev)
        time_s = np.zeros(inputs.batch_size, np.int64)
        self.apply_demands(st, inputs, time_s)
        from parktwin.hydraulics.controls import apply_simple_controls
        apply_simple_controls(self.controls, self.sn, st, time_s, self.net.time.start_clocktime_s)
        outcome = self.gga.solve(st, accuracy=accuracy)
        self.last_state, self.last_outcome = st, outcome
        return outcome

    def take_results(self, time_s: np.ndarray, batch: int) -> ResultSet:
        """A result set for `batch` scenarios at `time_s`, not prefilled: one handed back by give_back()
        that fits (its pages already mapped: a chunk's fresh result pages cost more page faults than its
        solve on small networks), else a new one. Failure reasons come cleared."""
        pool = getattr(self, "_spare_results", [])
        for i, res in enumerate(pool):
            if res.batch_size == batch and np.array_equal(res.time_s, time_s):
                res = pool.pop(i)
                res.failure[:] = ""
                return res
        return ResultSet.allocate(self.net.node_ids, self.net.link_ids, time_s, batch,
                                  dtype=self.options.result_dtype, prefill=False,
                                  quantities=recorded_quantities(self.options.record))

    def give_back(self, res: ResultSet) -> None:
        """Hand a result set the caller no longer reads to take_results() (a run streaming chunks to a
        file keeps two: one being written, one being filled)."""
        if res.node_quality is None and res.link_quality is None:
            self._spare_results = [res, *getattr(self, "_spare_results", [])][:2]

    def record(self, res: ResultSet, t_index: int, st: HydraulicState, outcome, cols=None, state_cols=None):
        """Copy one time step of the state (its columns state_cols, None: all) into the result set at
        rows cols (None: all), converted to SI."""
        from parktwin.hydraulics.extract import state_to_si
        state_to_si(self, res, t_index, st, outcome, cols, state_cols)


def _nonzero_entries(values):
    """(rows, cols, values) of the positive entries of a dense array or a scipy.sparse matrix."""
    if sp.issparse(values):
        coo = values.tocoo()
        keep = coo.data > 0
        return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep]
    rows, cols = np.nonzero(values > 0)
    return rows, cols, values[rows, cols]
