"""`parktwin render` draws water quality like any other quantity (issue 14): a result file's node/quality at
a report time, a summary's mean quality, the file's own unit on the bar, one-line errors elsewhere."""
from __future__ import annotations

import numpy as np
import pytest

from quality_variants import library_network
from test_viz_render import _not_blank, renders


def _cli(*args) -> None:
    from parktwin.api.cli import main
    main([str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quality-render")
    net1 = library_network("Net1.inp")
    full, snap = folder / "q.h5", folder / "snap.h5"
    _cli("solve", net1, "--duration", "86400", "--out", full)
    _cli("solve", net1, "--out", snap)
    return folder, full, snap


def test_result_file_quality_values_and_unit(files):
    import h5py

    from parktwin.viz.sources import from_result_file
    _, full, _ = files
    data = from_result_file(full, "quality", time_s=7200)
    with h5py.File(full) as f:
        k = list(f["time_s"][()]).index(7200)
        np.testing.assert_array_equal(data.values_si, f["node/quality"][0, k].astype(float))
    assert data.quantity.bar_title == "chemical quality [mg/L]"
    assert np.ptp(data.values_si) > 0.1


def test_snapshot_has_no_quality_to_draw(files, capsys):
    folder, _, snap = files
    with pytest.raises(SystemExit) as done:
        _cli("render", snap, "--quantity", "quality", "--out", folder / "x.png")
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no water quality in this file" in err, err


@renders
def test_render_quality_picture(files, capsys):
    from PIL import Image
    folder, full, _ = files
    _cli("render", full, "--quantity", "quality", "--time", "7200", "--out", folder / "quality.png")
    assert f"written: {folder / 'quality.png'}" in capsys.readouterr().out
    with Image.open(folder / "quality.png") as picture:
        _not_blank(np.asarray(picture.convert("RGB")))
