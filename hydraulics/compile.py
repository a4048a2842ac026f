"""Compile a WNTR `WaterNetworkModel` (SI) into `NetworkArrays`.

Only this module and `inp_reader` touch WNTR objects; everything downstream works on arrays.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from parktwin.hydraulics.network import (
    Curves, HeadlossFormula, HydraulicOptions, LinkKind, NetworkArrays, NodeKind, Patterns,
    STATUS_ACTIVE, STATUS_CLOSED, STATUS_OPEN, TimeOptions,
)
from parktwin.hydraulics.controls_parse import compile_controls_from_file
from parktwin.hydraulics.leakage import si_from_file
from parktwin.hydraulics.units_tables import EPANET_FLOW_PER_CFS, US_FLOW_UNITS, wntr_flow_unit_factor



class UnsupportedFeature(NotImplementedError):
    """A model uses something the solver does not support yet; the message names it."""


def _status_code(status) -> int:
    name = getattr(status, "name", str(status)).upper()
    if name == "CLOSED":
        return STATUS_CLOSED
    if name == "ACTIVE":
        return STATUS_ACTIVE
    return STATUS_OPEN


def _pattern_index(pattern_ids: dict[str, int], pattern) -> int:
    if pattern is None:
        return -1
    name = pattern if isinstance(pattern, str) else pattern.name
    return pattern_ids.get(name, -1)


def compile_network(wn, *, name: str = "", source_path: str | Path = "", extras=None) -> NetworkArrays:
    """Compile a WNTR model into arrays. `extras` carries what WNTR's reader drops (inp_reader)."""
    opts = wn.options.hydraulic
    topts = wn.options.time
    # IDs with blanks reach WNTR as stand-ins (inp_reader); the compiled network names them as the file does
    originals = dict(getattr(extras, "aliases", ()) or ())
    rename = lambda ident: originals.get(ident, ident)  # noqa: E731
    flow_units = str(opts.inpfile_units or "GPM").upper()
    m3s_per_cfs = wntr_flow_unit_factor(flow_units) * EPANET_FLOW_PER_CFS[flow_units]

    pattern_names = list(wn.pattern_name_list)
    pattern_ids = {p: i for i, p in enumerate(pattern_names)}
    pat_values = [np.asarray(wn.get_pattern(p).multipliers, dtype=float) for p in pattern_names]
    pat_values = [v if v.size else np.ones(1) for v in pat_values]
    patterns = Patterns(
        ids=tuple(map(rename, pattern_names)),
        offset=np.concatenate([[0], np.cumsum([len(v) for v in pat_values])]).astype(np.int64),
        multipliers=np.concatenate(pat_values) if pat_values else np.zeros(0),
    )
    default_pattern = pattern_ids.get(str(opts.pattern), -1) if opts.pattern is not None else -1

    curve_names = list(wn.curve_name_list)
    curve_ids = {c: i for i, c in enumerate(curve_names)}
    curve_pts = [np.asarray(wn.get_curve(c).points, dtype=float).reshape(-1, 2) for c in curve_names]
    curves = Curves(
        ids=tuple(map(rename, curve_names)),
        offset=np.concatenate([[0], np.cumsum([len(p) for p in curve_pts])]).astype(np.int64),
        x=np.concatenate([p[:, 0] for p in curve_pts]) if curve_pts else np.zeros(0),
        y=np.concatenate([p[:, 1] for p in curve_pts]) if curve_pts else np.zeros(0),
    )

    junctions = list(wn.junction_name_list)
    tanks = list(wn.tank_name_list)
    reservoirs = list(wn.reservoir_name_list)
    node_ids = tuple(junctions + tanks + reservoirs)
    node_index = {n: i for i, n in enumerate(node_ids)}
    n_nodes = len(node_ids)
    node_kind = np.array([NodeKind.JUNCTION] * len(junctions) + [NodeKind.TANK] * len(tanks)
                         + [NodeKind.RESERVOIR] * len(reservoirs), dtype=np.int8)
    elevation = np.zeros(n_nodes)
    xy = np.full((n_nodes, 2), np.nan)
    emitter = np.zeros(n_nodes)
    d_node, d_base, d_pat = [], [], []
    for i, nid in enumerate(node_ids):
        node = wn.get_node(nid)
        if node.coordinates is not None:
            xy[i] = node.coordinates
        if i < len(junctions):
            elevation[i] = node.elevation
            emitter[i] = node.emitter_coefficient or 0.0
            for demand in node.demand_timeseries_list:
                d_node.append(i)
                d_base.append(demand.base_value)
                pat = _pattern_index(pattern_ids, demand.pattern_name)
                d_pat.append(pat if demand.pattern_name is not None else default_pattern)
        elif node_kind[i] == NodeKind.TANK:
            elevation[i] = node.elevation
        else:
            elevation[i] = node.base_head

    tank_rows = [wn.get_node(t) for t in tanks]
    res_rows = [wn.get_node(r) for r in reservoirs]

    link_ids = tuple(wn.link_name_list)
    n_links = len(link_ids)
    start = np.zeros(n_links, np.int64)
    end = np.zeros(n_links, np.int64)
    kind = np.zeros(n_links, np.int8)
    length = np.zeros(n_links)
    diameter = np.zeros(n_links)
    rough = np.zeros(n_links)
    minor = np.zeros(n_links)
    status = np.full(n_links, STATUS_OPEN, np.int8)
    setting = np.full(n_links, np.nan)
    valve_curve = np.full(n_links, -1, np.int64)
    pump_link, pump_curve, pump_power, pump_pat = [], [], [], []
    pcvs = {p[0]: p[1:] for p in getattr(extras, "pcv", ())}
    for k, lid in enumerate(link_ids):
        link = wn.get_link(lid)
        start[k] = node_index[link.start_node_name]
        end[k] = node_index[link.end_node_name]
        ltype = link.link_type.upper()
        if ltype == "PIPE":
            kind[k] = LinkKind.CVPIPE if link.check_valve else LinkKind.PIPE
            length[k], diameter[k] = link.length, link.diameter
            rough[k], minor[k] = link.roughness, link.minor_loss
            status[k] = _status_code(link.initial_status)
        elif ltype == "PUMP":
            kind[k] = LinkKind.PUMP
            pump_link.append(k)
            if link.pump_type == "HEAD":
                pump_curve.append(curve_ids[link.pump_curve_name])
                pump_power.append(0.0)
            else:
                pump_curve.append(-1)
                pump_power.append(float(link.power) / 1000.0)
            pump_pat.append(_pattern_index(pattern_ids, link.speed_pattern_name))
            status[k] = _status_code(link.initial_status)
            setting[k] = link.base_speed if status[k] != STATUS_CLOSED else 0.0
        else:
            vtype = "PCV" if lid in pcvs else link.valve_type.upper()
            kind[k] = LinkKind[vtype]
            diameter[k], minor[k] = link.diameter, link.minor_loss
            wstatus = _status_code(link.initial_status)
            if vtype == "GPV":
                valve_curve[k] = curve_ids[link.headloss_curve_name]
                status[k] = STATUS_CLOSED if wstatus == STATUS_CLOSED else STATUS_OPEN
            elif vtype == "PCV":
                # WNTR held it as a TCV; the percent open, status and curve come from the reader
                percent, word, curve = pcvs[lid]
                setting[k] = percent
                status[k] = {"OPEN": STATUS_OPEN, "CLOSED": STATUS_CLOSED}.get(word, STATUS_ACTIVE)
                if curve is not None:
                    if wn.get_curve(curve).curve_type is not None:
                        # WNTR converted the points for that other use; a PCV curve is in percent
                        raise UnsupportedFeature(f"valve {lid}: PCV curve {curve} is also used as a "
                                                 f"{wn.get_curve(curve).curve_type} curve")
                    valve_curve[k] = curve_ids[curve]
            else:
                setting[k] = float(link.initial_setting)
                status[k] = wstatus
    if (diameter[kind <= LinkKind.PIPE] <= 0).any():
        bad = [link_ids[k] for k in np.flatnonzero((diameter <= 0) & (kind <= LinkKind.PIPE))]
        raise ValueError(f"pipe {bad[0]}: diameter must be positive")

    time = TimeOptions(
        duration_s=int(topts.duration), hydraulic_step_s=int(topts.hydraulic_timestep),
        pattern_step_s=int(topts.pattern_timestep), pattern_start_s=int(topts.pattern_start),
        report_step_s=int(topts.report_timestep), report_start_s=int(topts.report_start),
        start_clocktime_s=int(topts.start_clocktime), rule_step_s=int(topts.rule_timestep),
    )
    unbalanced = str(opts.unbalanced).upper()
    extra = -1 if unbalanced == "STOP" else int(opts.unbalanced_value or 0)
    headloss = {"H-W": HeadlossFormula.HW, "D-W": HeadlossFormula.DW, "C-M": HeadlossFormula.CM}[opts.headloss]
    options = HydraulicOptions(
        headloss=headloss,
        viscosity_ratio=float(opts.viscosity),
        specific_gravity=float(opts.specific_gravity),
        demand_multiplier=float(opts.demand_multiplier),
        emitter_exponent=float(opts.emitter_exponent),
        accuracy=float(opts.accuracy),
        max_trials=int(opts.trials),
        extra_trials=extra,
        check_frequency=int(opts.checkfreq),
        max_check=int(opts.maxcheck),
        damp_limit=float(opts.damplimit),
        head_error_limit_m=float(opts.headerror or 0.0),
        flow_change_limit_m3s=float(opts.flowchange or 0.0),
        demand_model_pda=str(opts.demand_model).upper() in ("PDA", "PDD"),
        pda_min_pressure_m=float(opts.minimum_pressure),
        pda_required_pressure_m=float(opts.required_pressure),
        pda_pressure_exponent=float(opts.pressure_exponent),
        emitter_backflow=bool(getattr(extras, "emitter_backflow", True)),
    )
    controls, rules = (), ()
    if source_path:
        controls, rules = compile_controls_from_file(
            source_path, {rename(n): i for n, i in node_index.items()},
            {rename(lk): i for i, lk in enumerate(link_ids)}, kind, node_kind,
            elevation, flow_units, float(opts.specific_gravity))

    source_path = str(source_path)
    sha = hashlib.sha256(Path(source_path).read_bytes()).hexdigest() if source_path else ""
    as_int = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    as_f = lambda v: np.asarray(v, dtype=float)  # noqa: E731
    return NetworkArrays(
        name=name or (Path(source_path).stem if source_path else wn.name or "network"),
        node_ids=tuple(map(rename, node_ids)), link_ids=tuple(map(rename, link_ids)), n_junctions=len(junctions),
        node_kind=node_kind, elevation_m=elevation, xy_m=xy,
        demand_node=as_int(d_node), demand_base_m3s=as_f(d_base), demand_pattern=as_int(d_pat),
        emitter_coeff=emitter,
        tank_node=as_int([node_index[t] for t in tanks]),
        tank_init_level_m=as_f([t.init_level for t in tank_rows]),
        tank_min_level_m=as_f([t.min_level for t in tank_rows]),
        tank_max_level_m=as_f([t.max_level for t in tank_rows]),
        tank_diameter_m=as_f([t.diameter for t in tank_rows]),
        tank_min_volume_m3=as_f([t.min_vol or 0.0 for t in tank_rows]),
        tank_volume_curve=as_int([curve_ids[t.vol_curve_name] if t.vol_curve_name else -1 for t in tank_rows]),
        tank_can_overflow=np.asarray([bool(t.overflow) for t in tank_rows], dtype=bool),
        reservoir_node=as_int([node_index[r] for r in reservoirs]),
        reservoir_head_m=as_f([r.base_head for r in res_rows]),
        reservoir_pattern=as_int([_pattern_index(pattern_ids, r.head_pattern_name) for r in res_rows]),
        link_start=start, link_end=end, link_kind=kind, length_m=length, diameter_m=diameter,
        roughness=rough, minor_loss=minor, initial_status=status, initial_setting=setting,
        valve_curve=valve_curve,
        pump_link=as_int(pump_link), pump_curve=as_int(pump_curve), pump_power_kw=as_f(pump_power),
        pump_speed_pattern=as_int(pump_pat),
        curves=curves, patterns=patterns, time=time, options=options,
        m3s_per_cfs=m3s_per_cfs, flow_units=flow_units,
        controls=controls, rules=rules, source_path=source_path, source_sha256=sha,
        **_pipe_leakage(extras, link_ids, flow_units),
    )


