"""Extended-period simulation with EPANET's time-step rules, batched.

Every scenario keeps its own clock: tanks fill and drain at different rates and controls fire at
different times, so one scenario's time step is not another's. Each pass of the loop advances every
unfinished scenario by its own step; results are recorded at the network's report times.
"""
from __future__ import annotations

import numpy as np

from parktwin.hydraulics.epanet_units import QZERO, tank_grade
from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.leakage import node_leakage
from parktwin.hydraulics.results import QUANTITIES, ResultSet
from parktwin.hydraulics.state import StepOutcome

SECONDS_PER_DAY = 86400


def report_times(net, duration_s: int) -> np.ndarray:
    t = net.time
    step = max(t.report_step_s, 1)
    start = t.report_start_s
    if start > duration_s:
        return np.zeros(0, np.int64)
    return np.arange(start, duration_s + 1, step, dtype=np.int64)


class StepVolumes:
    """Volumes over the run, summed over every hydraulic step with each step's flows held for the step
    (EPANET's own mass-balance convention), so intermediate steps (a tank filling, a control acting)
    are counted that report-time samples would miss. m³, [B, N]: `node_m3` as the results' demand
    (junction demand + emitters; a tank's net inflow; a reservoir's net inflow, negative when it
    supplies), `leak_m3` per junction."""

    def __init__(self, batch: int, n_nodes: int):
        self.node_m3 = np.zeros((batch, n_nodes))
        self.leak_m3 = np.zeros((batch, n_nodes))

    def add(self, solver, st, cols: np.ndarray, tstep_s: np.ndarray) -> None:
        nj, cfs = solver.net.n_junctions, solver.sn.m3s_per_cfs
        dt = np.asarray(tstep_s, float) * cfs
        self.node_m3[cols, :nj] += ((st.demand_flow + st.emitter_flow) * dt).T
        self.node_m3[cols, nj:] += (st.node_outflow[nj:] * dt).T
        if st.leak_ke.any():
            self.leak_m3[cols, :nj] += (st.leak_flow * dt).T
        pipe_leak = node_leakage(st)
        if pipe_leak is not None:
            self.leak_m3[cols, :nj] += (pipe_leak * dt).T


