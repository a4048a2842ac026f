"""`parktwin render`: a picture (PNG) or an interactive page (HTML) of a result, a park or a network.

Kept out of api/cli.py, which registers it with one line. Wrong choices raise ValueError, which
api.cli.main prints as one line with exit code 2, like every other user error.
"""
from __future__ import annotations

from pathlib import Path

import typer

from parktwin.viz.quantities import QUANTITIES

_QUANTITY_HELP = ("what to colour: " + ", ".join(QUANTITIES) +
                  " (which ones a source holds: result file: pressure, head, demand, leak, flow, velocity, "
                  "elevation, quality; summary file: the statistics and elevation; park: the hydraulic ones, "
                  "elevation, reclaimed_share, tds (delivered TDS per enterprise, a park with [quality]); .inp: "
                  "elevation, or its base case solved)")


def register(app: typer.Typer) -> None:
    @app.command("render")
    def render(source: Path = typer.Argument(..., metavar="RESULT_OR_PARK",
                                             help="result .h5, Monte-Carlo summary .h5, park folder or .inp"),
               quantity: str = typer.Option(..., "--quantity", help=_QUANTITY_HELP),
               out: Path = typer.Option(..., "--out", help="FILE.png (picture) or FILE.html (interactive, offline)"),
               time: float = typer.Option(None, "--time", help="report time in seconds (default: the first)"),
               scenario: str = typer.Option(None, "--scenario", help="scenario id (default: the first)")):
        """Render a network, a park or a result in 3D, off screen, to a PNG or a self-contained HTML page."""
        from parktwin.viz.views import render_file
        written = render_file(source, quantity, time_s=time, scenario=scenario, out=out)
        typer.echo(f"written: {written}")