def _pipe_leakage(extras, link_ids, flow_units: str) -> dict:
    """[LEAKAGE] rows (pipe, C1, C2 as written; the last row of a pipe wins, as in EPANET) -> SI arrays."""
    rows = getattr(extras, "leakage", ()) if extras is not None else ()
    if not rows:
        return {}
    index = {lid: k for k, lid in enumerate(link_ids)}
    c1, c2 = np.zeros(len(link_ids)), np.zeros(len(link_ids))
    for pipe, area, expansion in rows:
        c1[index[pipe]], c2[index[pipe]] = area, expansion
    us = flow_units in US_FLOW_UNITS
    return {"pipe_leak_area_m2": si_from_file(c1, us), "pipe_leak_expansion": si_from_file(c2, us)}


def load_network(path: str | Path, *, use_cache: bool = True) -> NetworkArrays:
    """Read an EPANET .inp file (through WNTR, with ParkTwin's workarounds) and compile it.

    A network is compiled once: the arrays are cached under $PARKTWIN_CACHE (default
    ~/.cache/parktwin), keyed by the file's bytes and the compiler's own source, so a later run of the
    same file skips WNTR and EPANET's reader entirely. PARKTWIN_CACHE=off disables the cache.
    """
    path = Path(path)
    cache_file = _cache_file(path) if use_cache else None
    if cache_file is not None and cache_file.exists():
        try:
            with cache_file.open("rb") as fh:
                net = pickle.load(fh)
            if isinstance(net, NetworkArrays):
                os.utime(cache_file)       # recently used: _trim_cache keeps it
                return replace(net, source_path=str(path))
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass   # a stale or truncated cache entry is rebuilt below
    # imported here: the reader brings in WNTR and EPANET's toolkit, which a cached network never needs
    from parktwin.hydraulics.inp_reader import read_inp_with_extras
    wn, extras = read_inp_with_extras(path)
    net = compile_network(wn, source_path=path, extras=extras)
    if cache_file is not None:
        _write_cache(cache_file, net)
    return net