def run_extended(solver, inputs: BatchInputs, duration_s: int, progress=None,
                 volumes: StepVolumes | None = None, out: ResultSet | None = None, quality=None) -> ResultSet:
    """Run the batch for `duration_s` seconds. `out`, a result set of the same batch, network and
    report times, is filled and returned instead of a new one: a study that runs chunk after chunk
    then reuses its memory (fresh pages cost more than the solve on small networks). `quality` (a
    hydraulics.quality.QualityEngine) is started on the initial state and handed every hydraulic step."""
    from parktwin.hydraulics.controls import apply_simple_controls, control_time_step
    net, sn = solver.net, solver.sn
    tm = net.time
    times = report_times(net, duration_s)
    batch = inputs.batch_size
    # Not prefilled with NaN: that would touch every page twice. Each report time a scenario reaches is
    # written whole; those it never reaches (it failed first) become NaN at the end.
    if out is None:
        res = solver.take_results(times, batch)
    else:
        _check_reusable(out, net, times, batch, solver.options.result_dtype)
        res = out
        res.failure[:] = ""
    written = np.zeros((batch, len(times)), bool)
    st = solver._initial(inputs)
    if quality is not None:
        quality.start(solver, st)
    htime = np.zeros(batch, np.int64)
    rtime = np.full(batch, tm.report_step_s, np.int64)
    running = np.ones(batch, bool)
    rules = _rule_engine(solver)
    hstep = tm.hydraulic_step_s
    while running.any():
        cols = np.flatnonzero(running)
        # Scenarios usually advance in step: while all run, the state is solved in place, not copied.
        whole = len(cols) == batch
        sub = st if whole else _take(st, cols)
        sub_inputs = inputs if whole else inputs.subset(cols)
        t = htime[cols]
        solver.apply_demands(sub, sub_inputs, t)
        apply_simple_controls(solver.controls, sn, sub, t, tm.start_clocktime_s)
        outcome = solver.gga.solve(sub)
        at_report = (t >= tm.report_start_s) & ((t - tm.report_start_s) % max(tm.report_step_s, 1) == 0) & (t <= duration_s)
        for r_index in np.unique((t[at_report] - tm.report_start_s) // max(tm.report_step_s, 1)):
            sel = at_report & ((t - tm.report_start_s) // max(tm.report_step_s, 1) == r_index)
            if sel.all():
                solver.record(res, int(r_index), sub, outcome, None if whole else cols)
            else:
                solver.record(res, int(r_index), sub, _subset_outcome(outcome, sel), cols[sel],
                              state_cols=np.flatnonzero(sel))
            written[cols[sel], int(r_index)] = True
        failed = outcome.failed
        if failed.any():
            for b in cols[failed]:
                res.failure[b] = res.failure[b] or f"hydraulic equations could not be solved at t={int(htime[b])} s (EPANET error 110)"
        unbalanced_stop = (~outcome.converged) & (net.options.extra_trials < 0)
        # A scenario that failed or hit UNBALANCED STOP ends here; its remaining report times stay NaN.
        done = failed | unbalanced_stop | (t >= duration_s)
        active = ~done
        tstep = np.zeros(len(cols), np.int64)
        if active.any():
            tstep = _time_step(solver, sub, t, duration_s, hstep, rtime[cols])
            tstep = np.where(active, tstep, 0)
            tstep = control_time_step(solver.controls, sn, sub, t, tstep, tm.start_clocktime_s)
            tstep = np.where(active, tstep, 0)
            if rules is not None:
                tstep = rules.step(sub, t, tstep, lambda dt, s=sub: tank_levels(sn, s, dt))
            else:
                tank_levels(sn, sub, tstep)
        if volumes is not None:
            volumes.add(solver, sub, cols, tstep)
        if quality is not None:
            quality.step(solver, sub, cols, t, tstep)
        new_t = t + tstep
        rt = rtime[cols]
        rtime[cols] = np.where(active & (new_t >= rt), rt + tm.report_step_s, rt)
        htime[cols] = new_t
        if not whole:
            _put(st, sub, cols)
        running[cols[done | (tstep <= 0)]] = False
        if progress is not None:
            progress(int(batch - running.sum()), batch)
    solver.last_state = st
    _blank_unwritten(res, written)
    return res


def _check_reusable(res: ResultSet, net, times: np.ndarray, batch: int, dtype) -> None:
    if res.batch_size != batch or not np.array_equal(res.time_s, times) or res.head_m.dtype != np.dtype(dtype) \
            or len(res.node_ids) != net.n_nodes or len(res.link_ids) != net.n_links:
        raise ValueError(f"out: a result set of {res.batch_size} scenarios x {len(res.time_s)} times x "
                         f"{len(res.node_ids)} nodes ({res.head_m.dtype}) cannot take {batch} x {len(times)} x "
                         f"{net.n_nodes} ({np.dtype(dtype)})")


def _blank_unwritten(res: ResultSet, written: np.ndarray) -> None:
    """What the NaN prefill would have left: NaN results, status 0, not converged, 0 iterations."""
    missing = ~written
    if not missing.any():
        return
    for name in QUANTITIES:
        getattr(res, name)[missing] = np.nan
    res.status[missing] = 0
    res.converged[missing] = False
    res.iterations[missing] = 0


def _time_step(solver, st, t, duration_s, hstep, rtime):
    """timestep(): hydraulic step shortened to the next pattern period, report time and tank event."""
    tm = solver.net.time
    tstep = np.full(len(t), hstep, np.int64)
    n = (t + tm.pattern_start_s) // tm.pattern_step_s + 1
    dt = n * tm.pattern_step_s - t
    tstep = np.where((dt > 0) & (dt < tstep), dt, tstep)
    dt = rtime - t
    tstep = np.where((dt > 0) & (dt < tstep), dt, tstep)
    tstep = np.minimum(tstep, np.maximum(duration_s - t, 0))
    return _tank_time_step(solver.sn, st, tstep)


def _tank_time_step(sn, st, tstep):
    for t_idx, n in enumerate(sn.tank_node):
        if sn.tank_area_ft2[t_idx] == 0.0:
            continue
        h = st.head[n]
        q = st.node_outflow[n]
        v = st.tank_volume[t_idx]
        fill = (q > 0.0) & (h < sn.tank_hmax_ft[t_idx])
        drain = (q < 0.0) & (h > sn.tank_hmin_ft[t_idx])
        vol = np.where(fill, sn.tank_vmax_ft3[t_idx] - v, np.where(drain, sn.tank_vmin_ft3[t_idx] - v, 0.0))
        use = (fill | drain) & (np.abs(q) > QZERO)
        with np.errstate(divide="ignore", invalid="ignore"):
            xt = np.where(use, vol / np.where(q == 0, 1.0, q), 0.0)
        use &= np.abs(xt) <= tstep + 1
        tt = np.where(xt >= 0, np.floor(xt + 0.5), np.ceil(xt - 0.5)).astype(np.int64)
        tstep = np.where(use & (tt > 0) & (tt < tstep), tt, tstep)
    return tstep


def tank_levels(sn, st, dt):
    """tanklevels(): advance tank volumes by dt seconds per scenario and set their heads."""
    dt = np.asarray(dt)
    for t_idx, n in enumerate(sn.tank_node):
        if sn.tank_area_ft2[t_idx] == 0.0:
            continue
        q = st.node_outflow[n]
        move = (np.abs(q) > QZERO) & (dt > 0)
        v = st.tank_volume[t_idx] + np.where(move, q * dt, 0.0)
        v = np.where(move & (v + q >= sn.tank_vmax_ft3[t_idx]), sn.tank_vmax_ft3[t_idx], v)
        v = np.where(move & ~(v + q >= sn.tank_vmax_ft3[t_idx]) & (v - q <= sn.tank_vmin_ft3[t_idx]),
                     sn.tank_vmin_ft3[t_idx], v)
        st.tank_volume[t_idx] = v
        st.head[n] = np.where(move, tank_grade(sn, t_idx, v), st.head[n])


def _rule_engine(solver):
    if not solver.net.rules:
        return None
    from parktwin.hydraulics.rules import RuleEngine
    tm = solver.net.time
    return RuleEngine(solver.net.rules, solver.sn, rule_step_s=tm.rule_step_s, clock_start_s=tm.start_clocktime_s)


def _subset_outcome(outcome, sel):
    return StepOutcome(outcome.converged[sel], outcome.iterations[sel], outcome.relative_error[sel], outcome.failed[sel])


def _take(state, cols):
    from parktwin.hydraulics.gga import take_columns as take
    return take(state, cols)


def _put(state, sub, cols):
    from parktwin.hydraulics.gga import put_columns as put
    put(state, sub, cols)
