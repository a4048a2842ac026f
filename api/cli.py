"""The `parktwin` command line. Errors are one clear line and exit code 2, never a traceback."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ParkTwin: batched EPANET-compatible hydraulics for industrial park water networks.")
console = Console()
err_console = Console(stderr=True)


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


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code=2)


def _load(network: Path):
    from hydraulics.compile import load_network
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


def _run(network: Path, batch_factory, out: Path, duration: int, backend: Backend, chunk_size: int,
         resume: bool, accuracy: float | None, precision: Precision):
    import numpy as np
    from hydraulics.solver import SolverOptions
    from scenarios.runner import run_batch
    net = _load(network)
    batch = batch_factory(net)
    options = SolverOptions(backend=backend.value, chunk_size=chunk_size, accuracy=accuracy)
    progress, update = _progress_bar(batch.size, "solving")
    with progress:
        summary = run_batch(net, batch, options, duration, out, resume=resume, progress=update,
                            float_dtype=np.float32 if precision == Precision.single else np.float64)
    _print_summary(net, summary, duration)
    return summary


def _print_summary(net, summary, duration: int) -> None:
    kind = "snapshot at t=0" if not duration else f"extended period, {duration} s"
    console.print(f"[bold]{net.name}[/]: {net.n_junctions} junctions, {net.n_nodes} nodes, {net.n_links} links; {kind}")
    console.print(f"scenarios: {summary.n_scenarios}  converged: {summary.n_converged}  failed: {summary.n_failed}"
                  f"  ({summary.scenarios_per_second:,.0f} scenarios/s, {summary.seconds:.2f} s)")
    for sid, reason in list(summary.failures.items())[:10]:
        console.print(f"  failed {sid}: {reason}")
    if len(summary.failures) > 10:
        console.print(f"  ... and {len(summary.failures) - 10} more (see scenario/failure in the file)")
    state = "complete" if summary.complete else "INCOMPLETE (finish it with --resume)"
    console.print(f"results: {summary.out_path} ({state})")


@app.command()
def solve(network: Path = typer.Argument(..., help="EPANET .inp file"),
          out: Path = typer.Option(..., "--out", help="result file (HDF5)"),
          duration: int = typer.Option(0, "--duration", help="seconds; 0 = snapshot at time 0"),
          backend: Backend = typer.Option(Backend.auto, "--backend"),
          accuracy: float = typer.Option(None, "--accuracy", help="override the network's ACCURACY"),
          precision: Precision = typer.Option(Precision.single, "--precision", help="floats in the file")):
    """Solve the network's base case and write the results."""
    from scenarios.batch import ScenarioBatch
    from scenarios.perturbations import PerturbationTable
    from hydraulics.inputs import BatchInputs

    def base(net):
        return ScenarioBatch(ids=("base",), inputs=BatchInputs.base(1), perturbations=PerturbationTable.from_rows([]))
    _run(network, base, out, duration, backend, 1, False, accuracy, precision)


@app.command()
def run(network: Path = typer.Argument(..., help="EPANET .inp file"),
        scenarios: Path = typer.Option(..., "--scenarios", help="perturbation table: .csv, .json or .h5"),
        out: Path = typer.Option(..., "--out", help="result file (HDF5)"),
        duration: int = typer.Option(0, "--duration", help="seconds; 0 = snapshot at time 0"),
        backend: Backend = typer.Option(Backend.auto, "--backend"),
        chunk_size: int = typer.Option(512, "--chunk-size", min=1, help="scenarios solved together"),
        resume: bool = typer.Option(False, "--resume", help="finish an interrupted run in --out"),
        accuracy: float = typer.Option(None, "--accuracy", help="override the network's ACCURACY"),
        precision: Precision = typer.Option(Precision.single, "--precision", help="floats in the file")):
    """Solve every scenario of a perturbation table."""
    from scenarios.perturbations import build_batch, read_perturbations
    table = read_perturbations(scenarios)

    def factory(net):
        return build_batch(table, net)
    _run(network, factory, out, duration, backend, chunk_size, resume, accuracy, precision)


@app.command()
def mc():
    """Monte-Carlo batches (not available yet)."""
    raise UserError("'parktwin mc' (Monte-Carlo scenario generation) is not supported yet")


@app.command()
def serve():
    """Start the HTTP API (not available yet)."""
    raise UserError("'parktwin serve' (the HTTP API) is not supported yet")


@app.command()
def backends():
    """List the solver backends and whether each is available here."""
    from kernels.registry import available_backends
    for name, state in available_backends().items():
        console.print(f"{name:6s} {state}")


@app.command()
def demo(out_dir: Path = typer.Option(Path("demo-output"), "--out-dir")):
    """Run the bundled example end to end and print a summary."""
    from api.demo import run_demo
    run_demo(out_dir, console)


def main(argv: list[str] | None = None) -> None:
    # InpError, PerturbationError and StoreMismatch are ValueErrors and UnsupportedFeature is a
    # NotImplementedError; catching the bases keeps WNTR out of start-up when the network is cached.
    try:
        app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (UserError, ValueError, NotImplementedError, OSError, RuntimeError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]: the result file says it is incomplete; finish it with --resume")
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here in standalone_mode=False
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
