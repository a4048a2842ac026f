"""Monte-Carlo over the park's operations: leaks on its networks, demand uncertainty per enterprise, an
outage of the reclaimed-water plant and a varying city reclaimed offer, solved through the scenario engine.

Each scenario is the park's 24 h run (`duration_s=86400`, the default, as `run_park`) or its snapshot
(daily means, `duration_s=0`): its allocation, the three networks solved as one batch per
network (`HydraulicSolver` over `BatchInputs`, the leaks drawn by the scenario engine's samplers,
`scenarios.samplers.sample_inputs`, a chunk at a time), the balance with the leaks as losses, and the indicators. Over 24 h a
junction's pressure is its minimum over the day, so the shifts' peak hours decide the service. Per scenario the file keeps the draws, the indicators and the service figures; per
junction of the supply and reclaimed networks, how many scenarios put its pressure below the service
threshold (the risk map).

Questions it answers: the probability that the reclaimed supply falls short of the reclaimable needs
(so fresh water makes up), that any enterprise's supply or reclaimed junction drops below its service
pressure, that the reuse and substitution targets are met; and where in the networks service is at risk.

Sampling goes chunk by chunk, never the whole study at once: scenario i's draws depend on the study and
i alone (the park's own numbers from `scenarios.unit_samples.sample_unit` rows, the leaks from
`scenarios.samplers.sample_inputs` / `SampledBatch`), so a chunk holds only its own numbers and the results
are the same whatever the chunk size.

The file is written chunk by chunk with a `done` flag per chunk and `complete = False` until the end;
`resume=True` re-draws the same scenarios from the seed, skips the chunks already done and continues.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from parktwin.hydraulics.compile import load_network
from parktwin.hydraulics.extended import StepVolumes, report_times, run_extended
from parktwin.hydraulics.results import ResultSet
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
from parktwin.scenarios.samplers import SampledBatch, sample_batch, sample_inputs
from parktwin.scenarios.spec import ScenarioSpec, spec_from_options
from parktwin.scenarios.store import open_to_resume
from parktwin.scenarios.unit_samples import sample_unit
from parktwin.twin import balance as bal
from parktwin.twin.coupled import DURATIONS_S, MIN_PRESSURE_M, enterprise_loads, indicator_targets, network_changes
from parktwin.twin.park_batch import BatchAllocation, ParkArrays, allocate_batch, headline_indicators
from parktwin.twin.park_hydraulics import (SECONDS_PER_DAY, JunctionLoad, daily_network, demand_inputs, shift_profile,
                                  with_perturbations)
from parktwin.twin.park_schema import NETWORKS, Park

FORMAT = "parktwin-park-montecarlo/1"
QUANTILES = (0.05, 0.5, 0.95)
SHORTFALL_TOLERANCE_M3D = 1e-6
# Service pressure means something where enterprises draw water; a sewer main's pressure is not a
# service level (the discharge network's outfall sits near 0 m by design).
SERVICE_NETWORKS = ("supply", "reclaimed")


@dataclass(frozen=True)
class ParkStudy:
    """A Monte-Carlo study of a park; every field has a unit or is a probability."""
    scenarios: int = 1000
    seed: int = 0
    leaks_per_network: dict = field(default_factory=lambda: {"supply": 1, "reclaimed": 1})
    leak_median_area_m2: float = 1e-3          # log-normal area of each leak
    leak_sigma: float = 1.0
    demand_factor_range: tuple[float, float] = (0.9, 1.1)   # each enterprise's needs times U(lo, hi)
    reclaimed_outage_probability: float = 0.05              # the park's reclaimed-water plant out for the day
    city_offer_factor_range: tuple[float, float] = (1.0, 1.0)  # the city's reclaimed offer times U(lo, hi)
    min_pressure_m: float = MIN_PRESSURE_M
    duration_s: int = SECONDS_PER_DAY                        # 86400: the 24 h run; 0: a snapshot of daily means
    chunk_size: int = 500

    def validate(self) -> None:
        def bad(field_name: str, reason: str):
            raise ValueError(f"ParkStudy.{field_name}: {reason}")
        if not isinstance(self.scenarios, int) or self.scenarios < 1:
            bad("scenarios", f"must be an integer >= 1, got {self.scenarios!r}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            bad("chunk_size", f"must be an integer >= 1, got {self.chunk_size!r}")
        for net_name, count in self.leaks_per_network.items():
            if net_name not in NETWORKS:
                bad("leaks_per_network", f"unknown network {net_name!r} (valid: {', '.join(NETWORKS)})")
            if not isinstance(count, int) or count < 0:
                bad(f"leaks_per_network.{net_name}", f"must be an integer >= 0, got {count!r}")
        if not self.leak_median_area_m2 > 0:
            bad("leak_median_area_m2", f"must be > 0, got {self.leak_median_area_m2!r}")
        if not self.leak_sigma >= 0:
            bad("leak_sigma", f"must be >= 0, got {self.leak_sigma!r}")
        for name in ("demand_factor_range", "city_offer_factor_range"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                bad(name, f"must be 0 <= low <= high, got ({lo!r}, {hi!r})")
        if self.duration_s not in DURATIONS_S:
            bad("duration_s", f"must be 0 (snapshot) or 86400 (24 h), got {self.duration_s!r}")
        if not 0.0 <= self.reclaimed_outage_probability <= 1.0:
            bad("reclaimed_outage_probability", f"must be in [0, 1], got {self.reclaimed_outage_probability!r}")


@dataclass(frozen=True)
class ParkDraws:
    """What the study drew for scenarios start .. start + len - 1; row s of each array is scenario start + s."""
    demand_factor: np.ndarray       # [S, E]
    reclaimed_outage: np.ndarray    # [S] bool
    city_offer_factor: np.ndarray   # [S]
    leaks: dict                     # network -> ScenarioBatch of the scenario engine (leak rows)
    start: int = 0


# The park's own numbers (demand factors, outage, city offer) come from the `mc` unit sample of this seed,
# apart from the leaks' specifications (seeded study.seed * 3 + k).
_PARK_STREAM = 0x9A4C


def _park_seed(study: ParkStudy) -> int:
    return int(np.random.SeedSequence([study.seed, _PARK_STREAM]).generate_state(1, np.uint64)[0])


def park_numbers(park: Park, study: ParkStudy, start: int = 0, stop: int | None = None):
    """(demand factor [n, E], reclaimed outage [n], city offer factor [n]) of scenarios [start, stop):
    rows of one `mc` unit sample with E + 2 columns, drawn without the other rows."""
    e = len(park.enterprises)
    unit = sample_unit("mc", study.scenarios, e + 2, _park_seed(study), start, stop)
    (dlo, dhi), (olo, ohi) = study.demand_factor_range, study.city_offer_factor_range
    return (dlo + (dhi - dlo) * unit[:, :e], unit[:, e] < study.reclaimed_outage_probability,
            olo + (ohi - olo) * unit[:, e + 1])


def leak_specs(study: ParkStudy, nets: dict) -> dict[str, ScenarioSpec]:
    """network -> the scenario engine's specification of its leaks (validated on nets[network]), for the
    networks with leaks."""
    specs = {}
    for k, net_name in enumerate(NETWORKS):
        count = study.leaks_per_network.get(net_name, 0)
        if count == 0:
            continue
        spec = spec_from_options(scenarios=study.scenarios, seed=study.seed * len(NETWORKS) + k, leaks=count,
                                 leak_median_m2=study.leak_median_area_m2, leak_sigma=study.leak_sigma)
        spec.validate(nets[net_name])
        specs[net_name] = spec
    return specs


def draw(park: Park, study: ParkStudy, start: int = 0, stop: int | None = None, *,
         nets: dict | None = None) -> ParkDraws:
    """The draws of scenarios [start, stop) (all by default), sampled without the others: the same seed
    gives the same draws for a scenario whichever range asks for it (resume and chunking rely on it).
    `nets`: the park's networks already loaded (network -> NetworkArrays), else they are loaded here."""
    start, stop, _ = slice(start, stop).indices(study.scenarios)
    stop = max(start, stop)
    if nets is None:
        nets = {n: load_network(park.network_path(n)) for n in NETWORKS if study.leaks_per_network.get(n, 0)}
    demand, outage, offer = park_numbers(park, study, start, stop)
    leaks = {n: sample_batch(spec, nets[n], start, stop) for n, spec in leak_specs(study, nets).items()}
    return ParkDraws(demand, outage, offer, leaks, start)


