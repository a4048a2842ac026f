"""`parktwin park whatif PARK_DIR --ops OPS.json --out DIR`: the HTTP API's what-if operations from a file.

The operations are the API's own (`api.server.models.Operation`, turned into `twin.whatif` operations
by `api.server.whatif`), so a file that the API accepts in `{"operations": [...]}` works here unchanged.
The base park and the changed park run the same way (the same days, or both until their tanks repeat);
the command writes the changed park's indicators.json and balance.json and comparison.json (before,
after and change of every indicator, of the boundary balance and, for a park with a [quality] table, of
the TDS figures of twin.park_quality). Mistakes are ValueErrors naming the
file and the operation, which api.cli prints as one line.
"""

import json  # (no `from __future__ import annotations`: typer must see the Backend type itself)
from pathlib import Path

import typer


def read_operations(path: Path) -> list:
    """The API's operation list from a JSON file: a list, or an object {"operations": [...]}."""
    from pydantic import TypeAdapter, ValidationError

    from parktwin.api.server import models as m
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    if isinstance(data, dict):
        extra = sorted(set(data) - {"operations"})
        if extra:
            raise ValueError(f"{path}: unknown key {extra[0]!r} (expected a list of operations or "
                             "{\"operations\": [...]})")
        if "operations" not in data:
            raise ValueError(f"{path}: no \"operations\" list")
        data = data["operations"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of operations, got {type(data).__name__}")
    try:
        return TypeAdapter(list[m.Operation]).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        # pydantic puts the operation's tag in the location (0.leak.area_m2); the user wrote 0.area_m2.
        loc = ".".join(str(x) for x in err["loc"] if str(x) not in m.OPERATION_TAGS)
        raise ValueError(f"{path}: operations.{loc}: {err['msg']}") from None


def apply_file_operations(park, operations, path: Path):
    """`park` with the operations applied by the API's own code; its errors name the file."""
    from parktwin.api.server.errors import ApiError
    from parktwin.api.server.whatif import apply_operations
    try:
        return apply_operations(park, operations)
    except ApiError as exc:
        raise ValueError(f"{path}: {exc.detail}") from None


def boundary_comparison(base, new) -> dict:
    """Boundary balance parts: before, after, change (m³/d; closure as a fraction)."""
    def flat(b):
        d = b.as_dict()
        out = {**d["in"], **d["out"], "storage_change_m3d": d["storage_change_m3d"],
               "residual_m3d": d["residual_m3d"], "closure": d["closure"]}
        return out
    before, after = flat(base.boundary), flat(new.boundary)
    return {k: {"before": before[k], "after": after[k],
                "change": None if before[k] is None or after[k] is None else after[k] - before[k]}
            for k in before}


def register(park_app: typer.Typer, backend_type, console) -> None:
    @park_app.command("whatif")
    def park_whatif(park_dir: Path = typer.Argument(..., help="park folder"),
                    ops: Path = typer.Option(..., "--ops", help="JSON file: the HTTP API's what-if operations, "
                                             "a list or {\"operations\": [...]}"),
                    out: Path = typer.Option(..., "--out", help="output folder: indicators.json, balance.json "
                                             "(the changed park), comparison.json"),
                    days: int = typer.Option(None, "--days", min=1, help="run N days and report the last "
                                             "(default: until the tank levels repeat day on day)"),
                    snapshot: bool = typer.Option(False, "--snapshot", help="one steady state of daily means"),
                    backend: backend_type = typer.Option(backend_type.auto, "--backend")):
        """Apply what-if operations from a file to a park, run base and changed park, compare."""
        from parktwin.hydraulics.solver import SolverOptions
        from parktwin.twin.coupled import _plain, run_park, write_outputs
        from parktwin.twin.park import load_park
        from parktwin.twin.periodic import Periodicity
        from parktwin.twin.park_quality import compare_quality
        from parktwin.twin.whatif import compare
        park = load_park(park_dir)
        operations = read_operations(ops)
        changed = apply_file_operations(park, operations, ops)
        kwargs = dict(duration_s=0 if snapshot else 86400, options=SolverOptions(backend=backend.value),
                      periodicity=Periodicity(days=days))
        base = run_park(park, **kwargs)
        try:
            new = run_park(changed, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{ops}: the changed park cannot be run: {exc}") from None
        out.mkdir(parents=True, exist_ok=True)
        written = list(write_outputs(new, out))
        comparison = {"park": park.name, "operations": [o.model_dump(mode="json") for o in operations],
                      "days": {"base": base.days, "what_if": new.days},
                      "indicators": compare(base, new), "boundary": boundary_comparison(base, new),
                      "quality": compare_quality(base.quality, new.quality)}
        path = out / "comparison.json"
        path.write_text(json.dumps(_plain(comparison), indent=2, ensure_ascii=False))
        written.append(path)
        from rich.markup import escape
        console.print(f"[bold]{escape(park.name)}[/]: {len(operations)} operation(s) from {escape(str(ops))}")
        for key, d in comparison["indicators"].items():
            if "[" in key and not key.endswith(("[supply]", "[reclaimed]")):
                continue
            if d["before"] is None and d["after"] is None:
                continue
            change = "n/a" if d["change"] is None else f"{d['change']:+.4g}"
            console.print(f"  {escape(key)}: {_fmt(d['before'])} -> {_fmt(d['after'])} ({change}) "
                          f"{escape(str(d['unit']))}", highlight=False)
        b = comparison["boundary"]
        console.print(f"  boundary closure: {_fmt(b['closure']['before'])} -> {_fmt(b['closure']['after'])}",
                      highlight=False)
        for key, d in comparison["quality"].items():
            # Per-enterprise and per-grade TDS is in comparison.json, as the per-enterprise indicators are.
            if "[" in key or d["before"] is None and d["after"] is None:
                continue
            change = "n/a" if d["change"] is None else f"{d['change']:+.4g}"
            console.print(f"  {escape(key)}: {_fmt(d['before'])} -> {_fmt(d['after'])} ({change}) "
                          f"{escape(str(d['unit']))}", highlight=False)
        console.print("written: " + ", ".join(escape(str(p)) for p in written))


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"
