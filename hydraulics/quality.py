"""EPANET 2.3's water-quality engine driven by the batched extended-period solver.

`run_extended(..., quality=QualityEngine(...))` hands the engine every hydraulic step of every scenario
(its flows, statuses, demands and end-of-step tank volumes, as EPANET's hydraulics+quality loop sees
them); the engine records node and link quality at the report times, before the step's transport, as
EPANET's EN_runQ does. Scenarios advance on their own clocks, each with its own segments.

    engine = QualityEngine(solver, model, batch, duration_s)
    res = run_extended(solver, inputs, duration_s, quality=engine)
    engine.node_quality   # [B, T, N] in reporting units (mg/L, hours, percent)
"""
from __future__ import annotations

import numpy as np

from parktwin.hydraulics.extended import report_times
from parktwin.hydraulics.quality_model import KIND_CHEM, SOURCE_TYPES, QualityModel
from parktwin.hydraulics.units_tables import M_PER_FT

_NEED_SLACK = 1      # free segments kept beyond one per link and tank


class QualityEngine:
    def __init__(self, solver, model: QualityModel, batch: int, duration_s: int,
                 source_strength: np.ndarray | None = None, bulk_coeff_per_day: np.ndarray | None = None,
                 dtype="float64"):
        """source_strength [B, N] replaces the file's source strengths (nan: keep); bulk_coeff_per_day
        [B, L] the pipes' bulk coefficients (nan: keep), as the file states them (1/day)."""
        from parktwin.kernels import quality_numba as qk
        self.k = qk
        net, sn = solver.net, solver.sn
        self.net, self.model, self.batch, self.duration_s = net, model, batch, int(duration_s)
        self.times = report_times(net, duration_s)
        n, l, tk = net.n_nodes, net.n_links, len(net.tank_node)
        self.node_quality = np.full((batch, len(self.times), n), np.nan, dtype=dtype)
        self.link_quality = np.full((batch, len(self.times), l), np.nan, dtype=dtype)
        self.ip = np.array([model.kind, model.trace_node, int(model.reactive), net.n_junctions], np.int64)
        self.fp = np.array([model.ctol, model.climit, _getucf(model.bulk_order), _getucf(model.tank_order),
                            model.bulk_order, model.tank_order, model.wall_order,
                            model.viscosity_ft2s / model.diffusivity_ft2s if model.diffusivity_ft2s > 0 else 0.0,
                            model.diffusivity_ft2s, model.viscosity_ft2s, model.ucf_elev])
        self.qstep = int(min(model.quality_step_s or net.time.hydraulic_step_s // 10, net.time.hydraulic_step_s))
        self.qstep = max(self.qstep, 1)
        self.node_kind = np.ascontiguousarray(net.node_kind, np.int64)
        self.tank_of_node = np.full(n, -1, np.int64)
        self.tank_of_node[net.tank_node] = np.arange(tk)
        self.link_kind = np.ascontiguousarray(net.link_kind, np.int64)
        self.start_n = np.ascontiguousarray(net.link_start, np.int64)
        self.end_n = np.ascontiguousarray(net.link_end, np.int64)
        self.length_ft = sn_length_ft(net)
        self.diam_ft = np.ascontiguousarray(sn.diameter_ft, float)
        self.kw = model.link_kw.copy()
        self.tank_kb = model.tank_kb.copy()
        self.tank_mix = np.ascontiguousarray(model.tank_mix, np.int64)
        self.tank_v1frac = np.ascontiguousarray(model.tank_v1frac, float)
        self.tank_vmax = np.ascontiguousarray(sn.tank_vmax_ft3, float)
        self.adj_ptr, self.adj_link, self.adj_node = _adjacency(net, model.epanet_link_order)
        self.order = np.ascontiguousarray(model.epanet_node_order, np.int64)
        self.src_type = np.repeat(np.asarray(model.source_type, np.int64)[None, :], batch, axis=0)   # [B, N]
        strength = np.broadcast_to(model.source_strength, (batch, n)).copy()
        if source_strength is not None:
            given = ~np.isnan(source_strength)
            strength = np.where(given, source_strength, strength)
            # EN_setnodevalue(EN_SOURCEQUAL) on a node without a source makes it a CONCEN source
            self.src_type = np.where(given & (self.src_type < 0), SOURCE_TYPES.index("CONCEN"), self.src_type)
        mass = self.src_type == SOURCE_TYPES.index("MASS")
        self.src_base = np.where(mass, strength / 60.0, strength / model.ucf_quality)      # [B, N] sourcequal()
        self.kb = np.repeat(model.link_kb[None, :], batch, axis=0)           # [B, L] 1/s
        if bulk_coeff_per_day is not None:
            pipes = net.link_kind[None, :] <= 1
            given = ~np.isnan(bulk_coeff_per_day) & pipes
            self.kb = np.where(given, np.nan_to_num(bulk_coeff_per_day) / 86400.0, self.kb)
        if model.kind == KIND_CHEM and self.kb.any():
            self.ip[2] = 1     # a perturbed coefficient makes a chemical reactive (setreactflag())
        # Scenario state
        self.node_qual = np.zeros((batch, n))
        self.tank_c = np.zeros((batch, tk))
        self.flow_dir = np.zeros((batch, l), np.int8)
        self.sorted_nodes = np.zeros((batch, n), np.int64)
        self.rc = np.zeros((batch, l))
        self.need = l + tk + _NEED_SLACK
        cap = 2 * self.need + 16
        self.seg_v = np.zeros((batch, cap))
        self.seg_c = np.zeros((batch, cap))
        self.seg_prev = np.full((batch, cap), -1, np.int64)
        self.first = np.full((batch, l + tk), -1, np.int64)
        self.last = np.full((batch, l + tk), -1, np.int64)
        self.pool = np.zeros((batch, 3), np.int64)

    # ------------------------------------------------------------------ the driver's interface
    def start(self, solver, st) -> None:
        """initqual(): initial qualities and segments (tank volumes of the batch's starting state)."""
        rows = np.arange(self.batch, dtype=np.int64)
        self.k.init_segments(rows, self.ip, self.node_kind, self.link_kind, self.start_n, self.end_n,
                             self.length_ft, self.diam_ft, self.model.node_c0, np.asarray(self.net.tank_node, np.int64),
                             self.tank_mix, self.tank_v1frac, self.tank_vmax, np.ascontiguousarray(st.tank_volume, float),
                             self.node_qual, self.tank_c, self.flow_dir, self.sorted_nodes, self.order,
                             self.seg_v, self.seg_c, self.seg_prev, self.first, self.last, self.pool)

    def step(self, solver, st, cols: np.ndarray, t: np.ndarray, tstep: np.ndarray) -> None:
        """One hydraulic step of scenarios `cols` (state columns in `cols` order) from times t over tstep s."""
        cols = np.asarray(cols, np.int64)
        tm = self.net.time
        rstep = max(tm.report_step_s, 1)
        at_report = (t >= tm.report_start_s) & ((t - tm.report_start_s) % rstep == 0) & (t <= self.duration_s)
        if at_report.any():
            self._record(cols[at_report], ((t[at_report] - tm.report_start_s) // rstep).astype(np.int64))
        live = t < self.duration_s
        if not live.any():
            return
        sel = np.flatnonzero(live)
        rows = cols[sel]
        # scenario-major [rows, element]: each kernel thread walks its own contiguous rows
        flow = np.ascontiguousarray(st.flow[:, sel].T, float)
        status = np.ascontiguousarray(st.status[:, sel].T, np.int64)
        self.k.begin_step(rows, self.ip, self.fp, flow, status, self.link_kind, self.start_n, self.end_n,
                          self.length_ft, self.diam_ft, self.kw, self.rc, self.flow_dir, self.adj_ptr, self.adj_link,
                          self.adj_node, self.order, self.sorted_nodes, self.seg_prev, self.first, self.last)
        hydstep = np.asarray(tstep, np.int64)[sel]
        if not (hydstep > 0).any():
            return
        nj = self.net.n_junctions
        junction_out = st.demand_flow[:, sel] + st.emitter_flow[:, sel] + st.leak_flow[:, sel]
        if st.favad_qfa is not None:
            # EPANET's NodeDemand includes the pipe leakage ([LEAKAGE]) the junction releases
            junction_out = junction_out + st.favad_qfa[:, sel] + st.favad_qva[:, sel]
        demand = np.zeros((len(sel), self.net.n_nodes))
        demand[:, :nj] = junction_out.T
        vol_now = np.ascontiguousarray(st.tank_volume[:, sel].T, float)
        src_now = np.ascontiguousarray(self.src_base[rows] * self._pattern_factors(t[sel]))
        qdone = np.zeros(len(sel), np.int64)
        stalled = np.zeros(len(sel), bool)
        while True:
            self.k.advance(rows, hydstep, self.qstep, qdone, stalled, self.need, self.ip, self.fp, flow, status,
                           demand, vol_now, self.src_type, src_now, self.node_kind, self.tank_of_node, self.link_kind,
                           self.start_n, self.end_n, self.diam_ft, self.kb, self.kw, self.rc, self.tank_kb,
                           self.tank_mix, self.tank_v1frac, self.tank_vmax, self.adj_ptr, self.adj_link,
                           self.node_qual, self.tank_c, self.flow_dir, self.sorted_nodes, self.seg_v, self.seg_c,
                           self.seg_prev, self.first, self.last, self.pool)
            if not stalled.any():
                break
            self._grow()

    # ------------------------------------------------------------------ helpers
    def _record(self, rows: np.ndarray, r_index: np.ndarray) -> None:
        ucf = self.model.ucf_quality
        self.node_quality[rows, r_index] = self.node_qual[rows] * ucf
        out = np.empty((len(rows), self.net.n_links))
        self.k.link_quality(rows, self.start_n, self.end_n, self.node_qual, self.seg_v, self.seg_c, self.seg_prev,
                            self.first, out)
        self.link_quality[rows, r_index] = out * ucf

    def _pattern_factors(self, t: np.ndarray) -> np.ndarray:
        """[len(t), N] source pattern factor at each row's step start (1 for sources without a pattern)."""
        tm = self.net.time
        pats = self.model.source_pattern
        factors = np.ones((len(t), self.net.n_nodes))
        for n in np.flatnonzero(pats >= 0):
            values = self.net.patterns.values(int(pats[n]))
            period = (np.asarray(t) + tm.pattern_start_s) // tm.pattern_step_s
            factors[:, n] = values[period % len(values)]
        return factors

    def _grow(self) -> None:
        cap = self.seg_v.shape[1]
        extra = max(cap, self.need)
        self.seg_v = np.concatenate([self.seg_v, np.zeros((self.batch, extra))], axis=1)
        self.seg_c = np.concatenate([self.seg_c, np.zeros((self.batch, extra))], axis=1)
        self.seg_prev = np.concatenate([self.seg_prev, np.full((self.batch, extra), -1, np.int64)], axis=1)


def _getucf(order: float) -> float:
    """getucf(): bulk rates per litre -> per ft3."""
    order = max(order, 0.0)
    return 1.0 if order == 1.0 else 1.0 / 28.317 ** (order - 1.0)


def sn_length_ft(net) -> np.ndarray:
    return np.ascontiguousarray(net.length_m / M_PER_FT, float)


def _adjacency(net, epanet_link_order: np.ndarray):
    """EPANET's Adjlist as CSR: at each node, its links in reverse EPANET link order (buildadjlists()
    pushes each link at the head of both end nodes' lists)."""
    n = net.n_nodes
    lists = [[] for _ in range(n)]
    for k in epanet_link_order[::-1]:
        a, b = int(net.link_start[k]), int(net.link_end[k])
        lists[a].append((int(k), b))
        lists[b].append((int(k), a))
    ptr = np.zeros(n + 1, np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    links = np.array([k for x in lists for k, _ in x], np.int64)
    nodes = np.array([m for x in lists for _, m in x], np.int64)
    return ptr, links, nodes


def run_with_quality(net, options=None, inputs=None, duration_s: int | None = None, model: QualityModel | None = None,
                     **engine_args):
    """An extended-period run of `net` with its quality model: (ResultSet, QualityEngine)."""
    from parktwin.hydraulics.extended import run_extended
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.quality_model import read_quality_model
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    solver = HydraulicSolver(net, options or SolverOptions())
    model = model or read_quality_model(net.source_path, net)
    if model is None:
        raise ValueError(f"{net.source_path or net.name}: the network's QUALITY option is NONE")
    inputs = inputs or BatchInputs.base(1)
    duration_s = net.time.duration_s if duration_s is None else int(duration_s)
    engine = QualityEngine(solver, model, inputs.batch_size, duration_s, **engine_args)
    return run_extended(solver, inputs, duration_s, quality=engine), engine


def quality_model(net) -> QualityModel | None:
    """The network's quality model (read once per NetworkArrays instance from its .inp), None without one."""
    cached = net.__dict__.get("_quality_model", False)
    if cached is False:
        from parktwin.hydraulics.quality_model import read_quality_model
        cached = read_quality_model(net.source_path, net) if net.source_path else None
        object.__setattr__(net, "_quality_model", cached)
    return cached


def check_quality_inputs(net, inputs, duration_s: int) -> None:
    """source_quality and bulk_coeff act only in extended runs of a network with a quality model: refuse
    them elsewhere before anything is solved (rather than fail every scenario)."""
    if inputs.source_quality is None and inputs.bulk_coeff is None:
        return
    if not duration_s or duration_s <= 0:
        raise ValueError(f"{net.name}: source_quality and bulk_coeff need an extended-period run (--duration > 0); "
                         "a snapshot has no water quality")
    if quality_model(net) is None:
        raise ValueError(f"{net.name}: source_quality and bulk_coeff need a network whose QUALITY option is not NONE")


def solve_with_quality(solver, inputs, duration_s: int):
    """solver.run(inputs, duration_s), with node and link quality when the network has a quality model and
    the run has a duration (a snapshot has no quality: EPANET reports its initial values) and the options
    record quality (SolverOptions.record)."""
    from dataclasses import replace

    from parktwin.hydraulics.extended import run_extended
    check_quality_inputs(solver.net, inputs, duration_s)
    from parktwin.hydraulics.results import records_quality
    recorded = records_quality(solver.options.record)
    model = quality_model(solver.net) if duration_s and duration_s > 0 and recorded else None
    if model is None:
        return solver.run(inputs, duration_s)
    engine = QualityEngine(solver, model, inputs.batch_size, int(duration_s), source_strength=inputs.source_quality,
                           bulk_coeff_per_day=inputs.bulk_coeff, dtype=solver.options.result_dtype)
    res = run_extended(solver, inputs, int(duration_s), quality=engine)
    return replace(res, node_quality=engine.node_quality, link_quality=engine.link_quality)
