"""The `parktwin` command line. Errors are one clear line and exit code 2, never a traceback."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ParkTwin: batched EPANET-compatible hydraulics for industrial park water networks.")
# soft_wrap: a message or a path is never broken over lines when the output is not a terminal (rich
# would otherwise wrap at 80 columns), so an error stays one line that scripts and logs can take whole.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class Backend(str, Enum):
    auto = "auto"
    numpy = "numpy"
    numba = "numba"
    cupy = "cupy"


class Precision(str, Enum):
    single = "single"
    double = "double"


class UserError(Exception):
    """An error whose message is meant for the user as it is."""


def _one_line(message) -> str:
    """The message as one line, safe to print with rich (ids like '[/x]' in it are text, not markup)."""
    return escape(" ".join(part.strip() for part in str(message).splitlines() if part.strip()))


def _print_error(message) -> None:
    err_console.print(f"[bold red]error:[/] {_one_line(message)}", highlight=False)


def _fail(message: str) -> None:
    _print_error(message)
    raise typer.Exit(code=2)


def _load(network: Path):
    from parktwin.hydraulics.compile import load_network
    if not network.exists():
        raise UserError(f"{network}: no such file")
    return load_network(network)


def _progress_bar(total: int, label: str):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    progress = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total} scenarios"),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err_console,
                        transient=True, disable=not err_console.is_terminal)
    task = progress.add_task(label, total=total, rate="")
    import time
    started = time.perf_counter()

    def update(done: int, _total: int) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        progress.update(task, completed=done, rate=f"{done / elapsed:,.0f}/s")
    return progress, update


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise UserError(f"{out}: is a directory; --out names the result file")
    if not out.parent.is_dir():
        raise UserError(f"{out}: the directory {out.parent} does not exist")


def _with_progress(total: int, out: Path, solve):
    """Run solve(progress_callback) under a progress bar; an interrupt says what it left behind."""
    progress, update = _progress_bar(total, "solving")
    try:
        with progress:
            return solve(update)
    except KeyboardInterrupt:
        # Typer turns a KeyboardInterrupt into a bare exit status 130; say what it left behind first.
        err_console.print(f"[bold red]interrupted[/]: {escape(str(out))} says it is incomplete; "
                          "finish it with --resume", highlight=False)
        raise typer.Exit(code=130) from None


RECORD_HELP = ("what the file records, comma-separated: head, pressure, demand, leak, flow (or head_m, "
               "pressure_m, demand_m3s, leak_m3s, flow_m3s), quality; default all. Status, convergence, "
               "iterations and failures are always recorded")


def _record(record: str | None):
    """--record as SolverOptions.record (None: everything); an unknown name is one line listing the valid."""
    from parktwin.hydraulics.results import parse_record
    return parse_record(record)


CPU_CHUNK, DEVICE_CHUNK = 512, 65536
CHUNK_HELP = (f"scenarios solved together (default {CPU_CHUNK}; {DEVICE_CHUNK:,} on cupy, whose device takes them in "
              f"slices that fit its memory); fewer where one chunk's results would pass 1 GiB")


def _chunk(chunk_size: int | None, backend: "Backend") -> int:
    """--chunk-size, or the backend's default: a GPU needs tens of thousands of scenarios to fill."""
    if chunk_size is not None:
        return chunk_size
    name = backend.value
    if backend == Backend.auto:
        from parktwin.kernels.registry import get_backend
        name = get_backend("auto").name
    return DEVICE_CHUNK if name == "cupy" else CPU_CHUNK


