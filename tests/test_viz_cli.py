"""`parktwin render` (issue 6): result files, summary files, park folders and .inp files to PNG/HTML, and
one-line errors (exit code 2) naming the wrong value and the valid choices."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from test_viz_render import _not_blank, renders

REPO = Path(__file__).resolve().parents[1]
PARK = REPO / "twin" / "example_park"
SUPPLY = PARK / "supply.inp"

# Only the test that renders skips where VTK cannot render off screen: the readers and the one-line
# errors are checked everywhere.


def _cli(*args: str) -> None:
    from parktwin.api.cli import main
    main([str(a) for a in args])


def _fails(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as done:
        _cli(*args)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("render")
    full, summary = folder / "base.h5", folder / "mc.h5"
    _cli("solve", SUPPLY, "--out", full)
    _cli("mc", SUPPLY, "--scenarios", "20", "--seed", "3", "--store", "summary", "--service-pressure-m", "30",
         "--out", summary)
    return folder, full, summary


def _picture(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as picture:
        assert picture.size == (1600, 1000)
        return np.asarray(picture.convert("RGB"))


@renders
def test_render_result_summary_park_and_inp(files, capsys):
    folder, full, summary = files
    for source, quantity, name in ((full, "velocity", "velocity.png"),
                                   (summary, "low_pressure_probability", "risk.png"),
                                   (SUPPLY, "elevation", "elevation.png")):
        _cli("render", source, "--quantity", quantity, "--out", folder / name)
        assert f"written: {folder / name}" in capsys.readouterr().out
        _not_blank(_picture(folder / name))
    _cli("render", PARK, "--quantity", "pressure", "--time", "3600", "--out", folder / "park.html")
    assert (folder / "park.html").read_text(encoding="utf-8").count("t = 1 h") >= 1


def test_summary_risk_values_are_the_files_probabilities(files):
    from parktwin.scenarios.summary_store import read_summary
    from parktwin.viz.sources import from_summary_file
    _, _, summary = files
    data = from_summary_file(summary, "low_pressure_probability")
    stats, _ = read_summary(summary)
    np.testing.assert_array_equal(data.values_si, stats["pressure_below_service_prob"][0])
    assert "Monte-Carlo over 20 scenarios" in data.title and "service pressure 30 m" in data.subtitle


def test_render_errors_are_one_line_naming_the_choices(files, capsys):
    folder, full, summary = files
    out = folder / "x.png"
    err = _fails(capsys, "render", full, "--quantity", "pressur", "--out", out)
    assert "'pressur'" in err and "pressure, head" in err
    err = _fails(capsys, "render", full, "--quantity", "pressure", "--time", "5", "--out", out)
    assert "time 5 s" in err and "valid (s): 0" in err
    err = _fails(capsys, "render", full, "--quantity", "pressure", "--scenario", "nope", "--out", out)
    assert "'nope'" in err and "valid: base" in err
    err = _fails(capsys, "render", summary, "--quantity", "pressure", "--out", out)
    assert "low_pressure_probability" in err
    err = _fails(capsys, "render", PARK, "--quantity", "risk", "--out", out)
    assert "'risk'" in err and "reclaimed_share" in err
    err = _fails(capsys, "render", full, "--quantity", "pressure", "--out", folder / "x.jpg")
    assert ".png or an .html" in err
    err = _fails(capsys, "render", folder / "missing.h5", "--quantity", "pressure", "--out", out)
    assert "no such file" in err
    assert not out.exists()
