"""3D views rendered off screen (issue 6): pictures of the right size, not blank, and coloured by the data.

The colour checks read pixels back: each figure is drawn with flat colours (lighting off) and a plan view,
the junction's world position is projected to its pixel, and the pixel's colour is located in the colour
map. A low-pressure junction must fall in the map's low end, a high one in its high end, and one in the
middle in the middle: the colour range follows the data.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parktwin.viz.probe import offscreen_problem

REPO = Path(__file__).resolve().parents[1]
PARK = REPO / "twin" / "example_park"
SUPPLY = PARK / "supply.inp"

_PROBLEM = offscreen_problem()
# Only on the tests that render: the geometry and import tests below must run (and can fail) anywhere.
renders = pytest.mark.skipif(bool(_PROBLEM), reason=_PROBLEM or "renders")


def _flat(**changes):
    from parktwin.viz.options import ViewOptions
    base = dict(window_size=(800, 600), camera="top", lighting=False, show_labels=False)
    base.update(changes)
    return ViewOptions(**base)


def _lut(cmap: str) -> np.ndarray:
    """The 256 colours VTK's lookup table gets from the matplotlib map (what PyVista builds), as 0-255."""
    import matplotlib
    return np.asarray(matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0)


def _map_position(img: np.ndarray, row: int, col: int, lut: np.ndarray, reach: int = 2) -> tuple[float, float]:
    """(position 0..1 in the colour map, colour distance) of the pixel near (row, col) that best matches
    a colour of the map: the junction's own pixel, not an anti-aliased edge or the background."""
    best = (np.nan, np.inf)
    for r in range(max(row - reach, 0), min(row + reach + 1, img.shape[0])):
        for c in range(max(col - reach, 0), min(col + reach + 1, img.shape[1])):
            d = np.linalg.norm(lut - img[r, c, :3].astype(float), axis=1)
            k = int(np.argmin(d))
            if d[k] < best[1]:
                best = (k / (len(lut) - 1), float(d[k]))
    return best