def _run(network: Path, batch_factory, out: Path, duration: int, backend: Backend, chunk_size: int | None,
         resume: bool, accuracy: float | None, precision: Precision, record: str | None = None):
    import gc

    import numpy as np
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.scenarios.runner import run_batch
    # What is loaded by now (the modules: millions of objects) lives as long as the process: frozen, the
    # collector's full passes, which the table's many small objects trigger, no longer walk it (0.5 s of
    # a 50,000-scenario run).
    gc.freeze()
    chosen = _record(record)
    _check_out(out)
    net = _load(network)
    batch = batch_factory(net)
    options = SolverOptions(backend=backend.value, chunk_size=_chunk(chunk_size, backend), accuracy=accuracy,
                            record=chosen)
    summary = _with_progress(batch.size, out, lambda update: run_batch(
        net, batch, options, duration, out, resume=resume, progress=update,
        float_dtype=np.float32 if precision == Precision.single else np.float64))
    _print_summary(net, summary, duration)
    return summary


def _print_summary(net, summary, duration: int) -> None:
    kind = "snapshot at t=0" if not duration else f"extended period, {duration} s"
    console.print(f"[bold]{escape(net.name)}[/]: {net.n_junctions} junctions, {net.n_nodes} nodes, {net.n_links} links; {kind}")
    console.print(f"scenarios: {summary.n_scenarios}  converged: {summary.n_converged}  failed: {summary.n_failed}"
                  f"  ({summary.scenarios_per_second:,.0f} scenarios/s, {summary.seconds:.2f} s)")
    for sid, reason in list(summary.failures.items())[:10]:
        console.print(f"  failed {escape(str(sid))}: {_one_line(reason)}", highlight=False)
    if len(summary.failures) > 10:
        console.print(f"  ... and {len(summary.failures) - 10} more (see scenario/failure in the file)")
    state = "complete" if summary.complete else "INCOMPLETE (finish it with --resume)"
    console.print(f"results: {escape(str(summary.out_path))} ({state})", highlight=False)


@app.command()
def solve(network: Path = typer.Argument(..., help="EPANET .inp file"),
          out: Path = typer.Option(..., "--out", help="result file (HDF5)"),
          duration: int = typer.Option(0, "--duration", min=0, help="seconds; 0 = snapshot at time 0"),
          backend: Backend = typer.Option(Backend.auto, "--backend"),
          accuracy: float = typer.Option(None, "--accuracy", help="override the network's ACCURACY"),
          precision: Precision = typer.Option(Precision.single, "--precision", help="floats in the file"),
          record: str = typer.Option(None, "--record", help=RECORD_HELP)):
    """Solve the network's base case and write the results."""
    from parktwin.scenarios.batch import ScenarioBatch
    from parktwin.scenarios.perturbations import PerturbationTable
    from parktwin.hydraulics.inputs import BatchInputs

    def base(net):
        return ScenarioBatch(ids=("base",), inputs=BatchInputs.base(1), perturbations=PerturbationTable.from_rows([]))
    _run(network, base, out, duration, backend, 1, False, accuracy, precision, record)


@app.command()
def run(network: Path = typer.Argument(..., help="EPANET .inp file"),
        scenarios: Path = typer.Option(..., "--scenarios", help="perturbation table: .csv, .json or .h5"),
        out: Path = typer.Option(..., "--out", help="result file (HDF5)"),
        duration: int = typer.Option(0, "--duration", min=0, help="seconds; 0 = snapshot at time 0"),
        backend: Backend = typer.Option(Backend.auto, "--backend"),
        chunk_size: int = typer.Option(None, "--chunk-size", min=1, help=CHUNK_HELP),
        resume: bool = typer.Option(False, "--resume", help="finish an interrupted run in --out"),
        accuracy: float = typer.Option(None, "--accuracy", help="override the network's ACCURACY"),
        precision: Precision = typer.Option(Precision.single, "--precision", help="floats in the file"),
        record: str = typer.Option(None, "--record", help=RECORD_HELP)):
    """Solve every scenario of a perturbation table."""
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbation_files import read_perturbations
    _record(record)
    table = read_perturbations(scenarios)

    def factory(net):
        return build_batch(table, net)
    _run(network, factory, out, duration, backend, chunk_size, resume, accuracy, precision, record)