def scenario_park(park: Park, draws: ParkDraws, s: int) -> Park:
    """The park of row s of the draws (scenario draws.start + s): needs scaled, the reclaimed plant out or
    not, the city offer scaled."""
    ents = tuple(replace(e, needs=replace(e.needs, **{f: getattr(e.needs, f) * draws.demand_factor[s, i]
                                                      for f in e.needs.__dataclass_fields__}))
                 for i, e in enumerate(park.enterprises))
    plant = replace(park.reclaimed_plant, capacity_m3d=0.0) if draws.reclaimed_outage[s] else park.reclaimed_plant
    city = replace(park.city, reclaimed_offer_m3d=park.city.reclaimed_offer_m3d * draws.city_offer_factor[s])
    return replace(park, enterprises=ents, reclaimed_plant=plant, city=city)


# ------------------------------------------------------------------------------------ the file
_SCALARS = ("reuse_rate", "substitution_rate", "leakage_rate", "reclaimed_shortfall_m3d", "fresh_intake_m3d",
            "leaks_supply_m3d", "leaks_reclaimed_m3d", "leaks_discharge_m3d")
_FLAGS = ("converged", "any_enterprise_below_service", "reuse_target_met", "substitution_target_met")


def _chunks(study: ParkStudy):
    """(chunk number, first scenario, end) of every chunk."""
    for c in range(math.ceil(study.scenarios / study.chunk_size)):
        yield c, c * study.chunk_size, min((c + 1) * study.chunk_size, study.scenarios)


