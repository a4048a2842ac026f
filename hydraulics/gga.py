"""Todini-Pilati gradient algorithm, batched over scenarios, following EPANET 2.3's hydsolve().

One call solves one time step for B scenarios. Each scenario keeps its own iteration count, status
check schedule, relaxation factor and convergence flag; scenarios that have converged are frozen while
the others iterate. A scenario whose matrix cannot be factorised (and is not rescued by fixing a control
valve, as EPANET's badvalve() does) is flagged, never raised.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from parktwin.hydraulics.assemble import Assembler
from parktwin.hydraulics.coefficients import ACTIVE, XFCV, XPRESSURE
from parktwin.hydraulics.epanet_units import SolverNetwork
from parktwin.hydraulics.network import LinkKind
from parktwin.hydraulics.state import StepOutcome
from parktwin.hydraulics.status import link_status, pressure_switch, valve_status


@dataclass(frozen=True)
class GgaSettings:
    accuracy: float
    max_trials: int
    extra_trials: int
    check_frequency: int
    max_check: int
    damp_limit: float
    head_error_limit_ft: float
    flow_change_limit_cfs: float


class GradientSolver:
    """Reusable per network: owns the assembler (sparsity plan) and the valve tables."""

    def __init__(self, sn: SolverNetwork, backend, settings: GgaSettings, junction_controls=()):
        self.sn = sn
        self.backend = backend
        self.settings = settings
        self.assembler = Assembler(sn, backend)
        self.junction_controls = junction_controls
        kind = sn.kind
        self.valve_rows = np.flatnonzero(kind >= LinkKind.PRV)
        self.fused = None
        if getattr(backend, "name", "") == "numba":
            from parktwin.hydraulics.fused import FusedGradientSolver, unsupported_reason
            if unsupported_reason(sn, settings, junction_controls) is None:
                self.fused = FusedGradientSolver(sn, self.assembler, settings)
        elif getattr(backend, "name", "") == "cupy":
            from parktwin.hydraulics.device import device_solver
            self.fused = device_solver(sn, self.assembler, settings, junction_controls)

    def solve(self, state, active: np.ndarray | None = None, accuracy: float | None = None) -> StepOutcome:
        """hydsolve() for the batch; `accuracy` overrides the settings' for this call (warm starts).
        A scenario that does not converge reports EPANET's count of trials: the limit plus one."""
        # the device kernels do not carry pipe leakage yet: those states take the reference path
        leaks_along_pipes = state.favad_cfa is not None and not getattr(self.fused, "carries_pipe_leakage", False)
        if self.fused is not None and active is None and leaks_along_pipes:
            _reference_path_note(self.backend, "pipe leakage ([LEAKAGE], leak_favad_*)")
        if self.fused is not None and active is None and not leaks_along_pipes:
            return self.fused.solve(state, self._rescue, accuracy)
        s = self.settings if accuracy is None else replace(self.settings, accuracy=accuracy)
        batch = state.batch_size
        iters = np.ones(batch, np.int64)
        next_check = np.full(batch, s.check_frequency, np.int64)
        relax = np.ones(batch)
        relerr = np.zeros(batch)
        converged = np.zeros(batch, bool)
        failed = np.zeros(batch, bool)
        max_trials = s.max_trials + (s.extra_trials if s.extra_trials > 0 else 0)
        cols = np.arange(batch) if active is None else np.flatnonzero(active)
        sub = take_columns(state, cols) if len(cols) != batch else state
        # Finished scenarios stay in the working set, frozen (relaxation 0, no status checks), until
        # half of it is finished: compacting at every iteration would copy more than it saves.
        frozen = np.zeros(len(cols), bool)
        while len(cols):
            x, bad_node, pdata = self.assembler.build_and_solve(sub)
            bad = (bad_node >= 0) & ~frozen
            live = ~frozen
            if bad.any():
                rescued = self._bad_valve(sub, np.where(bad, bad_node, -1))
                lost = bad & ~rescued
                failed[cols[lost]] = True
                frozen |= lost
                # A rescued scenario is retried without counting an iteration (EPANET's badvalve).
                live = ~frozen & ~bad
            if live.any():
                frozen |= self._iterate(s, sub, cols, live, x, pdata, iters, next_check, relax, relerr, converged)
            frozen |= iters[cols] > max_trials
            if frozen.all() or frozen.sum() * 2 >= len(cols):
                if sub is not state:
                    put_columns(state, sub, cols)
                keep = np.flatnonzero(~frozen)
                cols = cols[keep]
                sub = take_columns(state, cols)
                frozen = np.zeros(len(cols), bool)
        return StepOutcome(converged=converged & ~failed, iterations=iters,
                           relative_error=relerr, failed=failed)

    def _iterate(self, s: GgaSettings, sub, cols, live, x, pdata, iters, next_check, relax, relerr,
                 converged) -> np.ndarray:
        """One iteration for the live columns after a linear solve; returns the columns that finished."""
        nj = self.sn.n_junctions
        lc = np.flatnonzero(live)
        if len(lc) == len(cols):
            sub.head[:nj] = x
        else:
            sub.head[:nj, lc] = x[:, lc]
        relax_now = np.where(live, relax[cols], 0.0)
        err = self.assembler.new_flows(sub, pdata, relax_now, s.accuracy)
        relerr[cols[lc]] = err[lc]
        relax[cols[lc]] = 1.0
        if s.damp_limit > 0.0:
            damp = live & (err <= s.damp_limit)
            relax[cols[damp]] = 0.6
            valve_changed = valve_status(self.sn, sub, only=damp)
        else:
            valve_changed = valve_status(self.sn, sub, only=live)
        conv = self._has_converged(s, sub, err, pdata) & live
        it = iters[cols]
        stop = conv & (it > s.max_trials)
        check = conv & ~stop
        if check.any():
            changed = valve_changed.copy()
            changed |= link_status(self.sn, sub, only=check)
            changed |= pressure_switch(self.sn, sub, self.junction_controls, only=check)
            stop |= check & ~changed
            more = check & changed
            next_check[cols[more]] = it[more] + s.check_frequency
        periodic = live & ~conv & (it <= s.max_check) & (it == next_check[cols])
        if periodic.any():
            link_status(self.sn, sub, only=periodic)
            next_check[cols[periodic]] += s.check_frequency
        converged[cols[lc]] = conv[lc]
        iters[cols[live & ~stop]] += 1
        return stop

    def _has_converged(self, s: GgaSettings, sub, relerr, pdata) -> np.ndarray:
        conv = relerr <= s.accuracy
        if s.head_error_limit_ft > 0.0 and conv.any():
            conv &= self.assembler.max_head_error(sub) <= s.head_error_limit_ft
        if s.flow_change_limit_cfs > 0.0 and conv.any():
            conv &= pdata.max_flow_change <= s.flow_change_limit_cfs
        if sub.favad_cfa is not None and conv.any():
            conv &= self.assembler.leakage_converged(sub)
        if self.sn.pda and conv.any():
            conv &= self.assembler.pda_converged(sub)
        return conv

    def _bad_valve(self, sub, bad_node: np.ndarray) -> np.ndarray:
        """badvalve(): an active PRV/PSV/FCV at the failing node is fixed open; the retry goes on."""
        rescued = np.zeros(len(bad_node), bool)
        lanes = np.flatnonzero(bad_node >= 0)
        rescued[lanes] = self._rescue(sub, lanes, bad_node[lanes])
        return rescued

    def _rescue(self, sub, lanes: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        rescued = np.zeros(len(lanes), bool)
        sn = self.sn
        for i, (b, n) in enumerate(zip(lanes, nodes)):
            for k in self.valve_rows:
                if n != sn.start[k] and n != sn.end[k]:
                    continue
                kind = sn.kind[k]
                if kind in (LinkKind.PRV, LinkKind.PSV, LinkKind.FCV) and sub.status[k, b] == ACTIVE:
                    sub.status[k, b] = XFCV if kind == LinkKind.FCV else XPRESSURE
                    rescued[i] = True
                break
        return rescued


def _reference_path_note(backend, feature: str) -> None:
    """On the cupy backend a feature the device kernels lack is named, as device_solver() does."""
    if getattr(backend, "name", "") == "cupy":
        import warnings
        warnings.warn(f"cupy backend: {feature} is not in the device kernels yet; solved by the reference path "
                      "on the host", RuntimeWarning, stacklevel=3)


def take_columns(state, cols):
    """A state holding copies of the columns `cols` (per-scenario arrays; shared [X, 1] arrays kept)."""
    from dataclasses import fields, replace
    values = {}
    for f in fields(state):
        arr = getattr(state, f.name)
        values[f.name] = arr[:, cols] if arr is not None and arr.shape[1] != 1 else arr
    return replace(state, **values)


def put_columns(state, sub, cols):
    """Write the columns `sub` holds back into `state` at `cols` (per-scenario arrays only; an array with
    one column in a batch of one is per-scenario too)."""
    from dataclasses import fields
    for f in fields(state):
        dst = getattr(state, f.name)
        if dst is not None and dst.shape[1] == state.batch_size:
            dst[:, cols] = getattr(sub, f.name)