class Store(str, Enum):
    full = "full"
    summary = "summary"


@app.command()
def mc(network: Path = typer.Argument(..., help="EPANET .inp file"),
       out: Path = typer.Option(..., "--out", help="result file (HDF5)"),
       scenarios: int = typer.Option(None, "--scenarios", help="number of scenarios (or from --spec)"),
       seed: int = typer.Option(None, "--seed", help="random seed (or from --spec)"),
       spec: Path = typer.Option(None, "--spec", help="scenario specification (TOML); options below override"),
       sampler: str = typer.Option(None, "--sampler", help="mc, lhs or sobol"),
       leaks: int = typer.Option(None, "--leaks", help="leaks per scenario"),
       leak_location: str = typer.Option(None, "--leak-location", help="uniform or pipe_length"),
       leak_median_m2: float = typer.Option(None, "--leak-median-m2", help="log-normal median leak area"),
       leak_sigma: float = typer.Option(None, "--leak-sigma", help="log-normal sigma of the leak area"),
       demand_min: float = typer.Option(None, "--demand-min", help="global demand multiplier, uniform minimum"),
       demand_max: float = typer.Option(None, "--demand-max", help="global demand multiplier, uniform maximum"),
       breaks: int = typer.Option(None, "--breaks", help="random pipe closures per scenario"),
       pump_outage_probability: float = typer.Option(None, "--pump-outage-probability"),
       store: Store = typer.Option(Store.full, "--store", help="full: every result; summary: statistics"),
       service_pressure_m: float = typer.Option(None, "--service-pressure-m",
                                                help="summary: pressure below which service fails"),
       quality_limit: float = typer.Option(None, "--quality-limit",
                                           help="summary: water quality above which a node fails (quality units)"),
       duration: int = typer.Option(0, "--duration", min=0, help="seconds; 0 = snapshot at time 0"),
       backend: Backend = typer.Option(Backend.auto, "--backend"),
       chunk_size: int = typer.Option(None, "--chunk-size", min=1, help=CHUNK_HELP),
       workers: int = typer.Option(0, "--workers", min=0, help="start a local Ray cluster of K workers"),
       ray_address: str = typer.Option(None, "--ray", help="join an existing Ray cluster"),
       resume: bool = typer.Option(False, "--resume", help="finish an interrupted run in --out"),
       precision: Precision = typer.Option(Precision.single, "--precision", help="floats in a full file"),
       record: str = typer.Option(None, "--record", help=RECORD_HELP + " (--store full only)")):
    """Monte-Carlo study: sample scenarios from a specification and solve them.

    Without --spec and without distribution options, each scenario has one leak (log-normal area,
    median 1e-4 m2, sigma 1) and a uniform global demand multiplier between 0.8 and 1.2."""
    import dataclasses

    import numpy as np
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.scenarios.executor import ExecutorOptions
    from parktwin.scenarios.montecarlo import run_monte_carlo
    from parktwin.scenarios.spec import load_spec, spec_from_options
    chosen = _record(record)
    if chosen is not None and store != Store.full:
        raise UserError("--record chooses what a full result file holds: give it with --store full "
                        "(a summary's statistics need every quantity)")
    _check_out(out)
    given = dict(sampler=sampler, leaks=leaks, leak_location=leak_location, leak_median_m2=leak_median_m2,
                 leak_sigma=leak_sigma, demand_min=demand_min, demand_max=demand_max, breaks=breaks,
                 pump_outage_probability=pump_outage_probability)
    if spec is not None:
        if any(v is not None for v in given.values()):
            raise UserError("give the distributions either in --spec or as options, not both")
        study = load_spec(spec)
        changes = {k: v for k, v in (("scenarios", scenarios), ("seed", seed)) if v is not None}
        study = dataclasses.replace(study, **changes) if changes else study
    else:
        if scenarios is None or seed is None:
            raise UserError("--scenarios and --seed are required without --spec")
        if all(v is None for k, v in given.items() if k != "sampler"):
            given.update(leaks=1, leak_median_m2=1e-4, leak_sigma=1.0, demand_min=0.8, demand_max=1.2)
        if given["demand_min"] is not None or given["demand_max"] is not None:
            given["demand"] = "uniform"
        study = spec_from_options(scenarios=scenarios, seed=seed, **given)
    net = _load(network)
    options = SolverOptions(backend=backend.value, chunk_size=_chunk(chunk_size, backend), record=chosen)
    executor = ExecutorOptions(workers=workers, ray_address=ray_address,
                               gpu_per_worker=1.0 if backend == Backend.cupy and (workers or ray_address) else 0.0)
    summary_options = None
    if store == Store.summary:
        from parktwin.scenarios.montecarlo import summary_options_for
        from parktwin.scenarios.runner import report_times_s
        summary_options = summary_options_for(net, len(report_times_s(net, duration)), service_pressure_m)
        if quality_limit is not None:
            summary_options = dataclasses.replace(summary_options, quality_limit=quality_limit)
    summary = _with_progress(study.scenarios, out, lambda update: run_monte_carlo(
        net, study, out, store=store.value, options=options, duration_s=duration, executor=executor,
        resume=resume, progress=update, float_dtype=np.float32 if precision == Precision.single else np.float64,
        summary_options=summary_options))
    _print_summary(net, summary, duration)