def _network_sha256(nets: dict) -> str:
    return json.dumps({n: net.source_sha256 for n, net in nets.items()}, sort_keys=True)


def _create(path: Path, park: Park, study: ParkStudy, specs: dict, nets: dict) -> None:
    s, n_chunks, e = study.scenarios, math.ceil(study.scenarios / study.chunk_size), len(park.enterprises)
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": FORMAT, "park": park.name, "study": json.dumps(asdict(study)), "complete": False,
                        "n_scenarios": s, "min_pressure_m": study.min_pressure_m})
        f["chunk/done"] = np.zeros(n_chunks, bool)
        g = f.create_group("draws")
        g["enterprise"] = np.array([x.name for x in park.enterprises], dtype=h5py.string_dtype())
        # The draws are written a chunk at a time, as the scenarios are solved: never the whole study in memory.
        demand = g.create_dataset("demand_factor", shape=(s, e), dtype="f8")
        outage = g.create_dataset("reclaimed_outage", shape=(s,), dtype=bool)
        offer = g.create_dataset("city_offer_factor", shape=(s,), dtype="f8")
        for _, lo, hi in _chunks(study):
            demand[lo:hi], outage[lo:hi], offer[lo:hi] = park_numbers(park, study, lo, hi)
        for net_name, spec in specs.items():
            SampledBatch.of(spec, nets[net_name], study.chunk_size).perturbations.write_h5(
                g.create_group(f"leaks/{net_name}"))
        # Last of the draws: open_to_resume (scenarios.store.created) refuses a file stopped before it.
        f.attrs["network_sha256"] = _network_sha256(nets)
        r = f.create_group("scenario")
        for name in _SCALARS:
            r.create_dataset(name, shape=(s,), dtype="f8", fillvalue=np.nan)
        for name in _FLAGS:
            r.create_dataset(name, shape=(s,), dtype=bool)
        r.create_dataset("enterprise_below_service", shape=(s, len(park.enterprises)), dtype=bool)
        for net_name in SERVICE_NETWORKS:
            net = nets[net_name]
            k = f.create_group(f"risk/{net_name}")
            k["junction_ids"] = np.array(net.junction_ids, dtype=h5py.string_dtype())
            # One row per chunk, summed over the chunks done: a chunk interrupted half-way counts nothing.
            k.create_dataset("count_below_service", shape=(n_chunks, net.n_junctions), dtype="i4",
                             chunks=(1, net.n_junctions), compression="gzip")


