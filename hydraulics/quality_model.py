"""The water-quality model of a network (EPANET's [QUALITY], [SOURCES], [REACTIONS], [MIXING] and the
QUALITY, DIFFUSIVITY, TOLERANCE options), compiled into arrays in EPANET's internal units.

EPANET 2.3 itself reads these sections (through its toolkit, which `inp_reader` already opens every file
with), so defaults, the roughness correlation of wall coefficients and unit rules are EPANET's own and
never re-implemented here. Indices are ParkTwin's (junctions, tanks, reservoirs; links in file order).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.units_tables import DIFFUSIVITY_FT2S, M_PER_FT, SI_FLOW_UNITS, VISCOSITY_FT2S

KIND_NONE, KIND_CHEM, KIND_AGE, KIND_TRACE = 0, 1, 2, 3
KIND_NAMES = {KIND_CHEM: "chemical", KIND_AGE: "age", KIND_TRACE: "trace"}
L_PER_FT3 = 28.317                 # EPANET's LperFT3
SECONDS_PER_DAY = 86400.0
SOURCE_TYPES = ("CONCEN", "MASS", "SETPOINT", "FLOWPACED")
MIXING_MODELS = ("MIXED", "2COMP", "FIFO", "LIFO")


@dataclass(frozen=True)
class QualityModel:
    """One species. Concentrations are EPANET-internal (chemical: mass per ft3, i.e. the file's mg/L
    times 28.317; age: hours; trace: percent); `ucf_quality` turns them into reporting units."""

    kind: int                        # KIND_CHEM, KIND_AGE or KIND_TRACE
    units: str                       # reporting units: the file's mass unit per litre, "hours", "percent"
    chemical: str                    # the chemical's name (chemical), "" otherwise
    trace_node: int                  # node index (TRACE), else -1
    quality_step_s: int
    ctol: float                      # TOLERANCE, internal units
    climit: float                    # LIMITING POTENTIAL, internal units
    bulk_order: float
    wall_order: float
    tank_order: float
    diffusivity_ft2s: float          # 0: mass transfer ignored
    viscosity_ft2s: float
    ucf_elev: float                  # m per ft for SI files, 1 for US files (EPANET's Ucf[ELEV])
    ucf_quality: float               # internal -> reporting units
    node_c0: np.ndarray              # [N] initial quality, internal units
    link_kb: np.ndarray              # [L] bulk coefficient, 1/s (pipes; 0 elsewhere)
    link_kw: np.ndarray              # [L] wall coefficient, file length unit / s or 1/s (pipes; 0 elsewhere)
    tank_kb: np.ndarray              # [Tk] 1/s
    tank_mix: np.ndarray             # [Tk] 0 MIXED, 1 2COMP, 2 FIFO, 3 LIFO
    tank_v1frac: np.ndarray          # [Tk] mixing-zone fraction (2COMP)
    source_type: np.ndarray          # [N] -1 none, else an index in SOURCE_TYPES
    source_strength: np.ndarray      # [N] as written (MASS: mass/min; others: reporting units)
    source_pattern: np.ndarray       # [N] pattern index in NetworkArrays.patterns, -1 = constant
    epanet_node_order: np.ndarray    # [N] our node indices in EPANET's node order
    epanet_link_order: np.ndarray    # [L] our link indices in EPANET's link order

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def reactive(self) -> bool:
        """EPANET's setreactflag()."""
        if self.kind == KIND_AGE:
            return True
        if self.kind == KIND_TRACE:
            return False
        return bool((self.link_kb != 0).any() or (self.link_kw != 0).any() or (self.tank_kb != 0).any())


def read_quality_model(path: str | Path, net: NetworkArrays) -> QualityModel | None:
    """The quality model of an .inp file as EPANET 2.3 reads it, or None when QUALITY is NONE."""
    from epanet import toolkit as en

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="parktwin-quality-") as tmp:
        ph = en.createproject()
        try:
            en.open(ph, str(path), os.path.join(tmp, "q.rpt"), "")
            return _read(en, ph, path, net)
        finally:
            en.close(ph)
            en.deleteproject(ph)