park_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The park twin: three coupled networks.")
app.add_typer(park_app, name="park")


@park_app.command("run")
def park_run(park_dir: Path = typer.Argument(..., help="park folder: park.toml, supply.inp, reclaimed.inp, discharge.inp"),
             out: Path = typer.Option(..., "--out", help="output folder for indicators.json and balance.json"),
             snapshot: bool = typer.Option(False, "--snapshot",
                                           help="one steady state of daily mean flows instead of the 24 h run"),
             days: int = typer.Option(None, "--days", min=1, help="run N days and report the last (default: "
                                      "until the tank levels repeat day on day, at most 16 days)"),
             backend: Backend = typer.Option(Backend.auto, "--backend")):
    """Run the park day by day (or a snapshot): allocate water by grade, solve the three networks with the
    enterprises' shift profiles, book the balances, measure the boundary balance, evaluate the indicators."""
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.twin.coupled import run_park, write_outputs
    from parktwin.twin.park import load_park
    from parktwin.twin.park_hydraulics import SECONDS_PER_DAY
    from parktwin.twin.periodic import Periodicity
    park = load_park(park_dir)
    result = run_park(park, duration_s=0 if snapshot else SECONDS_PER_DAY,
                      options=SolverOptions(backend=backend.value), periodicity=Periodicity(days=days))
    out.mkdir(parents=True, exist_ok=True)
    written = write_outputs(result, out)
    console.print(f"[bold]{escape(park.name)}[/]: {len(park.enterprises)} enterprises")
    for name, ind in result.indicators.items():
        if "[" in name and not name.endswith(("[supply]", "[reclaimed]")):
            continue        # per-enterprise figures are in indicators.json
        value = ind.get("value")
        shown = "n/a" if value is None else f"{value:.4g}"
        met = ind.get("met")
        mark = "" if met is None else ("  target met" if met else "  target MISSED")
        console.print(f"  {escape(name)}: {shown} {escape(str(ind.get('unit', '')))}{mark}", highlight=False)
    for v in result.service_violations():
        console.print(f"  [yellow]service[/]: {escape(json.dumps(v))}", highlight=False)
    _print_boundary(result)
    if result.quality is not None:      # park.toml [quality]: the TDS figures are in balance.json
        from parktwin.twin.report_quality import quality_summary
        console.print("  " + escape(quality_summary(result.quality)), highlight=False)
    console.print("written: " + ", ".join(escape(str(p)) for p in written))


