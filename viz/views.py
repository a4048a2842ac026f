"""`render_file`: whatever the user points at (result file, summary file, park folder, .inp) to a picture.

The command line's `parktwin render` is this function; it decides what the path is and hands over to the
network or park view.
"""
from __future__ import annotations

from pathlib import Path

from parktwin.viz.options import ViewOptions
from parktwin.viz.quantities import PARK_QUANTITIES, get_quantity


def source_kind(path) -> str:
    """'park', 'inp', 'summary' or 'full'; a ValueError saying what was expected otherwise."""
    from parktwin.viz.sources import file_kind
    path = Path(path)
    if path.is_dir():
        if not (path / "park.toml").is_file():
            raise ValueError(f"{path}: a folder to render must be a park folder (park.toml, supply.inp, "
                             "reclaimed.inp, discharge.inp)")
        return "park"
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if path.suffix.lower() == ".inp":
        return "inp"
    return file_kind(path)


def render_file(path, quantity: str, time_s: float | None = None, scenario: str | None = None,
                out: Path | str = Path("view.png"), options: ViewOptions = ViewOptions(),
                title: str | None = None) -> Path:
    """Render RESULT_OR_PARK: a full result .h5 (one scenario at one report time), a Monte-Carlo summary
    .h5 (a statistic), a park folder (the park is run: a snapshot, or 24 h for time_s > 0) or a plain .inp
    (elevations, or its base case solved). Writes `out` (.png or .html) and returns it."""
    from parktwin.viz.render import check_out
    out = check_out(out)
    kind = source_kind(path)
    if kind == "park":
        from parktwin.viz.park_scene import render_park
        if scenario is not None:
            raise ValueError(f"{path}: a park folder is drawn for its base case only; it has no scenario "
                             f"{scenario!r}; omit --scenario")
        get_quantity(quantity, PARK_QUANTITIES, f"park {path}")
        return render_park(path, None, quantity, title, out, options=options, time_s=time_s)
    from parktwin.viz import sources
    from parktwin.viz.network_view import render_network
    reader = {"inp": sources.from_inp, "summary": sources.from_summary_file, "full": sources.from_result_file}[kind]
    data = reader(path, quantity, time_s, scenario)
    return render_network(data.net, data.values_si, data.quantity, title or data.title, out, options, data.subtitle)
