"""`parktwin meters ...`: the tamper-evident meter ledger (docs/meter-ledger.md).

Kept out of api/cli.py, which registers the group with one line. Errors are ValueErrors (LedgerError,
ReadingsError, ProofError, KeyFileError), which api.cli.main prints as one line with exit code 2.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

meters_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Meter readings: an append-only ledger with signed Merkle checkpoints, and proofs.")


def default_key(ledger: Path) -> Path:
    """The signing key beside the ledger: LEDGER.key (its public half LEDGER.pub)."""
    return ledger.with_name(ledger.name + ".key")


def default_public_key(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".pub")


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None


def _published(path: Path | None):
    from parktwin.twin.ledger_keys import Checkpoint
    return None if path is None else Checkpoint.from_dict(_read_json(path, "checkpoint"), str(path))


def _emit(data: dict, out: Path | None) -> None:
    text = json.dumps(data, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"written: {out}")


@meters_app.command("ingest")
def ingest_cmd(ledger: Path = typer.Argument(..., help="ledger file (SQLite; created on first use)"),
               readings: Path = typer.Argument(..., help="CSV meter,time,quantity,value (time ISO 8601 with offset)"),
               park: Path = typer.Option(None, "--park", help="park folder: refuse meters park.toml does not declare"),
               key: Path = typer.Option(None, "--key", help="Ed25519 signing key (PEM); default LEDGER.key, "
                                                            "created on first use with LEDGER.pub beside it")):
    """Append a file of readings (all or nothing) and sign a checkpoint of the ledger."""
    from parktwin.twin.ledger import ingest
    from parktwin.twin.ledger_keys import load_or_create_private_key, public_key_path
    if not readings.is_file():
        raise ValueError(f"{readings}: readings file not found")
    meters = None
    if park is not None:
        from parktwin.twin.park import load_park
        meters = {m.id: m.quantity for m in load_park(park).meters}
    key_path = key or default_key(ledger)
    private, created = load_or_create_private_key(key_path)
    summary = ingest(ledger, readings.read_text(encoding="utf-8"), str(readings), private, meters)
    if created:
        typer.echo(f"created signing key {key_path} (public key {public_key_path(key_path)}; keep the private "
                   "key secret, publish the public one)")
    if summary.added == 0:
        typer.echo(f"{readings}: nothing new ({summary.already_present} readings already in the ledger); "
                   f"ledger unchanged at {summary.tree_size} readings")
        return
    already = f", {summary.already_present} already present" if summary.already_present else ""
    typer.echo(f"{readings}: {summary.added} readings added{already}; ledger {summary.tree_size} readings, "
               f"root {summary.root_hash}, {summary.checkpoints_signed} checkpoints signed")


@meters_app.command("verify")
def verify_cmd(ledger: Path = typer.Argument(..., help="ledger file"),
               public_key: Path = typer.Option(None, "--public-key", help="the park's public key (default LEDGER.pub)"),
               checkpoint: Path = typer.Option(None, "--checkpoint",
                                               help="a checkpoint published earlier: also catches a ledger cut short")):
    """Recompute every hash and signature; exit 1 naming the first altered, missing or reordered reading."""
    from parktwin.twin.ledger import verify
    from parktwin.twin.ledger_keys import load_public_key
    report = verify(ledger, load_public_key(public_key or default_public_key(ledger)), _published(checkpoint))
    if report.ok:
        typer.echo(f"{ledger}: intact: {report.readings} readings, {report.checkpoints} checkpoints, "
                   f"all signed by the key")
        return
    for problem in report.problems:
        typer.echo(f"TAMPERED: {problem}", err=True)
    raise typer.Exit(code=1)


@meters_app.command("checkpoint")
def checkpoint_cmd(ledger: Path = typer.Argument(..., help="ledger file"),
                   out: Path = typer.Option(None, "--out", help="write the checkpoint (JSON) here")):
    """Print the latest signed checkpoint, to publish (a third party checks proofs against it)."""
    from parktwin.twin.ledger import latest_checkpoint
    _emit(latest_checkpoint(ledger).as_dict(), out)


@meters_app.command("prove")
def prove_cmd(ledger: Path = typer.Argument(..., help="ledger file"),
              meter: str = typer.Option(..., "--meter", help="meter id"),
              time: str = typer.Option(..., "--time", help="reading time, ISO 8601 with offset"),
              quantity: str = typer.Option(None, "--quantity", help="needed when the meter reads several"),
              size: int = typer.Option(None, "--size", min=1, help="against the checkpoint of this size "
                                                                  "(default: the latest)"),
              out: Path = typer.Option(None, "--out", help="write the proof (JSON) here")):
    """An inclusion proof of one reading against a signed checkpoint."""
    from parktwin.twin.ledger_proofs import prove_inclusion
    from parktwin.twin.meter_readings import parse_time_us
    _emit(prove_inclusion(ledger, meter, parse_time_us(time), quantity, size), out)


@meters_app.command("consistency")
def consistency_cmd(ledger: Path = typer.Argument(..., help="ledger file"),
                    first: int = typer.Option(..., "--from-size", min=1, help="size of the earlier checkpoint"),
                    second: int = typer.Option(None, "--to-size", min=1, help="size of the later (default latest)"),
                    out: Path = typer.Option(None, "--out", help="write the proof (JSON) here")):
    """A consistency proof: the later checkpoint only appended readings to the earlier one."""
    from parktwin.twin.ledger_proofs import prove_consistency
    _emit(prove_consistency(ledger, first, second), out)


@meters_app.command("check-proof")
def check_proof_cmd(proof: Path = typer.Argument(..., help="proof JSON from `prove` or `consistency`"),
                    public_key: Path = typer.Option(..., "--public-key", help="the park's public key (PEM)"),
                    checkpoint: Path = typer.Option(None, "--checkpoint",
                                                    help="the published checkpoint to check against "
                                                         "(default: the one inside the proof)")):
    """Check a proof with the public key and a checkpoint alone (no ledger needed); exit 1 if it fails."""
    from parktwin.twin.ledger_keys import load_public_key
    from parktwin.twin.ledger_proofs import check_proof
    from parktwin.twin.merkle import ProofError
    try:
        proved = check_proof(_read_json(proof, "proof"), load_public_key(public_key), _published(checkpoint))
    except ProofError as exc:
        typer.echo(f"PROOF FAILS: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"proof holds: {proved}")


def reconcile_cmd(park_dir: Path = typer.Argument(..., help="park folder with [meters] in park.toml"),
                  ledger: Path = typer.Option(..., "--ledger", help="the meter ledger"),
                  start: str = typer.Option(..., "--from", help="start, ISO 8601 with offset: the model's midnight"),
                  end: str = typer.Option(..., "--to", help="end, ISO 8601 with offset; whole days after --from"),
                  out: Path = typer.Option(Path("reconcile-output"), "--out",
                                           help="folder for reconcile.json, reconcile.md and the PNG plots"),
                  public_key: Path = typer.Option(None, "--public-key",
                                                  help="the ledger's public key (default LEDGER.pub): the ledger is "
                                                       "verified first, tampered data refused")):
    """The twin against its meters over a period: measured against modelled per meter, the boundary balance
    from the meters against the books, the unexplained volume (non-revenue water) per network."""
    from parktwin.twin.ledger_keys import load_public_key
    from parktwin.twin.meter_readings import parse_time_us
    from parktwin.twin.park import load_park
    from parktwin.twin.reconcile import reconcile
    from parktwin.twin.report_reconcile import reconcile_section
    from parktwin.viz.meter_plots import reconcile_pictures
    key = load_public_key(public_key or default_public_key(ledger))
    rec = reconcile(load_park(park_dir), ledger, parse_time_us(start), parse_time_us(end), key)
    out.mkdir(parents=True, exist_ok=True)
    pictures = reconcile_pictures(rec, out)
    (out / "reconcile.json").write_text(json.dumps(rec, indent=1) + "\n")
    lines = [f"# {rec['park']}: reconciliation", ""] + reconcile_section(rec, [(c, p.name) for c, p in pictures])
    (out / "reconcile.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    for name, n in rec["networks"].items():
        share = n.get("unexplained_fraction_of_intake")
        extra = "" if share is None else f" ({100 * share:.2f} % of intake)"
        shown = "n/a (no meter)" if n["unexplained_m3"] is None else f"{n['unexplained_m3']:,.1f} m³{extra}"
        typer.echo(f"{name}: unexplained {shown}")
    typer.echo(f"written: {out / 'reconcile.json'}, {out / 'reconcile.md'}, {len(pictures)} plots")


def register(app: typer.Typer, park_app: typer.Typer) -> None:
    app.add_typer(meters_app, name="meters")
    park_app.command("reconcile")(reconcile_cmd)


def locate_over_time(network: Path, ledger: Path, start: str | None, end: str | None, train_hours: int,
                     window_hours: int, top: int, out: Path | None, backend: str) -> None:
    """`parktwin locate NETWORK --ledger ...`: hourly steps of the ledger's readings, alarms, candidates."""
    import numpy as np

    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.twin.leak_alarm import AlarmOptions, detect_leaks
    from parktwin.twin.meter_readings import format_time_us, parse_time_us
    from parktwin.twin.meter_series import hourly_series
    if start is None or end is None:
        raise ValueError("--ledger needs --from and --to (the period, ISO 8601 with offset)")
    if not network.is_file():
        raise ValueError(f"{network}: no such file")
    net = load_network(network)
    from_us, to_us = parse_time_us(start), parse_time_us(end)
    series, skipped = hourly_series(ledger, net, from_us, to_us)
    options = AlarmOptions(train_steps=train_hours, window_steps=window_hours, top=top)
    result = detect_leaks(net, series, options, SolverOptions(backend=backend))
    typer.echo(f"{len(series.ids)} meters, {len(series.times_s)} hourly steps"
               + (f" ({len(skipped)} ledger meters are not elements of {network.name}: ignored)" if skipped else "")
               + f"; alarm threshold {result.threshold:.3f}, demand level {np.nanmin(result.demand_level):.2f}.."
               f"{np.nanmax(result.demand_level):.2f}")
    if not result.alarms:
        typer.echo("no alarm: no persistent departure from the model")
    for alarm in result.alarms:
        when = format_time_us(from_us + int(alarm.time_s * 1_000_000))
        best = ", ".join(f"{c.junction} ({100 * c.probability:.0f} %, {c.leak_m3s * 1e3:.1f} L/s)"
                         for c in alarm.candidates[:5])
        typer.echo(f"ALARM at {when} (statistic {alarm.statistic:.2f}): most likely {best}")
    if out is not None:
        data = result.as_dict()
        data.update(meters=list(series.ids), start=format_time_us(from_us), step_s=3600)
        for a, alarm in zip(data["alarms"], result.alarms):
            a["time"] = format_time_us(from_us + int(alarm.time_s * 1_000_000))
        out.write_text(json.dumps(data, indent=1) + "\n")
        typer.echo(f"written: {out}")