def _print_boundary(result) -> None:
    b, d = result.boundary, result.days
    if d.get("reported_day"):
        state = "tanks repeat" if d["periodic"] else "tanks do NOT repeat"
        console.print(f"  day {d['reported_day']} of {d['days_run']} reported ({state} within "
                      f"{d['tolerance_m']:g} m)", highlight=False)
    closure = "n/a" if b.closure is None else f"{100 * b.closure:.3f} %"
    console.print(f"  boundary: in {b.inflow_m3d:,.0f}, out {b.outflow_m3d:,.0f}, storage {b.storage_change_m3d:+,.0f}, "
                  f"residual {b.residual_m3d:+,.1f} m3/d, closure {closure}", highlight=False)


from parktwin.api import cli_park_whatif  # noqa: E402

cli_park_whatif.register(park_app, Backend, console)   # parktwin park whatif: api/cli_park_whatif.py


@park_app.command("mc")
def park_mc(park_dir: Path = typer.Argument(..., help="park folder"),
            out: Path = typer.Option(..., "--out", help="HDF5 file of the study (a .json summary is written beside it)"),
            scenarios: int = typer.Option(1000, "--scenarios", min=1),
            seed: int = typer.Option(0, "--seed"),
            leaks_supply: int = typer.Option(1, "--leaks-supply", min=0, help="leaks per scenario on the supply network"),
            leaks_reclaimed: int = typer.Option(1, "--leaks-reclaimed", min=0),
            leaks_discharge: int = typer.Option(0, "--leaks-discharge", min=0),
            leak_median_m2: float = typer.Option(1e-3, "--leak-median-m2", help="median leak area (log-normal), m²"),
            leak_sigma: float = typer.Option(1.0, "--leak-sigma"),
            demand_min: float = typer.Option(0.9, "--demand-min", help="each enterprise's needs times U(min, max)"),
            demand_max: float = typer.Option(1.1, "--demand-max"),
            outage_probability: float = typer.Option(0.05, "--outage-probability",
                                                     help="probability the reclaimed-water plant is out"),
            offer_min: float = typer.Option(1.0, "--offer-min", help="city reclaimed offer times U(min, max)"),
            offer_max: float = typer.Option(1.0, "--offer-max"),
            min_pressure: float = typer.Option(10.0, "--min-pressure", help="service pressure, m"),
            snapshot: bool = typer.Option(False, "--snapshot",
                                          help="each scenario a snapshot of daily means instead of a 24 h run"),
            resume: bool = typer.Option(False, "--resume", help="finish an interrupted study"),
            backend: Backend = typer.Option(Backend.auto, "--backend")):
    """Monte-Carlo over the park's operations (a 24 h run per scenario): leaks, demand uncertainty, a
    reclaimed-plant outage, the city's offer; probabilities of shortfall and of service below pressure."""
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.twin.park import load_park
    from parktwin.twin.park_montecarlo import ParkStudy, run_park_study
    park = load_park(park_dir)
    study = ParkStudy(scenarios=scenarios, seed=seed,
                      leaks_per_network={"supply": leaks_supply, "reclaimed": leaks_reclaimed,
                                         "discharge": leaks_discharge},
                      leak_median_area_m2=leak_median_m2, leak_sigma=leak_sigma,
                      demand_factor_range=(demand_min, demand_max), reclaimed_outage_probability=outage_probability,
                      city_offer_factor_range=(offer_min, offer_max), min_pressure_m=min_pressure,
                      duration_s=0 if snapshot else 86400)
    if out.exists() and not resume:
        raise UserError(f"{out}: exists; give --resume to finish it or choose another --out")
    options = SolverOptions(backend=backend.value)
    result = _with_progress(scenarios, out, lambda update: run_park_study(park, study, out, resume=resume,
                                                                          progress=update, options=options))
    summary_path = out.with_suffix(".json")
    summary_path.write_text(json.dumps(result.summary, indent=2))
    prob = result.summary["probability"]
    console.print(f"[bold]{escape(park.name)}[/]: {scenarios:,} scenarios", highlight=False)
    for key, value in prob.items():
        console.print(f"  P({key.replace('_', ' ')}) = {100 * value:.2f} %", highlight=False)
    console.print(f"written: {escape(str(out))}, {escape(str(summary_path))}")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", "--host", help="address to bind; loopback unless told otherwise"),
          port: int = typer.Option(8000, "--port", min=1, max=65535),
          data_dir: Path = typer.Option(None, "--data-dir",
                                        help="uploads, job files and the job table (default $PARKTWIN_DATA_DIR "
                                             "or ~/.local/share/parktwin)"),
          max_study_scenarios: int = typer.Option(None, "--max-study-scenarios", min=1,
                                                  help="cap on scenarios per Monte-Carlo job"),
          max_upload_bytes: int = typer.Option(None, "--max-upload-bytes", min=1, help="cap on an uploaded file"),
          max_request_bytes: int = typer.Option(None, "--max-request-bytes", min=1, help="cap on a JSON body"),
          workers: int = typer.Option(None, "--workers", min=1, help="Monte-Carlo jobs solved at the same time"),
          ray_address: str = typer.Option(None, "--ray", help="solve jobs on this Ray cluster"),
          cors_origin: list[str] = typer.Option(None, "--cors-origin", help="allow this browser origin (repeat)"),
          access_log: bool = typer.Option(False, "--access-log", help="log every request"),
          insecure: bool = typer.Option(False, "--insecure",
                                        help="serve a non-loopback --host without PARKTWIN_API_KEY")):
    """Start the HTTP API (docs/api.md; OpenAPI at /docs). PARKTWIN_API_KEY, if set, is required on every
    request but /health; a non-loopback --host needs it (or --insecure)."""
    from parktwin.api.server import serve as run_server
    run_server(host, port, data_dir, access_log=access_log, insecure=insecure or None,
               max_study_scenarios=max_study_scenarios,
               max_upload_bytes=max_upload_bytes, max_request_bytes=max_request_bytes, max_workers=workers,
               ray_address=ray_address, cors_origins=tuple(cors_origin) if cors_origin else None)