@dataclass(frozen=True)
class ParkStudyResult:
    path: Path
    summary: dict


def run_park_study(park: Park, study: ParkStudy, out_path, *, options: SolverOptions = SolverOptions(),
                   resume: bool = False, progress=None) -> ParkStudyResult:
    """Run `study` on `park` into `out_path` (HDF5) and return the summary (also in the file)."""
    study.validate()
    out_path = Path(out_path)
    nets = {n: load_network(park.network_path(n)) for n in NETWORKS}
    specs = leak_specs(study, nets)
    if resume and out_path.exists():
        with open_to_resume(out_path) as f:
            if f.attrs.get("format") != FORMAT or json.loads(f.attrs["study"]) != json.loads(json.dumps(asdict(study))):
                raise ValueError(f"{out_path.name}: cannot resume: the file holds another study or another format")
            if f.attrs["network_sha256"] != _network_sha256(nets):
                raise ValueError(f"{out_path.name}: cannot resume: the park's networks changed since it was written")
    else:
        if out_path.exists():
            raise FileExistsError(f"{out_path.name}: exists (give resume=True to finish it, or another name)")
        _create(out_path, park, study, specs, nets)
    sampled = dict(nets)        # the leaks are sampled on the networks as loaded, as draw() does
    if study.duration_s:
        nets = {n: _daily_network(park, n, net) for n, net in nets.items()}
    solvers = {n: HydraulicSolver(net, options) for n, net in nets.items()}
    buffers: dict = {}          # per network, the 24 h results of one chunk, reused chunk after chunk
    targets = indicator_targets(park)
    arrays = ParkArrays.of(park)
    with h5py.File(out_path, "r+") as f:
        done = f["chunk/done"][:]
        for c, lo, hi in _chunks(study):
            if done[c]:
                continue
            rows = np.arange(lo, hi)
            # This chunk's draws only, sampled now: the same numbers as the file's draws.
            numbers = park_numbers(park, study, lo, hi)
            leak_areas = {n: sample_inputs(spec, sampled[n], lo, hi).leak_area_m2 for n, spec in specs.items()}
            _run_chunk(f, park, study, numbers, leak_areas, nets, solvers, targets, rows, c, arrays, buffers)
            f["chunk/done"][c] = True
            f.flush()
            if progress is not None:
                progress(int(rows[-1]) + 1, study.scenarios)
        summary = summarise(f)
        f.attrs["summary"] = json.dumps(summary)
        f.attrs["complete"] = True
    return ParkStudyResult(out_path, summary)


def _with_park_changes(inputs, park: Park, net_name: str, net, n: int):
    """The park's own hydraulic what-ifs and the city's head (`network_changes`), for n scenarios."""
    extra = network_changes(park, net_name, net)
    if extra is None:
        return inputs
    if extra.leak_cd is not None:
        raise ValueError(f"{net_name}: a leak_cd what-if cannot be combined with a study's drawn leaks "
                         "(their Cd is 0.75)")
    return with_perturbations(inputs, extra.subset(np.zeros(n, np.int64)))


def _junction_flows(park: Park, net_name: str, alloc: BatchAllocation) -> dict[str, np.ndarray]:
    """junction id -> [S] m³/s the enterprises put on `net_name` (discharge negative: an inflow)."""
    per_enterprise = {"supply": alloc.intake_fresh, "reclaimed": alloc.intake_reclaimed,
                      "discharge": -alloc.discharge}[net_name] / SECONDS_PER_DAY
    out: dict[str, np.ndarray] = {}
    for i, e in enumerate(park.enterprises):
        jid = e.junctions[net_name]
        out[jid] = out[jid] + per_enterprise[:, i] if jid in out else per_enterprise[:, i].copy()
    return out


