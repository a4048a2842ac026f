"""The cupy backend's solver: hydsolve() with every iteration on the device (kernels.cuda_gga).

It plays for the GPU the role hydraulics.fused plays for numba on the CPU: the same algorithm in the same
order, one thread per scenario. The host only uploads the step's state, launches the iteration kernel
and reads the per-scenario lane states every `sync_every` launches (a finished lane returns at once, so
launches past the last convergence cost only their launch). Under numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1) the arrays stay NumPy and the very same kernels run on the CPU: that is how CI
tests every line of device code.

What the kernels do not carry yet (`unsupported_reason`) is solved by the reference path with a warning
that names the feature: never a silently different answer.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from parktwin.hydraulics.epanet_units import SolverNetwork
from parktwin.hydraulics.network import HeadlossFormula, LinkKind
from parktwin.hydraulics.state import StepOutcome

# The state fields the kernels read or write; any other field (a feature added later) that carries
# values makes the device solve refuse, naming it (NotImplementedError), rather than ignore it.
_KERNEL_FIELDS = {"head", "flow", "status", "setting", "emitter_flow", "leak_flow", "demand_flow",
                  "full_demand", "node_outflow", "resistance", "rel_roughness", "leak_ke", "tank_volume", "pcv_r",
                  "favad_cfa", "favad_cva", "favad_qfa", "favad_qva"}
# EPANET 2.3's pipe leakage (hydraulics.leakage): read, and its flows written, where the state carries it.
_FAVAD_IN = ("favad_cfa", "favad_cva", "favad_qfa", "favad_qva")
_FAVAD_OUT = ("favad_qfa", "favad_qva")


@dataclass(frozen=True)
class DeviceOptions:
    threads_per_block: int = 128   # scenarios per CUDA block
    sync_every: int = 4            # launches between reads of the lane states
    # Scenarios on the device at once; None: as many as fit in `memory_fraction` of its free memory.
    max_batch: int | None = None
    memory_fraction: float = 0.8


def simulated() -> bool:
    """True when numba's CUDA simulator runs the kernels (the registry's test of NUMBA_ENABLE_CUDASIM)."""
    from parktwin.kernels.registry import cuda_simulated
    return cuda_simulated()


def unsupported_reason(sn: SolverNetwork, settings, junction_controls) -> str | None:
    """Why the device kernels cannot run this network (None: they can). They carry what the CPU fast
    path carries (one list, hydraulics.fused) and Darcy-Weisbach head loss besides."""
    from dataclasses import replace

    from parktwin.hydraulics.fused import unsupported_reason as fused_reason
    if sn.headloss == HeadlossFormula.DW:
        sn = replace(sn, headloss=HeadlossFormula.HW)   # the fast path's other limits still apply
    return fused_reason(sn, settings, junction_controls)


def unsupported_state(state) -> str | None:
    """A state field the kernels do not know that is in use (e.g. a newer leak law)."""
    for f in fields(state):
        if f.name in _KERNEL_FIELDS:
            continue
        value = getattr(state, f.name)
        if value is not None and np.any(np.asarray(value) != 0):
            return f"state field {f.name!r}"
    return None


class DeviceGradientSolver:
    carries_pipe_leakage = True    # EPANET 2.3's [LEAKAGE] (HydraulicState.favad_*) is in the kernel (C_FAVAD)

    def __init__(self, sn: SolverNetwork, assembler, settings, options: DeviceOptions = DeviceOptions()):
        from parktwin.kernels import cuda_gga as kernels
        self.kernels = kernels
        self.sn = sn
        self.settings = settings
        self.options = options
        self.simulated = simulated()
        if self.simulated:
            self.xp = np
        else:
            import cupy
            self.xp = cupy
        put = self._put
        kind = sn.kind.astype(np.int64)
        tank_of = np.full(sn.n_nodes, -1, np.int64)
        tank_of[sn.tank_node] = np.arange(len(sn.tank_node))
        from parktwin.hydraulics.fused import FusedGradientSolver
        status_links = FusedGradientSolver._status_links(sn, tank_of)
        n_tanks = len(sn.tank_node)
        net = dict(
            link_i=np.stack([sn.start, sn.end, kind, assembler.edge_of_link, sn.pump_of_link]).astype(np.int64),
            link_f=np.stack([sn.minor_ft_per_cfs2.astype(float), assembler.diameter4.astype(float)]),
            elev=sn.elevation_ft.astype(float), ke=sn.emitter_ke[: sn.n_junctions].astype(float),
            pump_i=_rows([sn.pump_type, sn.pump_curve], len(sn.pump_link), np.int64),
            pump_f=_rows([sn.pump_h0, sn.pump_r, sn.pump_n, sn.pump_hmax], len(sn.pump_link), float),
            tank_of=tank_of,
            tank_f=_rows([sn.tank_hmin_ft, sn.tank_hmax_ft, sn.tank_area_ft2, sn.tank_can_overflow],
                         n_tanks, float),
            cx=np.asarray(sn.curve_x, float), cy=np.asarray(sn.curve_y, float),
            c_off=np.asarray(sn.curve_offset, np.int64),
            visc_d=np.asarray(sn.viscosity_diameter, float), dw=_darcy_weisbach_constants(sn),
            ctl=assembler.ctl_valves.astype(np.int64), status_links=status_links,
            prv_psv=np.flatnonzero((kind == LinkKind.PRV) | (kind == LinkKind.PSV)).astype(np.int64),
            valve_rows=np.flatnonzero(kind >= LinkKind.PRV).astype(np.int64),
        )
        self.net = {name: put(np.ascontiguousarray(a)) for name, a in net.items()}
        plan = assembler.plan
        self.plan = tuple(put(np.ascontiguousarray(a, np.int64)) for a in
                          (plan.perm, plan.edge_slot, plan.col_ptr, plan.row_idx, plan.op_ptr, plan.op_target,
                           plan.op_a, plan.op_b, plan.op_pivot))
        self.nslots = int(plan.nslots)
        self.n_edges = len(plan.edge_slot)
        max_total = settings.max_trials + (settings.extra_trials if settings.extra_trials > 0 else 0)
        self.max_total = max_total
        ctrl = np.zeros(kernels.N_CTRL)
        ctrl[kernels.C_HEXP] = sn.flow_exponent
        ctrl[kernels.C_ACCURACY] = settings.accuracy
        ctrl[kernels.C_MAX_TRIALS] = settings.max_trials
        ctrl[kernels.C_CHECK_FREQ] = settings.check_frequency
        ctrl[kernels.C_MAX_CHECK] = settings.max_check
        ctrl[kernels.C_MAX_TOTAL] = max_total
        ctrl[kernels.C_DAMP] = settings.damp_limit
        ctrl[kernels.C_QEXP] = sn.emitter_qexp
        ctrl[kernels.C_BACKFLOW] = 1.0 if sn.emitter_backflow else 0.0
        self.ctrl = put(ctrl)
        self._work = None

    def _put(self, host: np.ndarray):
        return host if self.simulated else self.xp.asarray(host)

    def _work_arrays(self, batch: int):
        """[slot, B] work arrays, kept between calls of the same batch size."""
        if self._work is None or self._work[0] != batch:
            sn, xp = self.sn, self.xp
            nj = sn.n_junctions
            shapes = ((sn.n_links, batch), (sn.n_links, batch), (nj, batch), (max(self.n_edges, 1), batch),
                      (nj, batch), (sn.n_nodes, batch), (self.nslots, batch), (nj, batch))
            self._work = (batch, tuple(xp.empty(s) for s in shapes))
        return self._work[1]

    # The state the kernel reads, in its argument order; the ones it writes come back after the solve.
    _STATE_IN = ("flow", "head", "status", "setting", "resistance", "rel_roughness", "emitter_flow", "leak_flow",
                 "leak_ke", "demand_flow", "node_outflow")
    _STATE_OUT = ("flow", "head", "status", "emitter_flow", "leak_flow", "node_outflow")

    def bytes_per_scenario(self) -> int:
        """Device memory one scenario takes: its state, its lane counters and its [slot] work arrays."""
        sn = self.sn
        nj, n_links, n_nodes = sn.n_junctions, sn.n_links, sn.n_nodes
        work = 2 * n_links + 3 * nj + max(self.n_edges, 1) + n_nodes + self.nslots
        state = 4 * n_links + 2 * n_nodes + 8 * nj       # flow, setting, resistance, (status), pipe leakage ...
        return 8 * (work + state) + 8 * 5

    def max_batch(self) -> int:
        """Scenarios solved on the device at once (a larger batch is solved in slices of this size)."""
        if self.options.max_batch is not None:
            return max(1, int(self.options.max_batch))
        if self.simulated:
            return 1 << 62
        pool = self.xp.get_default_memory_pool()
        free_bytes = self.xp.cuda.runtime.memGetInfo()[0] + pool.free_bytes()
        return max(1, int(free_bytes * self.options.memory_fraction) // self.bytes_per_scenario())

    def launch_arguments(self, st, accuracy: float | None = None, cols: slice = slice(None)):
        """(arguments of kernels.iterate, the state on the device, the lane arrays) for the scenarios
        `cols` of the batch `st`."""
        xp = self.xp
        dev = {name: self._put(np.ascontiguousarray(_columns(getattr(st, name), cols))) for name in self._STATE_IN}
        batch = dev["flow"].shape[1]
        favad = st.favad_cfa is not None
        for name in _FAVAD_IN:
            # [1, 1] stand-ins, never read, where nothing leaks along pipes (ctrl[C_FAVAD] = 0)
            dev[name] = (self._put(np.ascontiguousarray(_columns(getattr(st, name), cols))) if favad
                         else xp.zeros((1, 1)))
        lanes = dict(lane_state=xp.zeros(batch, np.int8), iters=xp.ones(batch, np.int64),
                     next_check=xp.full(batch, self.settings.check_frequency, np.int64),
                     relax=xp.ones(batch), relerr=xp.zeros(batch), converged=xp.zeros(batch, np.int8),
                     failed=xp.zeros(batch, np.int8))
        ctrl = self.ctrl
        if accuracy is not None or favad:
            ctrl = ctrl.copy()
            if accuracy is not None:
                ctrl[self.kernels.C_ACCURACY] = float(accuracy)
            ctrl[self.kernels.C_FAVAD] = 1.0 if favad else 0.0
        n = self.net
        args = (self.sn.n_junctions, ctrl, n["link_i"], n["link_f"], n["elev"], n["ke"], n["pump_i"], n["pump_f"],
                n["tank_of"], n["tank_f"], n["cx"], n["cy"], n["c_off"], n["visc_d"], n["dw"], n["ctl"],
                n["status_links"],
                n["prv_psv"], n["valve_rows"], *self.plan,
                *dev.values(), *lanes.values(), *self._work_arrays(batch))
        return args, dev, lanes

    def solve(self, st, bad_valve=None, accuracy: float | None = None):
        """One time step for every scenario of `st` (host arrays, updated in place). `bad_valve` is not
        used: the kernel does EPANET's badvalve() rescue itself. `accuracy` overrides the settings'."""
        problem = unsupported_state(st)
        if problem is not None:
            raise NotImplementedError(f"cupy backend: {problem} is not in the device kernels")
        if st.batch_size == 0:
            empty = np.zeros(0)
            return StepOutcome(converged=empty.astype(bool), iterations=empty.astype(np.int64), relative_error=empty,
                               failed=empty.astype(bool))
        step = self.max_batch()
        parts = [self._solve_columns(st, slice(start, start + step), accuracy)
                 for start in range(0, st.batch_size, step)]
        host = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        failed = host["failed"].astype(bool)
        return StepOutcome(converged=host["converged"].astype(bool) & ~failed,
                           iterations=host["iters"],
                           relative_error=host["relerr"], failed=failed)

    def _solve_columns(self, st, cols: slice, accuracy) -> dict:
        """Solve the scenarios `cols` on the device; returns their lane arrays on the host."""
        args, dev, lanes = self.launch_arguments(st, accuracy, cols)
        batch = dev["flow"].shape[1]
        tpb = max(1, min(self.options.threads_per_block, batch))
        kernel = self.kernels.iterate[-(-batch // tpb), tpb]
        # Every launch advances each running scenario by one iteration (or one badvalve retry); a bound
        # on launches keeps a kernel fault from looping forever.
        limit = (self.max_total + 2) * (len(self.sn.kind) + 2) + 8
        launches = 0
        while True:
            for _ in range(self.options.sync_every):
                kernel(*args)
            launches += self.options.sync_every
            if not bool((lanes["lane_state"] == 0).any()):
                break
            if launches > limit:
                raise RuntimeError(f"device solver: scenarios still running after {launches} launches")
        favad = st.favad_cfa is not None
        for name in self._STATE_OUT + (_FAVAD_OUT if favad else ()):
            target = getattr(st, name)
            if target is not dev[name]:
                target[:, cols] = self._get(dev[name])
        return {name: self._get(a) for name, a in lanes.items()}

    def _get(self, device_array) -> np.ndarray:
        return np.asarray(device_array) if self.simulated else self.xp.asnumpy(device_array)


def _columns(array: np.ndarray, cols: slice) -> np.ndarray:
    """The scenario columns of a state array; [L, 1] arrays (shared by every scenario) stay whole."""
    return array if array.shape[1] == 1 or cols == slice(None) else array[:, cols]


def _darcy_weisbach_constants(sn: SolverNetwork) -> np.ndarray:
    """EPANET's friction-factor constants A1, A2, A8, A9, AB, AC for the kernels; zeros: not Darcy-Weisbach."""
    if sn.headloss != HeadlossFormula.DW:
        return np.zeros(6)
    from parktwin.hydraulics import coefficients as co
    return np.array([co._A1, co._A2, co._A8, co._A9, co._AB, co._AC])


def _rows(columns, length: int, dtype) -> np.ndarray:
    """A [len(columns), max(length, 1)] table (kernels index it by row; a zero-width array still types)."""
    out = np.zeros((len(columns), max(length, 1)), dtype)
    for i, c in enumerate(columns):
        out[i, :length] = np.asarray(c)[:length]
    return out



def device_solver(sn: SolverNetwork, assembler, settings, junction_controls) -> DeviceGradientSolver | None:
    """The device solver for this network, or None (with a warning naming the feature) when the kernels
    cannot carry it and the reference path (LDL^T on the device, the rest on the host) solves instead."""
    reason = unsupported_reason(sn, settings, junction_controls)
    if reason is not None:
        import warnings
        warnings.warn(f"cupy backend: {reason} is not in the device kernels yet; this network is solved by the "
                      "reference path (assembly on the host, LDL^T on the device)", RuntimeWarning, stacklevel=3)
        return None
    return DeviceGradientSolver(sn, assembler, settings)
