"""Park Monte-Carlo study: `run_park_study` on the example park against EPANET 2.3's toolkit, same scenarios.

ParkTwin is timed as a user calls it: the whole `twin.park_montecarlo.run_park_study` (draws, allocation,
the three networks, balances, indicators, HDF5 file). EPANET solves exactly the same hydraulic problems
the study solves, one in-memory project per network opened once (hydraulics.oracle.EpanetProject, CMS and
metres): per scenario and network the enterprise demands of the scenario's allocation at the enterprise
junctions (every other junction's demand 0), the city's head on the municipal reservoir, the scenario's
leaks as emitters (exponent 0.5, coefficient Cd·A·sqrt(2g), backflow off), EN_initH(0) (warm start),
EN_runH at t = 0 (snapshot) or EN_runH/EN_nextH over the day with one shift pattern per enterprise
junction (24 h), pressures read with the bulk getter. The allocation that gives EPANET its demands is
computed BEFORE EPANET's timer starts: this favours EPANET (ParkTwin's time includes its allocation).
Repeats are interleaved (ParkTwin, EPANET, ParkTwin, ...) after an untimed warm-up of both.

    python -m bench.park_study_benchmark --scenarios 2000 --repeats 3 --mode both
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import resource
import sys
import tempfile
import time
from collections import defaultdict
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_void_p
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or a module

from bench.toolkit_loop import leak_emitter_coefficient, machine_description  # noqa: E402
from parktwin.hydraulics import oracle  # noqa: E402
from parktwin.hydraulics.solver import SolverOptions  # noqa: E402
from parktwin.twin import balance as bal  # noqa: E402
from parktwin.twin.coupled import enterprise_loads  # noqa: E402
from parktwin.twin.park import load_park  # noqa: E402
from parktwin.twin.park_hydraulics import SECONDS_PER_DAY, SECONDS_PER_HOUR, shift_profile  # noqa: E402
from parktwin.twin.park_montecarlo import ParkStudy, draw, run_park_study, scenario_park  # noqa: E402
from parktwin.twin.park_schema import NETWORKS  # noqa: E402

EXAMPLE_PARK = Path(__file__).resolve().parents[1] / "twin" / "example_park"
MODES = {"snapshot": 0, "day": SECONDS_PER_DAY}
VALIDATION_TOLERANCE_M = 1e-3
# EPANET time parameters (epanet2_enums.h) the oracle does not name.
EN_PATTERNSTEP, EN_PATTERNSTART, EN_STARTTIME = 3, 4, 10

# The oracle declares only what it uses; the demand and pattern calls the park needs are declared here,
# on the same loaded library, so that hydraulics/oracle.py stays as it is.
_EXTRA_SIGNATURES = {
    "EN_addpattern": (c_void_p, c_char_p),
    "EN_getpatternindex": (c_void_p, c_char_p, POINTER(c_int)),
    "EN_setpattern": (c_void_p, c_int, POINTER(c_double), c_int),
    "EN_setdemandpattern": (c_void_p, c_int, c_int, c_int),
    "EN_getnumdemands": (c_void_p, c_int, POINTER(c_int)),
    "EN_setbasedemand": (c_void_p, c_int, c_int, c_double),
}


def _lib() -> ctypes.CDLL:
    lib = oracle.load_library()
    for name, argtypes in _EXTRA_SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, c_int
    return lib


def _call(project: oracle.EpanetProject, name: str, *args) -> None:
    # project._ph is the oracle's project handle; the extra calls need it and check codes the same way.
    project._check(getattr(project._lib, name)(project._ph, *args), name)


# ------------------------------------------------------------------------------------ the study's inputs
@dataclass(frozen=True)
class NetworkInputs:
    """What one network gets per scenario, SI: enterprise junctions, their demands [S, J] (m³/s, the
    discharge network's negative), their 24 hourly clock factors [J, 24], and the leaks per scenario."""
    junctions: tuple[str, ...]
    demand_m3s: np.ndarray
    profile: np.ndarray
    leaks: tuple[dict, ...]          # per scenario: junction id -> leak area m²
    reservoir_head: tuple | None     # (reservoir id, head m) or None


def study_inputs(park, study: ParkStudy, draws=None, rows=None) -> dict[str, NetworkInputs]:
    """The hydraulic inputs of `study`'s scenarios `rows` (all by default), obtained as the study does:
    the scenario's park, its allocation, `enterprise_loads`, the leak rows drawn by the study."""
    draws = draw(park, study) if draws is None else draws
    rows = range(study.scenarios) if rows is None else list(rows)
    loads = [enterprise_loads(p, bal.allocate(p)) for p in (scenario_park(park, draws, int(s)) for s in rows)]
    out = {}
    for net_name in NETWORKS:
        junctions = tuple(loads[0][net_name])
        demand = np.array([[ld[net_name][j].mean_m3s for j in junctions] for ld in loads]).reshape(len(loads), -1)
        # As the study's daily network: one pattern per junction, its enterprises' shift profile, fixed
        # before the draws (combine_loads' flow-weighted profile equals it up to rounding).
        hours = {e.junctions[net_name]: e.shift_hours for e in park.enterprises}
        if any(e.shift_hours != hours[e.junctions[net_name]] for e in park.enterprises):
            raise ValueError(f"{net_name}: a junction serves several shift lengths (the study refuses it)")
        profile = np.array([shift_profile(hours[j]) for j in junctions]).reshape(len(junctions), 24)
        leaks = [defaultdict(float) for _ in loads]
        batch = draws.leaks.get(net_name)
        if batch is not None:
            position = {sid: i for i, sid in enumerate(batch.ids)}
            wanted = {int(s): k for k, s in enumerate(rows)}
            t = batch.perturbations
            for sid, element, attribute, value in zip(t.scenario, t.element, t.attribute, t.value):
                if attribute != "leak_area_m2":
                    raise ValueError(f"{net_name}: unexpected perturbation attribute {attribute!r}")
                k = wanted.get(position[sid])
                if k is not None:
                    leaks[k][element] += float(value)     # two leaks at one junction: areas add (the solver's sum)
        head = None
        if net_name == "supply" and park.city.fresh_reservoir is not None:
            head = (park.city.fresh_reservoir, float(park.city.fresh_head_m))
        out[net_name] = NetworkInputs(junctions, demand, profile, tuple(dict(d) for d in leaks), head)
    return out


# ------------------------------------------------------------------------------------ EPANET
class EpanetNetwork:
    """One network's EPANET project set up once for a mode: background demands 0, demand multiplier 1,
    the city's head, emitters of exponent 0.5 without backflow, and for 24 h one shift pattern per
    enterprise junction and the park's clock (24 h, hourly steps and reports)."""

    def __init__(self, path, inputs: NetworkInputs, duration_s: int, accuracy: float | None):
        _lib()
        self.p = p = oracle.EpanetProject(path, accuracy=accuracy)
        self.duration_s = duration_s
        self.steps = 0                           # hydraulic solves, for the report
        self.nj = int(np.count_nonzero(p.node_types == oracle.EN_JUNCTION))
        # EPANET numbers junctions before tanks and reservoirs: pressures[:nj] are the junctions'.
        assert np.all(p.node_types[:self.nj] == oracle.EN_JUNCTION)
        self.junction_ids = p.node_ids[:self.nj]
        index = {nid: i for i, nid in enumerate(p.node_ids)}
        n = c_int()
        for i in range(self.nj):                 # the park switches every background demand off
            _call(p, "EN_getnumdemands", i + 1, byref(n))
            for d in range(1, n.value + 1):
                _call(p, "EN_setbasedemand", i + 1, d, 0.0)
        p.set_demand_multiplier(1.0)             # base demand = the enterprise flow itself
        if inputs.reservoir_head is not None:
            # A reservoir's EN_ELEVATION is its head (no head pattern on the municipal reservoir).
            p.set_node_value(index[inputs.reservoir_head[0]], oracle.EN_ELEVATION, inputs.reservoir_head[1])
        p.set_emitter_exponent(0.5)              # before any coefficient: EPANET converts with it
        p.set_emitter_backflow(False)
        self.base_emitter = p.get_node_values(oracle.EN_EMITTER)
        self.ent_nodes = [index[j] for j in inputs.junctions]
        for j, node in zip(inputs.junctions, self.ent_nodes):
            _call(p, "EN_getnumdemands", node + 1, byref(n))
            if n.value == 0:
                raise ValueError(f"{path}: enterprise junction {j!r} has no demand category")
        if duration_s:
            self._daily_clock(inputs)
        else:
            for node in self.ent_nodes:          # snapshot: the daily mean, no pattern factor
                _call(p, "EN_setdemandpattern", node + 1, 1, 0)
        p.open_hydraulics()

    def _daily_clock(self, inputs: NetworkInputs) -> None:
        p = self.p
        got = {k: p.time_param(k) for k in (EN_PATTERNSTEP, EN_PATTERNSTART, EN_STARTTIME)}
        if got != {EN_PATTERNSTEP: SECONDS_PER_HOUR, EN_PATTERNSTART: 0, EN_STARTTIME: 0}:
            # The 24 hourly clock factors are the pattern only with a 1 h step from midnight.
            raise ValueError(f"{p.path}: pattern step/start and clock start must be 1 h/0/0, got {got}")
        for (param, value) in ((oracle.EN_DURATION, SECONDS_PER_DAY), (oracle.EN_HYDSTEP, SECONDS_PER_HOUR),
                               (oracle.EN_REPORTSTEP, SECONDS_PER_HOUR), (oracle.EN_REPORTSTART, 0)):
            p.set_time_param(param, value)
        k = c_int()
        for j, node, profile in zip(inputs.junctions, self.ent_nodes, inputs.profile):
            pid = f"shift-{j}".encode()
            _call(p, "EN_addpattern", pid)
            _call(p, "EN_getpatternindex", pid, byref(k))
            values = np.ascontiguousarray(profile, dtype=np.float64)
            _call(p, "EN_setpattern", k.value, values.ctypes.data_as(POINTER(c_double)), len(values))
            _call(p, "EN_setdemandpattern", node + 1, 1, k.value)

    def bind(self, inputs: NetworkInputs):
        """Per scenario: [(node, demand m³/s)], [(node, emitter coefficient)] as plain lists (untimed)."""
        demands = [list(zip(self.ent_nodes, row)) for row in inputs.demand_m3s.tolist()]
        index = {nid: i for i, nid in enumerate(self.p.node_ids)}
        leaks = []
        for scenario in inputs.leaks:
            nodes = [index[j] for j in scenario]
            coeff = leak_emitter_coefficient(list(scenario.values())).tolist() if scenario else []
            leaks.append([(i, self.base_emitter[i] + c) for i, c in zip(nodes, coeff)])
        return demands, leaks

    def solve(self, demands, leaks, out: np.ndarray) -> int:
        """Every scenario in order; out [S, nj] gets the pressures (24 h: the day's minimum at the report
        times, as the study). Returns how many scenarios ended with an EPANET warning."""
        p, nj = self.p, self.nj
        buf = np.empty(p.n_nodes)
        warned = 0
        steps = 0
        setdemand = p._lib.EN_setbasedemand
        for s in range(len(demands)):
            for node, q in demands[s]:
                # First demand category (the one the study loads), in CMS as the oracle opened it.
                p._check(setdemand(p._ph, node + 1, 1, q), "EN_setbasedemand")
            for node, c in leaks[s]:
                p.set_emitter(node, c)
            p.init_hydraulics(oracle.EN_NOSAVE)
            warn = 0
            if not self.duration_s:
                p.run_h()
                steps += 1
                p.get_node_values(oracle.EN_PRESSURE, buf)
                out[s] = buf[:nj]
                warn = p.last_warning
            else:
                row = out[s]
                row[:] = np.inf
                while True:
                    t = p.run_h()
                    steps += 1
                    warn = warn or p.last_warning
                    p.get_node_values(oracle.EN_PRESSURE, buf)       # read at every step, as a user would
                    if t % SECONDS_PER_HOUR == 0:                    # the study's minimum is over report times
                        np.minimum(row, buf[:nj], out=row)
                    if p.next_h() <= 0:
                        break
            warned += warn != 0
            for node, _ in leaks[s]:
                p.set_emitter(node, self.base_emitter[node])
        self.steps += steps
        return warned

    def close(self) -> None:
        self.p.close()


class EpanetPark:
    """The park's three networks in EPANET for one mode."""

    def __init__(self, park, inputs: dict[str, NetworkInputs], duration_s: int, accuracy: float | None):
        self.nets = {}
        try:
            for n in NETWORKS:
                self.nets[n] = EpanetNetwork(park.network_path(n), inputs[n], duration_s, accuracy)
        except BaseException:
            self.close()
            raise

    def run(self, inputs: dict[str, NetworkInputs]) -> tuple[float, dict, int]:
        """(seconds, network -> pressures [S, nj], scenarios with warnings); binding is untimed."""
        bound = {n: net.bind(inputs[n]) for n, net in self.nets.items()}
        out = {n: np.empty((len(inputs[n].demand_m3s), net.nj)) for n, net in self.nets.items()}
        t0 = time.perf_counter()
        warned = sum(net.solve(*bound[n], out[n]) for n, net in self.nets.items())
        return time.perf_counter() - t0, out, warned

    def close(self) -> None:
        for net in self.nets.values():
            net.close()


# ------------------------------------------------------------------------------------ validation
def validate(park, duration_s: int, scenarios=(0, 1, 2, 3, 4), seed: int = 0, accuracy: float | None = 1e-5,
             n_drawn: int | None = None) -> dict:
    """EPANET's pressures (snapshot; 24 h: the day's minimum per junction) against ParkTwin's `run_park`
    of the same scenarios (scenario park + its leaks as JunctionLeak), both at `accuracy` (None: the
    files'). Returns network -> max |difference| over junctions and scenarios (m)."""
    from parktwin.twin.coupled import run_park
    from parktwin.twin.whatif import JunctionLeak, apply
    study = ParkStudy(scenarios=n_drawn or max(scenarios) + 1, seed=seed, duration_s=duration_s)
    draws = draw(park, study)
    inputs = study_inputs(park, study, draws, scenarios)
    ep = EpanetPark(park, inputs, duration_s, accuracy)
    try:
        _, pressures, _ = ep.run(inputs)
        ids = {n: net.junction_ids for n, net in ep.nets.items()}
    finally:
        ep.close()
    worst = dict.fromkeys(NETWORKS, 0.0)
    for k, s in enumerate(scenarios):
        ops = [JunctionLeak(n, j, a) for n in NETWORKS for j, a in inputs[n].leaks[k].items()]
        res = run_park(apply(scenario_park(park, draws, s), ops), duration_s=duration_s,
                       options=SolverOptions(accuracy=accuracy))
        for n in NETWORKS:
            h = res.hydraulics[n]
            nj = h.net.n_junctions
            ours = dict(zip(h.net.node_ids[:nj], np.min(h.pressure_m[:, :nj], axis=0)))
            diff = np.abs(np.array([ours[j] for j in ids[n]]) - pressures[n][k])
            worst[n] = max(worst[n], float(np.max(diff)))     # NaN (a failure) propagates: reported, not hidden
    return worst


# ------------------------------------------------------------------------------------ timing
def _time_parktwin(park, study: ParkStudy, options: SolverOptions, folder: Path, tag: str) -> float:
    path = folder / f"study-{tag}.h5"
    t0 = time.perf_counter()
    run_park_study(park, study, path, options=options)
    seconds = time.perf_counter() - t0
    path.unlink()
    return seconds


def benchmark(park, n: int, repeats: int, duration_s: int, seed: int, accuracy: float | None) -> dict:
    """Interleaved repeats of both sides on the same study; seconds per repeat for each."""
    study = ParkStudy(scenarios=n, seed=seed, duration_s=duration_s)
    options = SolverOptions(accuracy=accuracy)
    t0 = time.perf_counter()
    inputs = study_inputs(park, study)                       # EPANET's demands: before its timer
    prep = time.perf_counter() - t0
    ep = EpanetPark(park, inputs, duration_s, accuracy)
    times = {"parktwin": [], "epanet": []}
    try:
        with tempfile.TemporaryDirectory(prefix="park-study-bench-") as tmp:
            # Untimed warm-up: numba's compiled kernels load on first use; EPANET's first solve allocates.
            warm = ParkStudy(scenarios=min(n, 20), seed=seed + 1, duration_s=duration_s)
            _time_parktwin(park, warm, options, Path(tmp), "warm-up")
            warm_inputs = study_inputs(park, warm)
            ep.run(warm_inputs)
            for net in ep.nets.values():
                net.steps = 0
            for r in range(repeats):
                times["parktwin"].append(_time_parktwin(park, study, options, Path(tmp), str(r)))
                seconds, _, warned = ep.run(inputs)
                times["epanet"].append(seconds)
    finally:
        ep.close()
    steps = sum(net.steps for net in ep.nets.values()) / (repeats * n)
    return {"times": times, "warned": warned, "n": n, "prep": prep, "steps": steps}


def _report(mode: str, result: dict, park_name: str = "park", backend: str = "numba") -> None:
    n = result["n"]
    print(f"\n== {mode}: {n} scenarios x 3 networks, {len(result['times']['parktwin'])} interleaved repeats")
    rates = {}
    for side, label in (("parktwin", "ParkTwin run_park_study"), ("epanet", "EPANET toolkit loop")):
        t = np.array(result["times"][side])
        rates[side] = (n / t.mean(), n / t.min())
        print(f"{label:<24}: mean {t.mean():8.3f} s  best {t.min():8.3f} s  "
              f"{rates[side][0]:9,.0f} scen/s (mean)  {rates[side][1]:9,.0f} scen/s (best)")
    print(f"{'ratio ParkTwin/EPANET':<24}: {rates['parktwin'][0] / rates['epanet'][0]:.2f}x (means)  "
          f"{rates['parktwin'][1] / rates['epanet'][1]:.2f}x (bests)")
    prep = result["prep"]
    print(f"{'EPANET inputs (untimed)':<24}: {prep:8.3f} s for draws + allocation + loads; were it timed: "
          f"{n / (np.mean(result['times']['epanet']) + prep):,.0f} scen/s (mean), ratio "
          f"{rates['parktwin'][0] / (n / (np.mean(result['times']['epanet']) + prep)):.2f}x")
    print(f"{'EPANET hydraulic steps':<24}: {result['steps']:.1f} per scenario (3 networks, timed repeats)")
    if result["warned"]:
        print(f"EPANET warnings         : {result['warned']} scenario-network solves ended with a warning")
    # Peak resident memory of this process so far (both sides run in it), for the row.
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    t = {side: np.array(result["times"][side]) for side in ("parktwin", "epanet")}
    print(f"{'peak memory':<24}: {peak_gib:.2f} GiB (this process, both sides)")
    print(f"{'row':<24}: | {dt.date.today().isoformat()} | {machine_description()} | {park_name} (3 networks),"
          f" {mode} | {n:,} x 3 networks | {backend}"
          f" | {rates['epanet'][0]:,.0f} scenarios/s ({', '.join(f'{x:.3f}' for x in t['epanet'])} s)"
          f" | {rates['parktwin'][0]:,.0f} scenarios/s ({', '.join(f'{x:.3f}' for x in t['parktwin'])} s)"
          f" | **{rates['parktwin'][0] / rates['epanet'][0]:.2f}x** | {peak_gib:.2f} GiB |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--park", default=str(EXAMPLE_PARK))
    ap.add_argument("--scenarios", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", choices=("snapshot", "day", "both"), default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accuracy", type=float, default=None,
                    help="ACCURACY for both sides while timing (default: the files' own)")
    ap.add_argument("--validate-scenarios", type=int, default=5, help="scenarios checked before timing")
    args = ap.parse_args(argv)
    if args.scenarios < 1 or args.repeats < 1 or args.validate_scenarios < 1:
        ap.error("--scenarios, --repeats and --validate-scenarios must be >= 1")
    args.validate_scenarios = min(args.validate_scenarios, args.scenarios)

    from parktwin.kernels.registry import get_backend
    park = load_park(args.park)
    print(f"park           : {park.name} ({args.park})")
    print(f"EPANET         : {oracle.epanet_version()} (ctypes, one in-memory project per network)")
    print(f"ParkTwin       : backend {get_backend('auto').name}, ACCURACY "
          f"{'the files' if args.accuracy is None else f'{args.accuracy:g}'} (both sides)")
    print(f"machine        : {machine_description()}")
    print(f"date           : {dt.date.today().isoformat()}")
    print("note           : EPANET's allocation is computed before its timer (favours EPANET); ParkTwin's "
          "time is the whole run_park_study with its HDF5 file")
    modes = ("snapshot", "day") if args.mode == "both" else (args.mode,)
    rows = tuple(range(args.validate_scenarios))
    failed = False
    for mode in modes:
        for acc in dict.fromkeys((1e-5, args.accuracy)):    # tight check, then the timed accuracy
            worst = validate(park, MODES[mode], rows, args.seed, acc, n_drawn=args.scenarios)
            label = "the files'" if acc is None else f"{acc:g}"
            print(f"validation     : {mode}, {len(rows)} scenarios, ACCURACY {label}: max |dp| " +
                  ", ".join(f"{n} {v:.2e} m" for n, v in worst.items()))
            if acc == 1e-5 and not max(worst.values()) <= VALIDATION_TOLERANCE_M:
                failed = True
    if failed:
        print(f"validation FAILED (tolerance {VALIDATION_TOLERANCE_M:g} m at ACCURACY 1e-5): not timing")
        return 1
    for mode in modes:
        _report(mode, benchmark(park, args.scenarios, args.repeats, MODES[mode], args.seed, args.accuracy),
                park.name, get_backend("auto").name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