def _not_blank(img: np.ndarray) -> None:
    colours = np.unique(img[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 20, f"only {len(colours)} distinct colours: the picture is (nearly) blank"
    background = np.all(img[..., :3] == 255, axis=-1).mean()
    assert background < 0.97, f"{background:.1%} of the picture is background"


def _junctions(net, how_many: int) -> list[int]:
    """Junctions spread over the network (first, middle, last), away from each other."""
    nj = net.n_junctions
    return [int(i) for i in np.linspace(0, nj - 1, how_many).round()]


@renders
def test_network_colours_follow_the_data():
    from parktwin.hydraulics.compile import load_network
    from parktwin.viz.network_view import network_figure
    from parktwin.viz.render import world_to_pixel
    net = load_network(SUPPLY)
    low, mid, high = _junctions(net, 3)
    pressure = np.full(net.n_nodes, 40.0)
    pressure[low], pressure[mid], pressure[high] = 5.0, 50.0, 95.0
    fig, geom = network_figure(net, pressure, "pressure", "colour check", _flat())
    assert fig.clim == (5.0, 95.0)            # the range is the junctions' range
    img = fig.plotter.screenshot(return_img=True)
    try:
        assert img.shape[:2] == (600, 800)
        _not_blank(img)
        lut = _lut("RdYlBu")
        for node, expected in ((low, 0.0), (mid, 0.5), (high, 1.0)):
            position, distance = _map_position(img, *world_to_pixel(fig.plotter, geom.xyz[node]), lut)
            assert distance < 25.0, f"{net.node_ids[node]}: no colour-map colour at its pixel ({distance:.0f})"
            assert abs(position - expected) < 0.08, (net.node_ids[node], position, expected)
    finally:
        fig.plotter.close()


@renders
def test_lowest_pressure_of_a_solved_result_is_drawn_in_the_low_end(tmp_path):
    from parktwin.api.cli import main
    from parktwin.viz.network_view import network_figure
    from parktwin.viz.render import world_to_pixel
    from parktwin.viz.sources import from_result_file
    out = tmp_path / "base.h5"
    main(["solve", str(SUPPLY), "--out", str(out)])   # returns normally on success
    assert out.is_file()
    data = from_result_file(out, "pressure")
    assert "scenario base" in data.title and "t = 0 s" in data.title
    nj = data.net.n_junctions
    lowest, highest = int(np.argmin(data.values_si[:nj])), int(np.argmax(data.values_si[:nj]))
    fig, geom = network_figure(data.net, data.values_si, data.quantity, data.title, _flat())
    img = fig.plotter.screenshot(return_img=True)
    try:
        lut = _lut(data.quantity.cmap)
        lo_pos, lo_dist = _map_position(img, *world_to_pixel(fig.plotter, geom.xyz[lowest]), lut)
        hi_pos, hi_dist = _map_position(img, *world_to_pixel(fig.plotter, geom.xyz[highest]), lut)
        assert lo_dist < 25.0 and hi_dist < 25.0
        assert lo_pos < 0.08, f"lowest-pressure junction drawn at {lo_pos:.2f} of the colour map"
        assert hi_pos > 0.92, f"highest-pressure junction drawn at {hi_pos:.2f} of the colour map"
    finally:
        fig.plotter.close()


@renders
def test_render_network_png_has_the_window_size_and_is_not_blank(tmp_path):
    from PIL import Image
    from parktwin.viz import render_network
    from parktwin.viz.options import ViewOptions
    out = render_network(SUPPLY, None, "pressure", "supply network", tmp_path / "net.png",
                         ViewOptions(window_size=(640, 400)))
    assert out == tmp_path / "net.png"
    with Image.open(out) as picture:
        assert picture.size == (640, 400)
        _not_blank(np.asarray(picture.convert("RGB")))


def _clear_junctions(net, park_dir) -> tuple[int, int]:
    """Two junctions of the top layer that no glyph can hide: more than 300 m from every tank, reservoir
    and enterprise connection (their boxes, arrows and labels stand above the layer), far apart."""
    from parktwin.twin.park import load_park
    park = load_park(park_dir)
    nj = net.n_junctions
    xy = np.asarray(net.xy_m, float)
    busy = [net.node_index(e.junctions["supply"]) for e in park.enterprises] + list(range(nj, net.n_nodes))
    clearance = np.min(np.linalg.norm(xy[:nj, None, :] - xy[None, busy, :], axis=-1), axis=1)
    clear = np.flatnonzero(clearance > 300.0)
    assert len(clear) >= 2, "no junction clear of glyphs"
    a = int(clear[0])
    b = int(clear[np.argmax(np.linalg.norm(xy[clear] - xy[a], axis=1))])
    return a, b


@renders
def test_park_scene_maps_network_values_onto_the_supply_layer(tmp_path):
    from parktwin.hydraulics.compile import load_network
    from parktwin.viz.park_scene import park_figure
    from parktwin.viz.render import world_to_pixel
    supply = load_network(SUPPLY)
    risk = np.full(supply.n_nodes, 0.5)
    low, high = _clear_junctions(supply, PARK)
    risk[low], risk[high] = 0.0, 1.0
    fig = park_figure(PARK, None, "low_pressure_probability", "risk check",
                      network_values={"supply": risk}, options=_flat())
    img = fig.plotter.screenshot(return_img=True)
    try:
        assert img.shape[:2] == (600, 800)
        _not_blank(img)
        assert fig.clim == (0.0, 1.0)
        # The supply layer is on top: in a plan view its junctions are what the camera sees.
        geom = fig.geometries["supply"]
        lut = _lut("YlOrRd")
        for node, expected in ((low, 0.0), (high, 1.0)):
            xyz = geom.xyz[node]
            position, distance = _map_position(img, *world_to_pixel(fig.plotter, xyz), lut)
            assert distance < 25.0 and abs(position - expected) < 0.08, (supply.node_ids[node], position)
    finally:
        fig.plotter.close()


@renders
def test_render_park_png_and_html(tmp_path):
    from PIL import Image
    from parktwin.viz import render_park
    from parktwin.viz.options import ViewOptions
    png = render_park(PARK, quantity="reclaimed_share", title="example park, reclaimed share",
                      out=tmp_path / "park.png", options=ViewOptions(window_size=(900, 600)))
    with Image.open(png) as picture:
        assert picture.size == (900, 600)
        _not_blank(np.asarray(picture.convert("RGB")))
    page = render_park(PARK, quantity="pressure", out=tmp_path / "park.html")
    text = page.read_text(encoding="utf-8")
    assert "OfflineLocalView.load" in text and "parktwin-title" in text and "pressure, base case" in text
    # The scene itself: the zipped vtk.js scene embedded in the page names the quantity and its unit
    # (vtk.js titles its scalar bar with the array name).
    import base64
    import io
    import re
    import zipfile
    encoded = re.search(r'const base64Str = "([^"]+)"', text).group(1)
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded))) as archive:
        scene = archive.read("index.json").decode()
    assert '"pressure [m]"' in scene