from parktwin.api import cli_render  # noqa: E402  (registers on `app`, which must exist first)

cli_render.register(app)     # parktwin render: the command lives in api/cli_render.py

from parktwin.api import cli_meters  # noqa: E402

cli_meters.register(app, park_app)   # parktwin meters ..., park reconcile: in api/cli_meters.py


@app.command()
def locate(network: Path = typer.Argument(..., help="EPANET .inp file"),
           readings: Path = typer.Option(None, "--readings",
                                         help="CSV element,quantity,value[,noise]: pressure_m (m) at junctions, "
                                              "flow_m3s (m³/s) in links"),
           top: int = typer.Option(10, "--top", min=1, help="how many candidate junctions to list"),
           out: Path = typer.Option(None, "--out", help="write the answer as JSON"),
           backend: Backend = typer.Option(Backend.auto, "--backend"),
           ledger: Path = typer.Option(None, "--ledger", help="over time: hourly readings from this meter ledger "
                                                              "(meter id = element id; docs/leak-location.md)"),
           start: str = typer.Option(None, "--from", help="with --ledger: the network's time 0, ISO 8601 with offset"),
           end: str = typer.Option(None, "--to", help="with --ledger: the end of the period"),
           train_hours: int = typer.Option(168, "--train-hours", min=1, help="with --ledger: leak-free hours to learn from"),
           window_hours: int = typer.Option(12, "--window-hours", min=1, help="with --ledger: how long a departure "
                                                                              "must persist")):
    """Leak alarm and localisation: is there a leak, and at which junction, how big, given the readings?
    With --ledger: alarms over a period, the demand level fitted every hour."""
    from parktwin.hydraulics.solver import SolverOptions
    if ledger is not None:
        from parktwin.api.cli_meters import locate_over_time
        return locate_over_time(network, ledger, start, end, train_hours, window_hours, top, out, backend.value)
    if readings is None:
        raise UserError("give --readings (one instant) or --ledger with --from and --to (a period)")
    from parktwin.twin.leak_location import LocateOptions, locate_leak, read_readings
    if not readings.is_file():
        raise UserError(f"{readings}: readings file not found")
    net = _load(network)
    found = locate_leak(net, read_readings(readings), LocateOptions(top=top), SolverOptions(backend=backend.value))
    verdict = "[bold red]ALARM[/]: a leak" if found.alarm else "no alarm: no leak"
    console.print(f"{verdict} (chi² without a leak {found.chi2_no_leak:.1f}, alarm above "
                  f"{found.chi2_alarm_threshold:.1f} for {found.n_meters} meters)", highlight=False)
    from rich.table import Table
    table = Table("junction", "probability", "area (cm²)", "leak (L/s)", "chi²")
    for c in found.candidates:
        table.add_row(escape(c.junction), f"{100 * c.probability:.1f} %", f"{c.area_m2 * 1e4:.2f}",
                      f"{c.leak_m3s * 1e3:.2f}", f"{c.chi2:.1f}")
    console.print(table)
    if out is not None:
        out.write_text(json.dumps(found.as_dict(), indent=2))
        console.print(f"written: {escape(str(out))}")


