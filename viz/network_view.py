"""One network drawn into a figure: tubes, junctions, tanks and reservoirs, coloured by a quantity.

Used alone (`render_network`) and once per layer by the park scene.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.viz.network_mesh import (NetworkGeometry, junction_points, link_values_from_nodes, network_geometry,
                              node_glyphs, pipe_tubes, special_nodes, tube_radius_m)
from parktwin.viz.options import ViewOptions
from parktwin.viz.quantities import LINK, NODE, Quantity, get_quantity
from parktwin.viz.render import Figure, add_mapped, finish, new_figure, save


def display_values(net: NetworkArrays, values, quantity: Quantity) -> np.ndarray | None:
    """SI values -> displayed unit, checked against the network's node or link count."""
    if values is None:
        return None
    v = np.asarray(values, dtype=float)
    expected = {NODE: net.n_nodes, LINK: net.n_links}.get(quantity.location)
    if expected is None:
        raise ValueError(f"quantity {quantity.name!r} is per {quantity.location}, not per node or link of a network")
    if v.shape != (expected,):
        raise ValueError(f"{net.name}: {quantity.name} values have shape {v.shape}; the network has "
                         f"{expected} {quantity.location}s")
    shown = (np.abs(v) if quantity.magnitude else v) * quantity.display_factor
    if quantity.location == NODE:
        # Tanks and reservoirs are drawn as glyphs of their own; their pressure (0 at a reservoir) or level
        # would stretch the colour range and paint their outlet pipes with a value no junction has.
        shown[net.n_junctions:] = np.nan
    return shown


def draw_network(fig: Figure, geom: NetworkGeometry, values_display: np.ndarray | None, *,
                 color: str = "steelblue", label_prefix: str = "", radius_extent: float | None = None) -> None:
    """Add one network to the figure. values_display: per node or per link (fig.quantity.location), in
    the displayed unit; None draws the network in `color`."""
    o, p, net = fig.options, fig.plotter, geom.net
    q = fig.quantity if values_display is not None else None
    name = fig.scalars_name
    if q is not None and q.location == NODE:
        ends = link_values_from_nodes(net, values_display)
        # A pipe from a tank or reservoir (no colour value) takes its junction end's value along its length.
        ends = np.where(np.isnan(ends), ends[:, ::-1], ends)
        tubes = pipe_tubes(geom, o, ends, name, radius_extent)
        add_mapped(fig, tubes, smooth_shading=o.lighting)
        add_mapped(fig, junction_points(geom, values_display, name), point_size=o.junction_point_size,
                   render_points_as_spheres=True)
    elif q is not None and q.location == LINK:
        tubes = pipe_tubes(geom, o, values_display, name, radius_extent)
        add_mapped(fig, tubes, smooth_shading=o.lighting)
        p.add_mesh(junction_points(geom), color="dimgray", point_size=o.junction_point_size * 0.6,
                   render_points_as_spheres=True, lighting=o.lighting)
    else:
        p.add_mesh(pipe_tubes(geom, o, None, name, radius_extent), color=color, smooth_shading=o.lighting,
                   lighting=o.lighting)
        p.add_mesh(junction_points(geom), color="dimgray", point_size=o.junction_point_size * 0.6,
                   render_points_as_spheres=True, lighting=o.lighting)
    draw_special_nodes(fig, geom, label_prefix, radius_extent)


def draw_special_nodes(fig: Figure, geom: NetworkGeometry, label_prefix: str = "",
                       radius_extent: float | None = None) -> None:
    """Tanks as cylinders, reservoirs as cubes, labelled with their ids (unless there are too many)."""
    o, p = fig.options, fig.plotter
    size = 6.0 * float(tube_radius_m(np.array([1.0]), radius_extent or geom.extent_m, o)[0])
    tanks, reservoirs = special_nodes(geom)
    for nodes, shape, color in ((tanks, "cylinder", "slategray"), (reservoirs, "cube", "navy")):
        glyphs = node_glyphs(geom, nodes, shape, size)
        if glyphs is not None:
            p.add_mesh(glyphs, color=color, lighting=o.lighting)
    labelled = np.concatenate([tanks, reservoirs])
    if o.show_labels and 0 < len(labelled) <= o.max_labels:
        kinds = ["tank"] * len(tanks) + ["reservoir"] * len(reservoirs)
        texts = [f"{label_prefix}{geom.net.node_ids[i]} ({k})" for i, k in zip(labelled, kinds)]
        p.add_point_labels(geom.xyz[labelled] + np.array([0.0, 0.0, size]), texts, font_size=11,
                           point_size=1, shape_opacity=0.6, always_visible=True, show_points=False)


def network_figure(net: NetworkArrays, values=None, quantity: str | Quantity = "pressure", title: str = "",
                   options: ViewOptions = ViewOptions(), subtitle: str = "") -> tuple[Figure, NetworkGeometry]:
    """Build (not yet render) the figure of one network with `values` (SI, per node or link) mapped on it."""
    q = get_quantity(quantity) if isinstance(quantity, str) else quantity
    shown = display_values(net, values, q)
    fig = new_figure(title or net.name, q if shown is not None else None, shown, options, subtitle)
    try:
        geom = network_geometry(net, options)
        fig.geometries[net.name] = geom
        draw_network(fig, geom, shown)
        finish(fig)
    except BaseException:
        fig.plotter.close()    # a render window (an EGL context) per failed picture would pile up in a server
        raise
    return fig, geom


def render_network(net_or_inp_path, values=None, quantity: str | Quantity = "pressure", title: str | None = None,
                   out: Path | str = Path("network.png"), options: ViewOptions = ViewOptions(),
                   subtitle: str = "") -> Path:
    """Render one network (NetworkArrays or an .inp path) to `out` (.png or .html), with `values` (SI,
    one per node or per link as the quantity says) coloured on it; values=None draws the network alone.
    Returns the path written."""
    from parktwin.viz.render import check_out
    out = check_out(out)
    if isinstance(net_or_inp_path, NetworkArrays):
        net = net_or_inp_path
    else:
        from parktwin.viz.sources import load_inp
        net = load_inp(net_or_inp_path)
    fig, _ = network_figure(net, values, quantity, title or net.name, options, subtitle)
    return save(fig, out)
