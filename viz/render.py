"""Off-screen rendering: a figure (plotter + what it shows) to PNG or to a self-contained HTML page.

PyVista is imported only here, lazily, after choosing VTK's EGL window: EGL renders without an X display
(headless servers, CI), which is the only way these pictures are made.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parktwin.viz.options import ViewOptions
from parktwin.viz.quantities import Quantity

SUFFIXES = (".png", ".html")


def pyvista():
    """pyvista, set up for off-screen rendering (EGL unless the user chose another VTK window)."""
    # Must be set before VTK creates its first render window; setdefault keeps a user's own choice.
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv
    pv.OFF_SCREEN = True
    return pv


def check_out(out) -> Path:
    """The output path, if its suffix is one we write and its folder exists; a ValueError otherwise."""
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{out}: the picture must be a .png or an .html file")
    if not out.parent.is_dir():
        raise ValueError(f"{out}: the directory {out.parent} does not exist")
    return out


def color_range(values: np.ndarray | None, options: ViewOptions) -> tuple[float, float] | None:
    """The colour range in displayed units: options.clim, else the finite data range (widened a little
    when the data are constant, since VTK needs lo < hi)."""
    if options.clim is not None:
        return (float(options.clim[0]), float(options.clim[1]))
    if values is None:
        return None
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        pad = max(abs(lo) * 0.01, 1e-6)
        lo, hi = lo - pad, hi + pad
    return (lo, hi)


@dataclass
class Figure:
    """A plotter being built, and what its colours mean (the tests read colours back through this)."""

    plotter: object
    options: ViewOptions
    title: str
    quantity: Quantity | None = None
    clim: tuple[float, float] | None = None
    subtitle: str = ""
    mapped_meshes: list = field(default_factory=list)   # meshes coloured by the quantity
    geometries: dict = field(default_factory=dict)      # network name -> NetworkGeometry (where nodes are drawn)

    @property
    def scalars_name(self) -> str:
        return self.quantity.bar_title if self.quantity is not None else "value"

    def mesh_kwargs(self) -> dict:
        """add_mesh arguments shared by everything coloured by the quantity: one colour map, one range."""
        return dict(scalars=self.scalars_name, cmap=self.quantity.cmap, clim=self.clim,
                    nan_color=self.options.nan_color, show_scalar_bar=False,
                    lighting=self.options.lighting)


def new_figure(title: str, quantity: Quantity | None, display_values: np.ndarray | None,
               options: ViewOptions, subtitle: str = "") -> Figure:
    pv = pyvista()
    plotter = pv.Plotter(off_screen=True, window_size=list(options.window_size))
    plotter.set_background(options.background)
    clim = color_range(display_values, options) if quantity is not None else None
    return Figure(plotter, options, title, quantity, clim, subtitle)


def add_mapped(fig: Figure, mesh, **kwargs):
    """Add a mesh coloured by the figure's quantity (its point array fig.scalars_name)."""
    actor = fig.plotter.add_mesh(mesh, **fig.mesh_kwargs(), **kwargs)
    fig.mapped_meshes.append(actor)
    return actor


def finish(fig: Figure) -> None:
    """Title, scalar bar and camera: the parts every figure has."""
    p, o = fig.plotter, fig.options
    p.add_text(fig.title, position="upper_edge", font_size=12, color="black")
    if fig.subtitle:
        p.add_text(fig.subtitle, position="lower_left", font_size=8, color="dimgray")
    if fig.quantity is not None and o.show_scalar_bar and fig.mapped_meshes:
        p.add_scalar_bar(title=fig.quantity.bar_title, mapper=fig.mapped_meshes[0].mapper, color="black",
                         vertical=True, position_x=0.86, position_y=0.15, height=0.7, width=0.06,
                         title_font_size=14, label_font_size=12, n_labels=5, fmt="%.3g")
    set_camera(p, o.camera)


def set_camera(plotter, camera: str) -> None:
    if camera == "top":
        plotter.view_xy()
    elif camera == "oblique":
        # From the south-south-west, 35 degrees above the horizon: relief and stacked layers show, and
        # north stays roughly up as on a map.
        plotter.view_vector((-0.35, -1.0, 0.85), viewup=(0.0, 0.0, 1.0))
    else:
        raise ValueError(f"unknown camera {camera!r}; valid: oblique, top")
    plotter.reset_camera()
    plotter.camera.zoom(1.15)


def save(fig: Figure, out) -> Path:
    """Write the figure to `out` (.png or .html) and close its plotter.

    The picture is written beside `out` under a temporary name and renamed into place, so `out` is
    either the whole picture or untouched (an earlier picture is not half overwritten by a failed one)."""
    out = check_out(out)
    partial = out.with_name(f".{out.stem}.{os.getpid()}-{threading.get_ident()}.partial{out.suffix}")
    try:
        if out.suffix.lower() == ".png":
            fig.plotter.screenshot(str(partial))
        else:
            from parktwin.viz.html_export import write_html
            fig.plotter.render()
            write_html(fig.plotter, partial, fig.title, fig.subtitle)
        os.replace(partial, out)
    finally:
        fig.plotter.close()
        partial.unlink(missing_ok=True)
    return out


def world_to_pixel(plotter, xyz) -> tuple[int, int]:
    """(row, column) of a world point in a screenshot of `plotter` (row 0 at the top)."""
    from vtkmodules.vtkRenderingCore import vtkCoordinate
    coordinate = vtkCoordinate()
    coordinate.SetCoordinateSystemToWorld()
    coordinate.SetValue(*map(float, xyz))
    x, y = coordinate.GetComputedDoubleDisplayValue(plotter.renderer)
    height = plotter.window_size[1]
    return int(round(height - 1 - y)), int(round(x))
