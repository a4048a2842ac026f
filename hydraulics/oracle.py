"""EPANET 2.3 as validation oracle: a thin ctypes wrapper of its thread-safe toolkit API.

The SWIG module ``epanet.toolkit`` cannot hand numpy buffers to the bulk getters
(EN_getnodevalues / EN_getlinkvalues), so the shared library shipped in the
``owa-epanet`` wheel is driven directly.  Importing this module never needs EPANET;
only constructing an :class:`EpanetProject` (or asking for the version) does.

Units: right after opening, the project is switched to CMS flow units and METERS
pressure units (EN_setflowunits / EN_PRESS_UNITS).  EPANET keeps everything internally
in ft and cfs and only changes its output factors, so every value read back is in
m, m³/s, and SI emitter coefficients are (m³/s)/m^ex whatever the file's units.
EPANET's conversion factors are rounded (CMSperCFS = 0.028317, CMHperCFS = 101.94 ...),
so a GPM or CMH file read back in CMS differs from an exact conversion by ~1e-5
relative; that is EPANET's own answer and what the oracle reports.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import tempfile
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_long, c_void_p
from pathlib import Path

import numpy as np

# Codes from epanet2_enums.h (EPANET 2.3).
EN_NODECOUNT, EN_LINKCOUNT = 0, 2
EN_JUNCTION, EN_RESERVOIR, EN_TANK = 0, 1, 2
EN_CVPIPE, EN_PIPE, EN_PUMP = 0, 1, 2
# node properties
EN_ELEVATION, EN_BASEDEMAND, EN_EMITTER = 0, 1, 3
EN_DEMAND, EN_HEAD, EN_PRESSURE = 9, 10, 11
EN_EMITTERFLOW, EN_LEAKAGEFLOW, EN_DEMANDFLOW, EN_FULLDEMAND = 29, 30, 31, 32
# link properties
EN_FLOW, EN_STATUS, EN_SETTING = 8, 11, 12
EN_LEAK_AREA, EN_LEAK_EXPAN = 26, 27      # pipe leakage (FAVAD), mm² per 100 length units
# time parameters
EN_DURATION, EN_HYDSTEP, EN_REPORTSTEP, EN_REPORTSTART, EN_HTIME = 0, 1, 5, 6, 11
# options
EN_ACCURACY, EN_EMITEXPON, EN_DEMANDMULT, EN_EMITBACKFLOW, EN_PRESS_UNITS = 1, 3, 4, 24, 25
EN_METERS = 2
EN_ITERATIONS, EN_RELATIVEERROR = 0, 1
# EN_initH flag: tens digit = re-initialise link flows, units digit = save hydraulics file
EN_NOSAVE, EN_SAVE, EN_INITFLOW, EN_SAVE_AND_INIT = 0, 1, 10, 11
EN_NO_REPORT = 0

FLOW_UNITS = ("CFS", "GPM", "MGD", "IMGD", "AFD", "LPS", "LPM", "MLD", "CMH", "CMD", "CMS")
EN_CMS = FLOW_UNITS.index("CMS")

_MAXID = 31
_MAXMSG = 255
_MAXFNAME = 259  # EPANET silently truncates longer paths

_P, _I, _D, _S = c_void_p, c_int, c_double, c_char_p
_PI, _PL, _PD = POINTER(c_int), POINTER(c_long), POINTER(c_double)
# argtypes -> functions of that signature; every EN_ function returns an int code.
_SIGNATURES = {
    (POINTER(c_void_p),): "EN_createproject",
    (_PI,): "EN_getversion",
    (_I, _S, _I): "EN_geterror",
    (_P,): "EN_deleteproject EN_close EN_openH EN_closeH EN_openQ EN_closeQ",
    (_P, _S, _S, _S): "EN_open",
    (_P, _I): "EN_setstatusreport EN_setflowunits EN_initH EN_initQ",
    (_P, _PI): "EN_getflowunits",
    (_P, _PL): "EN_runH EN_nextH EN_runQ EN_nextQ",
    (_P, _I, _PI): "EN_getcount EN_getnodetype EN_getlinktype",
    (_P, _I, _S): "EN_getnodeid EN_getlinkid",
    (_P, _I, _PI, _PI): "EN_getlinknodes",
    (_P, _I, _PD): "EN_getoption EN_getstatistic EN_getnodevalues EN_getlinkvalues",
    (_P, _I, _D): "EN_setoption",
    (_P, _I, _PL): "EN_gettimeparam",
    (_P, _I, c_long): "EN_settimeparam",
    (_P, _I, _I, _PD): "EN_getnodevalue EN_getlinkvalue",
    (_P, _I, _I, _D): "EN_setnodevalue EN_setlinkvalue",
}


class EpanetError(RuntimeError):
    """An EPANET toolkit call failed (code > 100), or the library is unavailable (code 0)."""

    def __init__(self, code: int, message: str, path: str | None = None, call: str = ""):
        self.code, self.message, self.path, self.call = code, message, path, call
        where = f" in {call}" if call else ""
        of = f" for '{path}'" if path else ""
        super().__init__(f"EPANET error {code}{where}{of}: {message}")


_lib = None


def _library_path() -> Path:
    override = os.environ.get("PARKTWIN_LIBEPANET")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("epanet")
    if spec is None or not spec.submodule_search_locations:
        raise EpanetError(0, "the owa-epanet package is not installed (pip install owa-epanet>=2.3)")
    for folder in spec.submodule_search_locations:
        for name in ("libepanet2.so", "libepanet2.dylib", "epanet2.dll"):
            if (Path(folder) / name).exists():
                return Path(folder) / name
    raise EpanetError(0, f"no EPANET shared library in {list(spec.submodule_search_locations)}")


def load_library() -> ctypes.CDLL:
    """The EPANET shared library with argtypes declared (loaded once per process)."""
    global _lib
    if _lib is None:
        path = _library_path()
        lib = ctypes.CDLL(str(path))
        for argtypes, names in _SIGNATURES.items():
            for name in names.split():
                try:
                    fn = getattr(lib, name)
                except AttributeError:
                    raise EpanetError(0, f"{path} lacks {name}: EPANET 2.3 or later is required") from None
                fn.argtypes, fn.restype = argtypes, c_int
        _lib = lib
    return _lib


def error_message(code: int) -> str:
    buf = ctypes.create_string_buffer(_MAXMSG + 1)
    if load_library().EN_geterror(code, buf, _MAXMSG) != 0:
        return f"unknown EPANET error code {code}"
    return buf.value.decode(errors="replace").strip()


def epanet_version() -> str:
    v = c_int()
    load_library().EN_getversion(byref(v))
    major, minor, patch = v.value // 10000, (v.value // 100) % 100, v.value % 100
    return f"{major}.{minor}.{patch}"


def _as_out(out: np.ndarray | None, n: int) -> np.ndarray:
    if out is None:
        return np.empty(n, dtype=np.float64)
    # EPANET writes n doubles blindly: a wrong buffer would corrupt memory.
    if out.dtype != np.float64 or not out.flags.c_contiguous or out.size != n:
        raise ValueError(f"out must be a C-contiguous float64 array of {n} values")
    return out


class EpanetProject:
    """One EPANET project opened from an .inp file, all values in SI (see module doc).

    Indices passed to methods are 0-based (EPANET's index minus one).
    """

    def __init__(self, inp_path, accuracy: float | None = 1e-5, si_units: bool = True):
        """si_units=False keeps the file's units: EPANET's wall reactions read their coefficients in the
        file's length unit, which switching a US file to CMS would silently change."""
        self.path = str(inp_path)
        self._si_units = si_units
        self._lib = load_library()
        self._ph = c_void_p()
        self._tmpdir = None
        self._hyd_open = False
        self.last_warning = 0
        self._check(self._lib.EN_createproject(byref(self._ph)), "EN_createproject")
        try:
            self._open(accuracy)
        except BaseException:
            self.close()
            raise

    def _open(self, accuracy):
        if not os.path.isfile(self.path):
            raise EpanetError(302, "input file does not exist", self.path, "EN_open")
        if len(os.fsencode(self.path)) > _MAXFNAME:
            raise EpanetError(302, f"path longer than {_MAXFNAME} bytes", self.path, "EN_open")
        self._tmpdir = tempfile.mkdtemp(prefix="parktwin-epanet-")
        self._rpt = os.path.join(self._tmpdir, "report.rpt")
        code = self._lib.EN_open(self._ph, os.fsencode(self.path), os.fsencode(self._rpt), b"")
        if code > 100:
            # Input errors (code 200) are itemised only in the report, flushed by EN_close.
            self._lib.EN_close(self._ph)
            detail = self._report_errors(exclude=code)
            msg = error_message(code) + (": " + "; ".join(detail) if detail else "")
            raise EpanetError(code, msg, self.path, "EN_open")
        lib, ph = self._lib, self._ph
        # Status lines would grow the report file on every solve of a long scenario loop.
        self._check(lib.EN_setstatusreport(ph, EN_NO_REPORT), "EN_setstatusreport")
        units = c_int()
        self._check(lib.EN_getflowunits(ph, byref(units)), "EN_getflowunits")
        self.file_flow_units = FLOW_UNITS[units.value]
        if self._si_units:
            self._check(lib.EN_setflowunits(ph, EN_CMS), "EN_setflowunits")
            # setflowunits keeps the file's pressure units (PSI for a US file): force metres.
            self._check(lib.EN_setoption(ph, EN_PRESS_UNITS, EN_METERS), "EN_setoption(PRESS_UNITS)")
        if accuracy is not None:
            self.set_option(EN_ACCURACY, accuracy)
        self.n_nodes = self._count(EN_NODECOUNT)
        self.n_links = self._count(EN_LINKCOUNT)
        buf, a, b = ctypes.create_string_buffer(_MAXID + 1), c_int(), c_int()
        # EPANET's IDs are bytes: decode them as the reader decodes the file (UTF-8, else Latin-1)
        from parktwin.hydraulics.inp_tokens import decode_inp
        with open(self.path, "rb") as f:
            encoding = decode_inp(f.read())[1]

        def get_id(fn, i):
            self._check(fn(ph, i, buf), fn.__name__)
            return buf.value.decode(encoding)

        def get_int(fn, i):
            self._check(fn(ph, i, byref(a)), fn.__name__)
            return a.value

        def get_ends(k):
            self._check(lib.EN_getlinknodes(ph, k, byref(a), byref(b)), "EN_getlinknodes")
            return a.value - 1, b.value - 1

        nodes, links = range(1, self.n_nodes + 1), range(1, self.n_links + 1)
        self.node_ids = [get_id(lib.EN_getnodeid, i) for i in nodes]
        self.link_ids = [get_id(lib.EN_getlinkid, k) for k in links]
        self.node_types = np.array([get_int(lib.EN_getnodetype, i) for i in nodes], dtype=np.int8)
        self.link_types = np.array([get_int(lib.EN_getlinktype, k) for k in links], dtype=np.int8)
        self.link_nodes = np.array([get_ends(k) for k in links], dtype=np.int64).reshape(-1, 2)
        self.elevation_m = self.get_node_values(EN_ELEVATION)

    def _report_errors(self, exclude: int) -> list[str]:
        try:
            with open(self._rpt, errors="replace") as f:
                lines = [ln.strip() for ln in f]
        except OSError:
            return []
        return [ln.rstrip(":") for ln in lines
                if ln.lower().startswith("error") and not ln.startswith(f"Error {exclude}:")][:10]

    def _check(self, code: int, call: str) -> int:
        if code > 100:
            raise EpanetError(code, error_message(code), self.path, call)
        return code

    def _count(self, what: int) -> int:
        n = c_int()
        self._check(self._lib.EN_getcount(self._ph, what, byref(n)), "EN_getcount")
        return n.value

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        if self._ph.value:
            if self._hyd_open:
                self._lib.EN_closeH(self._ph)
                self._hyd_open = False
            # EN_deleteproject also closes an open project; its code has nothing to add here.
            self._lib.EN_deleteproject(self._ph)
            self._ph = c_void_p()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ph", None) is not None:
            self.close()

    # -- options and times ---------------------------------------------------------------
    def get_option(self, option: int) -> float:
        v = c_double()
        self._check(self._lib.EN_getoption(self._ph, option, byref(v)), "EN_getoption")
        return v.value

    def set_option(self, option: int, value: float) -> None:
        self._check(self._lib.EN_setoption(self._ph, option, float(value)), f"EN_setoption({option})")

    def time_param(self, param: int) -> int:
        v = c_long()
        self._check(self._lib.EN_gettimeparam(self._ph, param, byref(v)), "EN_gettimeparam")
        return v.value

    def set_time_param(self, param: int, value: int) -> None:
        self._check(self._lib.EN_settimeparam(self._ph, param, int(value)), "EN_settimeparam")

    flow_units = property(lambda self: "CMS", doc="Units values are read in (always CMS).")
    duration_s = property(lambda self: self.time_param(EN_DURATION))
    report_step_s = property(lambda self: self.time_param(EN_REPORTSTEP))
    report_start_s = property(lambda self: self.time_param(EN_REPORTSTART))
    hydraulic_step_s = property(lambda self: self.time_param(EN_HYDSTEP))

    def statistic(self, kind: int = EN_ITERATIONS) -> float:
        v = c_double()
        self._check(self._lib.EN_getstatistic(self._ph, kind, byref(v)), "EN_getstatistic")
        return v.value

    # -- scenario inputs -----------------------------------------------------------------
    def set_emitter(self, node_index: int, coeff_si: float) -> None:
        """Emitter coefficient C of q = C p^ex, in (m³/s)/m^ex; 0 removes the emitter.

        EPANET converts C with the exponent current at call time, so set the exponent
        (set_emitter_exponent) first.  Ignored by EPANET for tanks and reservoirs.
        """
        self._check(self._lib.EN_setnodevalue(self._ph, node_index + 1, EN_EMITTER, float(coeff_si)),
                    "EN_setnodevalue(EMITTER)")

    def set_emitter_exponent(self, exponent: float) -> None:
        self.set_option(EN_EMITEXPON, exponent)

    def set_emitter_backflow(self, allowed: bool) -> None:
        """EPANET 2.3 lets emitters draw water in at negative pressure unless this is off."""
        self.set_option(EN_EMITBACKFLOW, 1.0 if allowed else 0.0)

    def set_demand_multiplier(self, m: float) -> None:
        self.set_option(EN_DEMANDMULT, m)

    def set_node_value(self, node_index: int, prop: int, value: float) -> None:
        self._check(self._lib.EN_setnodevalue(self._ph, node_index + 1, prop, float(value)),
                    f"EN_setnodevalue({prop})")

    def set_link_value(self, link_index: int, prop: int, value: float) -> None:
        self._check(self._lib.EN_setlinkvalue(self._ph, link_index + 1, prop, float(value)),
                    f"EN_setlinkvalue({prop})")

    # -- hydraulic stepping --------------------------------------------------------------
    def open_hydraulics(self) -> None:
        if not self._hyd_open:
            self._check(self._lib.EN_openH(self._ph), "EN_openH")
            self._hyd_open = True

    def close_hydraulics(self) -> None:
        if self._hyd_open:
            self._hyd_open = False
            self._check(self._lib.EN_closeH(self._ph), "EN_closeH")

    def init_hydraulics(self, save_flag: int = EN_NOSAVE) -> None:
        """EN_initH with EPANET's two-digit flag: 0 keeps the current link flows as the
        starting point (warm start), 10 re-initialises them; the units digit saves a
        hydraulics file.  Tanks, statuses, settings, emitter flows and the clock are
        reset whatever the flag."""
        self._check(self._lib.EN_initH(self._ph, save_flag), "EN_initH")

    def run_h(self) -> int:
        """Solve at the current time; returns the time (s).  EPANET warnings (codes 1-6,
        e.g. 6 = negative pressures) do not raise; the last one is in ``last_warning``."""
        t = c_long()
        code = self._check(self._lib.EN_runH(self._ph, byref(t)), "EN_runH")
        self.last_warning = code
        return t.value

    def next_h(self) -> int:
        dt = c_long()
        self._check(self._lib.EN_nextH(self._ph, byref(dt)), "EN_nextH")
        return dt.value

    def get_node_values(self, prop: int, out: np.ndarray | None = None) -> np.ndarray:
        out = _as_out(out, self.n_nodes)
        self._check(self._lib.EN_getnodevalues(self._ph, prop, out.ctypes.data_as(_PD)),
                    f"EN_getnodevalues({prop})")
        return out

    def get_link_values(self, prop: int, out: np.ndarray | None = None) -> np.ndarray:
        out = _as_out(out, self.n_links)
        self._check(self._lib.EN_getlinkvalues(self._ph, prop, out.ctypes.data_as(_PD)),
                    f"EN_getlinkvalues({prop})")
        return out

    # -- whole runs ----------------------------------------------------------------------
    _NODE_FIELDS = (("head_m", EN_HEAD), ("pressure_m", EN_PRESSURE),
                    ("demand_m3s", EN_DEMANDFLOW), ("total_outflow_m3s", EN_DEMAND),
                    ("emitter_flow_m3s", EN_EMITTERFLOW), ("leakage_flow_m3s", EN_LEAKAGEFLOW))
    _LINK_FIELDS = (("flow_m3s", EN_FLOW), ("status", EN_STATUS), ("setting", EN_SETTING))

    def _read_state(self) -> dict:
        state = {k: self.get_node_values(p) for k, p in self._NODE_FIELDS}
        state.update({k: self.get_link_values(p) for k, p in self._LINK_FIELDS})
        state["status"] = state["status"].astype(np.int8)
        return state

    def solve_snapshot(self) -> dict:
        """One solve at t = 0 from freshly initialised flows.

        Keys: head_m, pressure_m, demand_m3s (consumer demand delivered),
        total_outflow_m3s (EN_DEMAND: demand + emitter + pipe leakage),
        emitter_flow_m3s, leakage_flow_m3s [N]; flow_m3s, status (0 closed, 1 open,
        2 active valve), setting [L] (pipes: roughness, mm for D-W; PRV/PSV/PBV: m;
        FCV: m³/s; pumps: speed); time_s, warning (EN_runH code), iterations.
        """
        opened_here = not self._hyd_open
        self.open_hydraulics()
        try:
            self.init_hydraulics(EN_INITFLOW)
            t = self.run_h()
            out = self._read_state()
            out.update(time_s=t, warning=self.last_warning, iterations=int(self.statistic()))
        finally:
            if opened_here:
                self.close_hydraulics()
        return out

    def run_extended(self, max_time_s: int | None = None) -> dict:
        """Extended-period run, sampled at reporting times up to max_time_s inclusive.

        Returns time_s (T,), the snapshot's per-element arrays stacked as [T, N] / [T, L],
        warning (T,), iterations (T,) and step_times_s: the time of every hydraulic solve.
        """
        report_start, report_step = self.report_start_s, self.report_step_s
        end = self.duration_s if max_time_s is None else min(self.duration_s, int(max_time_s))
        frames, times, warns, steps, trials = [], [], [], [], []
        opened_here = not self._hyd_open
        self.open_hydraulics()
        try:
            self.init_hydraulics(EN_INITFLOW)
            while True:
                t = self.run_h()
                steps.append(t)
                if t >= report_start and (t - report_start) % report_step == 0:
                    frames.append(self._read_state())
                    times.append(t)
                    warns.append(self.last_warning)
                    trials.append(int(self.statistic()))
                dt = self.next_h()
                if dt <= 0 or t + dt > end:
                    break
        finally:
            if opened_here:
                self.close_hydraulics()
        out = {k: np.stack([f[k] for f in frames]) for k in frames[0]} if frames else {}
        out.update(time_s=np.array(times, dtype=np.int64), warning=np.array(warns, dtype=np.int64),
                   iterations=np.array(trials, dtype=np.int64), step_times_s=np.array(steps, dtype=np.int64))
        return out


def source_connected_nodes(project_or_arrays, link_status) -> np.ndarray:
    """Bool mask [N] of nodes joined to a tank or reservoir through links with status > 0.

    ``project_or_arrays`` is an EpanetProject (or anything with ``node_types`` and
    ``link_nodes``) or a tuple ``(node_types [N], link_nodes [L, 2])``.  A 2-D
    ``link_status`` [T, L] gives a [T, N] mask.  EPANET's head at other nodes is arbitrary.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if isinstance(project_or_arrays, tuple):
        node_types, link_nodes = project_or_arrays
    else:
        node_types, link_nodes = project_or_arrays.node_types, project_or_arrays.link_nodes
    node_types = np.asarray(node_types)
    link_nodes = np.asarray(link_nodes, dtype=np.int64).reshape(-1, 2)
    status = np.asarray(link_status)
    if status.ndim == 2:
        return np.stack([source_connected_nodes((node_types, link_nodes), s) for s in status])
    n = node_types.size
    ends = link_nodes[status > 0]
    graph = coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    source_labels = np.unique(label[node_types != EN_JUNCTION])
    return np.isin(label, source_labels)