def test_network_without_coordinates_is_a_clear_error_and_partial_ones_are_filled(tmp_path):
    from parktwin.hydraulics.compile import load_network
    from parktwin.viz.network_mesh import NoCoordinates, node_xy_m
    body = ("[JUNCTIONS]\nA 10 1\nB 12 1\nC 11 1\n[RESERVOIRS]\nR 50\n[PIPES]\nP1 R A 100 200 100\n"
            "P2 A B 100 150 100\nP3 B C 100 100 100\n[OPTIONS]\nUNITS LPS\n")
    bare = tmp_path / "bare.inp"
    bare.write_text(body + "[END]\n")
    with pytest.raises(NoCoordinates, match="no node coordinates"):
        node_xy_m(load_network(bare, use_cache=False))
    partial = tmp_path / "partial.inp"
    partial.write_text(body + "[COORDINATES]\nR 1000 1000\nA 1100 1000\nC 1300 1000\n[END]\n")
    xy = node_xy_m(load_network(partial, use_cache=False))
    net = load_network(partial, use_cache=False)
    # WNTR puts B at (0, 0); it is drawn between its placed neighbours A and C instead.
    assert np.allclose(xy[net.node_index("B")], [1200.0, 1000.0])


def test_importing_viz_does_not_load_pyvista():
    # `import viz` and what the command line imports before a picture is asked for (the quantity table
    # for --help, the source readers) load neither VTK nor the web stack.
    code = ("import sys, viz, viz.quantities, viz.options, viz.views, viz.sources, api.cli_render; "
            "from viz import QUANTITIES, ViewOptions; "
            "print(*[m in sys.modules for m in ('pyvista', 'vtkmodules', 'fastapi', 'cupy', 'ray')])")
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    assert done.stdout.split() == ["False"] * 5, done.stdout


@renders
def test_a_failed_save_leaves_no_file_that_looks_complete(tmp_path, monkeypatch):
    import parktwin.viz.html_export as html_export
    from parktwin.hydraulics.compile import load_network
    from parktwin.viz.network_view import network_figure
    from parktwin.viz.render import save
    out = tmp_path / "net.html"
    out.write_text("the earlier picture")

    def broken(plotter, path, title, subtitle=""):
        Path(path).write_text("<html>half a page")
        raise RuntimeError("disk full")
    monkeypatch.setattr(html_export, "write_html", broken)
    fig, _ = network_figure(load_network(SUPPLY), None, "pressure", "save check", _flat())
    with pytest.raises(RuntimeError, match="disk full"):
        save(fig, out)
    assert out.read_text() == "the earlier picture"
    assert list(tmp_path.iterdir()) == [out], list(tmp_path.iterdir())


@pytest.mark.parametrize("change, words", [
    ({"window_size": (0, 400)}, "window_size"),
    ({"camera": "fisheye"}, "camera"),
    ({"vertical_exaggeration": -1.0}, "vertical_exaggeration"),
    ({"tube_radius_fraction": 0.0}, "tube_radius_fraction"),
    ({"clim": (5.0, 5.0)}, "clim"),
    ({"clim": (0.0, float("nan"))}, "clim"),
])
def test_bad_view_options_are_refused_naming_the_field(change, words):
    from parktwin.viz.options import ViewOptions
    with pytest.raises(ValueError, match=words):
        ViewOptions(**change)