def _run_chunk(f, park, study, numbers, leak_areas: dict, nets, solvers, targets, rows, chunk: int,
               arrays: ParkArrays, buffers: dict) -> None:
    """Scenarios `rows` (consecutive) from their draws: `numbers` (park_numbers of the rows) and
    `leak_areas` (network -> [len(rows), nodes] leak areas m², or None)."""
    factor, outage, offer = numbers
    first = allocate_batch(arrays, factor, outage, offer)
    service = {}
    for net_name, net in nets.items():
        inputs = demand_inputs(net, _junction_flows(park, net_name, first), daily=bool(study.duration_s))
        inputs = _with_park_changes(inputs, park, net_name, net, len(rows))
        drawn = leak_areas.get(net_name)
        if drawn is not None:
            # Two orifices at one junction with one Cd are one orifice of the summed area (q is linear in A).
            inputs = replace(inputs, leak_area_m2=drawn if inputs.leak_area_m2 is None
                             else (sp.csr_matrix(inputs.leak_area_m2) + drawn).tocsr())
        nj = net.n_junctions
        if study.duration_s:
            volumes = StepVolumes(len(rows), net.n_nodes)
            res = run_extended(solvers[net_name], inputs, study.duration_s, volumes=volumes,
                               out=_buffer(buffers, net_name, net, solvers[net_name], study, len(rows)))
            leaks = volumes.leak_m3.sum(axis=1)
            # NaN after a failure: the scenario is flagged not converged, its pressure counts as below.
            p = np.min(np.asarray(res.pressure_m[:, :, :nj], float), axis=1)
        else:
            res = solvers[net_name].run(inputs, 0)
            leaks = np.nansum(np.asarray(res.leak_m3s[:, 0, :], float), axis=1) * SECONDS_PER_DAY
            p = np.asarray(res.pressure_m[:, 0, :nj], float)
        below = ~(p >= study.min_pressure_m)
        if net_name in SERVICE_NETWORKS:
            f[f"risk/{net_name}/count_below_service"][chunk] = below.sum(axis=0)
        ent_j = np.array([net.node_index(e.junctions[net_name]) for e in park.enterprises], np.int64)
        service[net_name] = {
            "leaks_m3d": leaks, "enterprise_below": below[:, ent_j],
            "converged": np.all(res.converged, axis=1) & (np.asarray(res.failure) == ""),
        }
    # The sewer's leaks reach no plant: the allocation again with them, as run_park does.
    alloc = allocate_batch(arrays, factor, outage, offer, sewer_losses_m3d=service["discharge"]["leaks_m3d"])
    ind = headline_indicators(arrays, alloc, service["supply"]["leaks_m3d"], service["reclaimed"]["leaks_m3d"],
                              targets.substitution_denominator, targets.park_reclaimed_as,
                              leaks_sewer_m3d=service["discharge"]["leaks_m3d"])
    out = {name: ind[name] for name in ("reuse_rate", "substitution_rate", "leakage_rate", "fresh_intake_m3d")}
    out["reclaimed_shortfall_m3d"] = alloc.reclaimed_shortfall
    for net_name in NETWORKS:
        out[f"leaks_{net_name}_m3d"] = service[net_name]["leaks_m3d"]

    def met(values, target):
        # As Indicator.met: no target or no value is not "met".
        return np.zeros(len(values), bool) if target is None else np.nan_to_num(values, nan=-np.inf) >= target

    below = service["supply"]["enterprise_below"] | service["reclaimed"]["enterprise_below"]
    flags = {"reuse_target_met": met(ind["reuse_rate"], targets.reuse_rate),
             "substitution_target_met": met(ind["substitution_rate"], targets.substitution_rate),
             "any_enterprise_below_service": below.any(axis=1),
             "converged": np.logical_and.reduce([service[n]["converged"] for n in NETWORKS])}
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    for name, values in {**out, **flags}.items():
        f[f"scenario/{name}"][lo:hi] = values
    f["scenario/enterprise_below_service"][lo:hi] = below