@app.command()
def backends():
    """List the solver backends and whether each is available here."""
    from parktwin.kernels.registry import available_backends
    for name, state in available_backends().items():
        console.print(f"{name:6s} {escape(str(state))}", highlight=False)


@app.command()
def demo(out_dir: Path = typer.Option(Path("demo-output"), "--out-dir")):
    """Run the bundled example end to end and print a summary."""
    from parktwin.api.demo import run_demo
    run_demo(out_dir, console)


def main(argv: list[str] | None = None) -> None:
    import os
    # The solver's parallelism is numba's threads; OpenBLAS's (numpy's and scipy's, used for nothing hot
    # here) would only spin beside them after the import-time calls. Set before numpy is imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # InpError, PerturbationError and StoreMismatch are ValueErrors and UnsupportedFeature is a
    # NotImplementedError; catching the bases keeps WNTR out of start-up when the network is cached.
    usage_errors = _click_exceptions()
    try:
        # In standalone_mode=False a typer.Exit raised inside a command (and the 130 typer makes of a
        # KeyboardInterrupt) comes back as the return value, not as an exception.
        status = app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        err_console.print("[bold red]aborted[/]", highlight=False)
        sys.exit(1)
    except usage_errors as exc:   # bad or missing options: one line, not click's usage block
        if type(exc).__name__ == "NoArgsIsHelpError":   # typer has already printed the help
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _print_error(f"{exc.format_message()}{hint}")
        sys.exit(exc.exit_code)
    except (UserError, ValueError, NotImplementedError, OSError, RuntimeError) as exc:
        _print_error(str(exc) or type(exc).__name__)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]", highlight=False)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001  a bug, still one line (DESIGN: never a traceback)
        if os.environ.get("PARKTWIN_TRACEBACK"):
            raise
        _print_error(f"internal error, please report it: {type(exc).__name__}: {exc} "
                     "(PARKTWIN_TRACEBACK=1 shows the traceback)")
        sys.exit(1)
    if isinstance(status, int) and status:
        sys.exit(status)


def _click_exceptions() -> tuple[type, ...]:
    """ClickException as typer raises it: typer >= 0.20 vendors click as typer._click, older typer
    uses click itself; `import click` alone would miss the vendored class."""
    import importlib
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except ImportError:
            pass
    return tuple(found)


if __name__ == "__main__":
    main()