_COMPILER_SOURCES = ("compile.py", "inp_reader.py", "inp_normalise.py", "inp_tokens.py", "inp_options.py",
                     "inp_sections.py", "control_units.py", "controls_parse.py", "rules_parse.py",
                     "units_tables.py", "network.py")


def _cache_file(path: Path) -> Path | None:
    root = os.environ.get("PARKTWIN_CACHE", "")
    if root.lower() in ("off", "0", "no"):
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "parktwin"
    try:
        digest = hashlib.sha256(path.read_bytes())
    except OSError:
        return None   # the reader reports the missing or unreadable file
    here = Path(__file__).parent
    for name in _COMPILER_SOURCES:
        source = here / name
        if source.exists():
            digest.update(source.read_bytes())
    return base / "networks" / f"{digest.hexdigest()}.pkl"


CACHE_MAX_FILES = 256      # compiled networks kept; the least recently used go first


def _write_cache(cache_file: Path, net: NetworkArrays) -> None:
    tmp_name = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_file.parent, suffix=".part", delete=False) as tmp:
            tmp_name = tmp.name
            pickle.dump(net, tmp, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp_name, cache_file)
        tmp_name = None
        _trim_cache(cache_file.parent)
    except OSError:
        return   # a read-only cache only costs speed
    finally:
        if tmp_name is not None:       # the dump failed: no half-written file stays behind
            Path(tmp_name).unlink(missing_ok=True)


def _trim_cache(folder: Path) -> None:
    """Keep the CACHE_MAX_FILES most recently used compiled networks (a server compiles every upload)."""
    files = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[CACHE_MAX_FILES:]:
        old.unlink(missing_ok=True)