def _buffer(buffers: dict, net_name: str, net, solver, study, n_rows: int) -> ResultSet:
    """The first `n_rows` scenarios of the network's reused result set (a chunk is at most chunk_size);
    pressures only, all the study reads of the report times (volumes come from StepVolumes)."""
    if net_name not in buffers:
        buffers[net_name] = ResultSet.allocate(net.node_ids, net.link_ids, report_times(net, study.duration_s),
                                               study.chunk_size, dtype=solver.options.result_dtype, prefill=False,
                                               quantities=("pressure_m",))
    return buffers[net_name].rows(0, n_rows)


def _daily_network(park: Park, net_name: str, net):
    """The network for 24 h scenarios: each enterprise junction follows its enterprises' shift profile.
    The profile must not depend on the scenario's draws, so the enterprises at one junction must share
    their shift hours."""
    hours: dict[str, set] = {}
    for e in park.enterprises:
        hours.setdefault(e.junctions[net_name], set()).add(e.shift_hours)
    for jid, h in hours.items():
        if len(h) > 1:
            raise ValueError(f"{net_name}: junction {jid!r} serves enterprises on {sorted(h)} h shifts; a 24 h "
                             "study needs one shift length per junction (its profile would change with the draws)")
    base = enterprise_loads(park, bal.allocate(park))[net_name]
    loads = {jid: JunctionLoad(base[jid].mean_m3s, shift_profile(h.pop())) for jid, h in hours.items()}
    daily, _ = daily_network(net, loads)
    return daily


def summarise(f) -> dict:
    """Probabilities and quantiles over the scenarios done so far (all of them once complete)."""
    n_chunks = len(f["chunk/done"])
    size = math.ceil(f.attrs["n_scenarios"] / n_chunks)
    done_rows = np.zeros(f.attrs["n_scenarios"], bool)
    for c in np.flatnonzero(f["chunk/done"][:]):
        done_rows[c * size:(c + 1) * size] = True
    sc = f["scenario"]
    n = int(done_rows.sum())

    def prob(values) -> float | None:
        return float(np.mean(values[done_rows])) if n else None

    shortfall = sc["reclaimed_shortfall_m3d"][:]
    out = {"scenarios": n, "min_pressure_m": float(f.attrs["min_pressure_m"]),
           "probability": {
               "reclaimed_supply_short": prob(shortfall > SHORTFALL_TOLERANCE_M3D),
               "any_enterprise_below_service": prob(sc["any_enterprise_below_service"][:]),
               "reuse_target_met": prob(sc["reuse_target_met"][:]),
               "substitution_target_met": prob(sc["substitution_target_met"][:]),
               "not_converged": prob(~sc["converged"][:])},
           "quantiles": {}}
    for name in _SCALARS:
        values = sc[name][:][done_rows]
        values = values[np.isfinite(values)]
        out["quantiles"][name] = ({f"p{round(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES}
                                  if len(values) else None)
    below = f["scenario/enterprise_below_service"][:][done_rows]
    names = [x.decode() if isinstance(x, bytes) else str(x) for x in f["draws/enterprise"][:]]
    out["enterprise_below_service"] = {e: float(below[:, i].mean()) if n else None for i, e in enumerate(names)}
    return out


def risk_map(path, network: str) -> tuple[list[str], np.ndarray]:
    """(junction ids, probability of pressure below the service threshold) of one network."""
    with h5py.File(path, "r") as f:
        if f"risk/{network}" not in f:
            raise KeyError(f"{Path(path).name}: no risk map for network {network!r}")
        if not f.attrs.get("complete", False):
            raise ValueError(f"{Path(path).name}: the study is not complete (resume it first)")
        g = f[f"risk/{network}"]
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in g["junction_ids"][:]]
        return ids, g["count_below_service"][:].sum(axis=0) / int(f.attrs["n_scenarios"])