def _read(en, ph, path: Path, net: NetworkArrays) -> QualityModel | None:
    qual_type, chem_name, chem_units, trace_index = en.getqualinfo(ph)
    if qual_type == en.NONE:
        return None
    kind = {en.CHEM: KIND_CHEM, en.AGE: KIND_AGE, en.TRACE: KIND_TRACE}[qual_type]
    n_nodes, n_links = en.getcount(ph, en.NODECOUNT), en.getcount(ph, en.LINKCOUNT)
    node_of = {}
    order = np.zeros(n_nodes, np.int64)
    for i in range(1, n_nodes + 1):
        ours = net.node_index(en.getnodeid(ph, i))
        node_of[i] = ours
        order[i - 1] = ours
    link_of = np.array([net.link_index(en.getlinkid(ph, k)) for k in range(1, n_links + 1)], np.int64)
    flow_units = ("CFS", "GPM", "MGD", "IMGD", "AFD", "LPS", "LPM", "MLD", "CMH", "CMD", "CMS")[en.getflowunits(ph)]
    ucf_q = 1.0 / L_PER_FT3 if kind == KIND_CHEM else 1.0

    node_c0 = np.zeros(net.n_nodes)
    src_type = np.full(net.n_nodes, -1, np.int64)
    src_strength = np.zeros(net.n_nodes)
    src_pattern = np.full(net.n_nodes, -1, np.int64)
    pattern_index = {p: i for i, p in enumerate(net.patterns.ids)}
    for i, ours in node_of.items():
        node_c0[ours] = en.getnodevalue(ph, i, en.INITQUAL) / ucf_q
        try:
            stype = int(en.getnodevalue(ph, i, en.SOURCETYPE))
        except Exception as err:  # noqa: BLE001 - the SWIG toolkit raises bare Exception (240: no source)
            if "240" not in str(err):
                raise
            continue
        src_type[ours] = stype
        src_strength[ours] = en.getnodevalue(ph, i, en.SOURCEQUAL)
        pat = int(en.getnodevalue(ph, i, en.SOURCEPAT))
        if pat > 0:
            pid = en.getpatternid(ph, pat)
            if pid not in pattern_index:
                raise ValueError(f"{path}: source at node {net.node_ids[ours]} uses pattern {pid}, which the "
                                 "compiled network lacks")
            src_pattern[ours] = pattern_index[pid]

    kb = np.zeros(net.n_links)
    kw = np.zeros(net.n_links)
    for k in range(1, n_links + 1):
        if en.getlinktype(ph, k) <= en.PIPE:
            kb[link_of[k - 1]] = en.getlinkvalue(ph, k, en.KBULK) / SECONDS_PER_DAY
            kw[link_of[k - 1]] = en.getlinkvalue(ph, k, en.KWALL) / SECONDS_PER_DAY
    n_tanks = len(net.tank_node)
    tank_kb = np.zeros(n_tanks)
    tank_mix = np.zeros(n_tanks, np.int64)
    tank_v1 = np.ones(n_tanks)
    tank_of = {int(n): t for t, n in enumerate(net.tank_node)}
    for i, ours in node_of.items():
        if ours in tank_of:
            t = tank_of[ours]
            tank_kb[t] = en.getnodevalue(ph, i, en.TANK_KBULK) / SECONDS_PER_DAY
            tank_mix[t] = int(en.getnodevalue(ph, i, en.MIXMODEL))
            tank_v1[t] = en.getnodevalue(ph, i, en.MIXFRACTION)

    trace_node = node_of[trace_index] if kind == KIND_TRACE else -1
    units = chem_units if kind == KIND_CHEM else ("hours" if kind == KIND_AGE else "percent")
    return QualityModel(
        kind=kind, units=units, chemical=chem_name if kind == KIND_CHEM else "", trace_node=trace_node,
        quality_step_s=int(en.gettimeparam(ph, en.QUALSTEP)),
        ctol=en.getoption(ph, en.TOLERANCE) / ucf_q, climit=en.getoption(ph, en.CONCENLIMIT) / ucf_q,
        bulk_order=en.getoption(ph, en.BULKORDER), wall_order=en.getoption(ph, en.WALLORDER),
        tank_order=en.getoption(ph, en.TANKORDER),
        diffusivity_ft2s=en.getoption(ph, en.SP_DIFFUS) * DIFFUSIVITY_FT2S,
        viscosity_ft2s=en.getoption(ph, en.SP_VISCOS) * VISCOSITY_FT2S,
        ucf_elev=M_PER_FT if flow_units in SI_FLOW_UNITS else 1.0, ucf_quality=ucf_q,
        node_c0=node_c0, link_kb=kb, link_kw=kw, tank_kb=tank_kb, tank_mix=tank_mix, tank_v1frac=tank_v1,
        source_type=src_type, source_strength=src_strength, source_pattern=src_pattern,
        epanet_node_order=order, epanet_link_order=link_of,
    )
