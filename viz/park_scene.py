"""The park in 3D: terrain, the three networks stacked in layers, enterprises, plants and city links.

Layers, bottom to top: the terrain, then discharge, reclaimed and supply, each drawn at its own
elevations (exaggerated like the terrain) lifted by a fixed gap, so that the three networks laid under the
same streets do not hide one another. An enterprise is a column through its three connection junctions,
topped by a labelled box; plants and the city connection are the networks' reservoirs and tanks, labelled
with their role; city links are arrows across the park's edge.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from parktwin.twin.park_schema import NETWORKS, Park
from parktwin.viz.network_mesh import (extent_m, network_geometry, node_glyphs, node_xy_m, special_nodes, tube_radius_m,
                              vertical_exaggeration)
from parktwin.viz.network_view import display_values, draw_network
from parktwin.viz.options import ParkViewOptions, ViewOptions
from parktwin.viz.quantities import ENTERPRISE, PARK_QUANTITIES, Quantity, get_quantity
from parktwin.viz.render import Figure, add_mapped, finish, new_figure, save
from parktwin.viz.sources import _time_label, hydraulic_values, pick_time

STACK = ("discharge", "reclaimed", "supply")     # bottom to top, above the terrain
HYDRAULIC = ("pressure", "head", "demand", "leak", "flow", "velocity")


def reclaimed_share_fraction(park: Park, result) -> np.ndarray:
    """Per enterprise (park order): reclaimed intake / total intake (NaN for an enterprise with no intake)."""
    by_name = {f.name: f for f in result.allocation.enterprises}
    out = np.full(len(park.enterprises), np.nan)
    for i, e in enumerate(park.enterprises):
        f = by_name[e.name]
        total = f.intake_fresh + f.intake_reclaimed
        if total > 0:
            out[i] = f.intake_reclaimed / total
    return out


def delivered_tds_mg_l(park: Park, result) -> np.ndarray:
    """Per enterprise (park order): TDS of its whole intake, mg/L (NaN for an enterprise with no intake)."""
    q = getattr(result, "quality", None)
    if q is None:
        raise ValueError(f"{park.name}: TDS is not modelled: park.toml has no [quality] table "
                         "(city_fresh_tds_mg_l, city_reclaimed_tds_mg_l, wastewater_tds_mg_l)")
    by_name = {e.name: e.tds_mg_l for e in q.enterprises}
    return np.array([np.nan if by_name[e.name] is None else by_name[e.name] for e in park.enterprises])


ENTERPRISE_VALUES = {"reclaimed_share": reclaimed_share_fraction, "tds": delivered_tds_mg_l}


def terrain_surface(points_xyz: np.ndarray, z_scale: float, cells: int, pad_fraction: float = 0.04):
    """A smooth ground surface through the junctions' (x, y, elevation): linear interpolation on a grid,
    nearest junction outside their hull (the example park's generator made a smooth terrain and sampled it
    at the junctions, so this reproduces it closely)."""
    import pyvista as pv
    from scipy.interpolate import griddata
    xy, z = points_xyz[:, :2], points_xyz[:, 2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = (hi - lo) * pad_fraction + 1.0
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], cells + 1),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], cells + 1))
    gz = griddata(xy, z, (gx, gy), method="linear")
    holes = np.isnan(gz)
    if holes.any():
        gz[holes] = griddata(xy, z, (gx[holes], gy[holes]), method="nearest")
    return pv.StructuredGrid(gx, gy, gz * z_scale)


def _networks(park: Park, result) -> dict:
    """network name -> NetworkArrays, from the run's hydraulics when there is one (same arrays)."""
    from parktwin.hydraulics.compile import load_network
    hyd = getattr(result, "hydraulics", None) or {}
    return {n: hyd[n].net if n in hyd else load_network(park.network_path(n)) for n in NETWORKS}


def _roles(park: Park) -> dict[str, str]:
    """What a reservoir of each network stands for in the park."""
    c = park.city
    return {"supply": f"city fresh water (head {c.fresh_head_m:g} m, up to {c.fresh_capacity_m3d:,.0f} m3/d)",
            "reclaimed": f"park reclaimed plant ({park.reclaimed_plant.capacity_m3d:,.0f} m3/d)",
            "discharge": f"park wastewater plant ({park.wastewater_plant.capacity_m3d:,.0f} m3/d)"}


def _values_for(q: Quantity, park: Park, result, time_s, network_values) -> tuple[dict, str]:
    """network -> SI values to colour it with, and the time label. network_values wins when given."""
    if network_values:
        unknown = set(network_values) - set(NETWORKS)
        if unknown:
            raise ValueError(f"network_values: unknown network(s) {sorted(unknown)}; valid: {', '.join(NETWORKS)}")
        return dict(network_values), ""
    if q.name not in HYDRAULIC:
        return {}, ""
    hyd = result.hydraulics
    times = hyd["supply"].times_s
    k = pick_time(times, time_s, f"the park run ({'snapshot' if len(times) == 1 else '24 h'})")
    out = {n: hydraulic_values(h.net, q, pressure_m=h.pressure_m[k], head_m=h.head_m[k], demand_m3s=h.demand_m3s[k],
                               leak_m3s=h.leak_m3s[k], flow_m3s=h.flow_m3s[k]) for n, h in hyd.items()}
    return out, _time_label(times[k])


def park_figure(park: Park | str | Path, result=None, quantity: str | Quantity = "pressure", title: str = "",
                network_values: dict | None = None, options: ViewOptions = ViewOptions(),
                park_options: ParkViewOptions = ParkViewOptions(), time_s: float | None = None,
                subtitle: str = "") -> Figure:
    """Build (not yet render) the park scene with `quantity` mapped on it. `result`: a ParkRunResult
    (None: the park is run here, 24 h when time_s > 0, else a snapshot); `network_values`: {network: SI
    array per node (or per link)} to colour instead, e.g. a Monte-Carlo risk on the supply network."""
    from parktwin.twin.park import load_park
    park = park if isinstance(park, Park) else load_park(park)
    q = get_quantity(quantity, PARK_QUANTITIES + tuple(n for n in (quantity,) if network_values)) \
        if isinstance(quantity, str) else quantity
    needs_run = (q.name in HYDRAULIC and not network_values) or q.location == ENTERPRISE
    if result is None and needs_run:
        from parktwin.twin.coupled import run_park
        result = run_park(park, duration_s=0 if not time_s else 86400)
    nets = _networks(park, result)
    values, when = _values_for(q, park, result, time_s, network_values)
    shown = {n: display_values(nets[n], v, q) for n, v in values.items()}
    share = ENTERPRISE_VALUES[q.name](park, result) * q.display_factor if q.location == ENTERPRISE else None
    mapped = [v for v in shown.values()] + ([share] if share is not None else [])
    all_shown = np.concatenate(mapped) if mapped else None
    label = "base case" if not network_values else "given values"
    fig = new_figure(title or f"{park.name}: {q.label}, {label}" + (f", {when}" if when else ""),
                     q if all_shown is not None else None, all_shown, options, subtitle)
    try:
        _draw_park(fig, park, nets, shown, share, options, park_options)
    except BaseException:
        fig.plotter.close()    # a render window (an EGL context) per failed picture would pile up in a server
        raise
    return fig


def _draw_park(fig: Figure, park: Park, nets: dict, shown: dict, share, options: ViewOptions,
               park_options: ParkViewOptions) -> None:
    # One plan frame and one vertical scale for the whole park: the three networks share the streets.
    xy = {n: node_xy_m(nets[n]) for n in NETWORKS}
    every_xy = np.concatenate(list(xy.values()))
    extent = extent_m(every_xy)
    ground = np.concatenate([np.column_stack([xy[n][:nets[n].n_junctions], nets[n].elevation_m[:nets[n].n_junctions]])
                             for n in NETWORKS])
    z_scale = vertical_exaggeration(ground[:, 2], extent, options)
    relief = float(np.ptp(ground[:, 2])) * z_scale
    gap = max(park_options.layer_gap_fraction * extent, 1.3 * relief)
    fig.plotter.add_mesh(terrain_surface(ground, z_scale, park_options.terrain_cells),
                         color=park_options.terrain_color, opacity=park_options.terrain_opacity,
                         lighting=options.lighting, smooth_shading=options.lighting)
    colors = dict(park_options.layer_colors)
    quiet = dataclasses.replace(options, show_labels=False)    # the park labels its special nodes itself
    geoms = {}
    for level, n in enumerate(STACK, start=1):
        geoms[n] = network_geometry(nets[n], options, z_offset=level * gap, z_scale=z_scale, xy=xy[n])
        sub = Figure(fig.plotter, quiet, fig.title, fig.quantity, fig.clim, mapped_meshes=fig.mapped_meshes)
        draw_network(sub, geoms[n], shown.get(n), color=colors.get(n, "steelblue"), radius_extent=extent)
        # At the south-east corner, off the network, where plants and city links rarely are.
        corner = (geoms[n].xyz[:, 0].max() + 0.03 * extent, geoms[n].xyz[:, 1].min())
        fig.plotter.add_point_labels(np.array([[corner[0], corner[1], level * gap + relief * 0.5]]),
                                     [f"{n} network"], font_size=14, text_color=colors.get(n, "black"),
                                     shape_opacity=0.0, show_points=False, always_visible=True)
    fig.geometries.update(geoms)
    _draw_enterprises(fig, park, geoms, share, extent, park_options)
    _draw_plants_and_city(fig, park, geoms, extent, park_options)
    finish(fig)


def _draw_enterprises(fig: Figure, park: Park, geoms: dict, share, extent: float, po: ParkViewOptions) -> None:
    import pyvista as pv
    o, p = fig.options, fig.plotter
    size = 5.0 * float(tube_radius_m(np.array([1.0]), extent, o)[0])
    tops, names = [], []
    for e in park.enterprises:
        column = np.array([geoms[n].xyz[geoms[n].net.node_index(e.junctions[n])] for n in STACK if n in e.junctions])
        if len(column) == 0:
            continue
        if len(column) > 1:
            p.add_mesh(pv.lines_from_points(column).tube(radius=size * 0.12), color=po.enterprise_color,
                       lighting=o.lighting)
        tops.append(column[-1] + np.array([0.0, 0.0, size]))
        names.append(e.name)
    if not tops:
        return
    centers = pv.PolyData(np.array(tops))
    if share is not None:
        # Each box carries its enterprise's value on all of its points (glyph copies point data).
        kept = [i for i, e in enumerate(park.enterprises) if e.name in names]
        centers.point_data[fig.scalars_name] = np.asarray(share, dtype=float)[kept]
    boxes = centers.glyph(geom=pv.Cube(x_length=size * 1.6, y_length=size * 1.6, z_length=size), orient=False,
                          scale=False)
    if share is not None:
        add_mapped(fig, boxes)
    else:
        p.add_mesh(boxes, color=po.enterprise_color, lighting=o.lighting)
    if o.show_labels:
        p.add_point_labels(np.array(tops) + np.array([0.0, 0.0, size]), names, font_size=11, point_size=1,
                           shape_opacity=0.6, show_points=False, always_visible=True)


def _draw_plants_and_city(fig: Figure, park: Park, geoms: dict, extent: float, po: ParkViewOptions) -> None:
    o, p = fig.options, fig.plotter
    roles = _roles(park)
    size = 7.0 * float(tube_radius_m(np.array([1.0]), extent, o)[0])
    every_xy = np.concatenate([g.xyz[:, :2] for g in geoms.values()])
    lo, hi = every_xy.min(axis=0), every_xy.max(axis=0)
    labels, where = [], []
    for n, g in geoms.items():
        tanks, reservoirs = special_nodes(g)
        for nodes, shape, color in ((tanks, "cylinder", "slategray"), (reservoirs, "cube", po.plant_color)):
            glyphs = node_glyphs(g, nodes, shape, size)
            if glyphs is not None:
                p.add_mesh(glyphs, color=color, lighting=o.lighting)
        for i in tanks:
            labels.append(f"{n}: tank {g.net.node_ids[i]}")
            where.append(g.xyz[i])
        for i in reservoirs:
            labels.append(f"{roles[n]} [{g.net.node_ids[i]}]")
            where.append(g.xyz[i])
            _city_arrow(p, n, g.xyz[i], lo, hi, extent, park, po, o, labels, where)
    if o.show_labels and labels:
        p.add_point_labels(np.array(where) + np.array([0.0, 0.0, size]), labels, font_size=11, point_size=1,
                           shape_opacity=0.6, show_points=False, always_visible=True)


def _city_arrow(p, network: str, at: np.ndarray, lo, hi, extent, park: Park, po: ParkViewOptions, o,
                labels: list, where: list) -> None:
    """City links at the plant and connection sites: an arrow across the nearest park edge, into the park
    for water the city gives, out of it for water the park sends."""
    import pyvista as pv
    c = park.city
    links = {"supply": [("in", f"city fresh water in: up to {c.fresh_capacity_m3d:,.0f} m3/d")],
             "reclaimed": [("in", f"city reclaimed water offer: {c.reclaimed_offer_m3d:,.0f} m3/d"),
                           ("out", f"reclaimed water to city: {c.reclaimed_to_city_m3d:,.0f} m3/d")],
             "discharge": [("out", f"overflow to city wastewater plant: up to {c.wastewater_capacity_m3d:,.0f} m3/d")]}
    # Outward direction: towards the nearest edge of the park's bounding box.
    gaps = np.array([at[0] - lo[0], hi[0] - at[0], at[1] - lo[1], hi[1] - at[1]])
    outward = np.array(((-1.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 1.0, 0.0)))[int(np.argmin(gaps))]
    length = 0.12 * extent
    for k, (way, text) in enumerate(links.get(network, [])):
        side = np.cross(outward, [0.0, 0.0, 1.0]) * (k - 0.5 * (len(links[network]) - 1)) * 0.06 * extent
        base = at + side + (outward * length if way == "in" else 0.0) + outward * 0.02 * extent
        direction = -outward if way == "in" else outward
        arrow = pv.Arrow(start=base, direction=direction, scale=length, tip_length=0.3, tip_radius=0.08,
                         shaft_radius=0.03)
        p.add_mesh(arrow, color=po.city_color, lighting=o.lighting)
        labels.append(text)
        # Label at the arrow's outer end: the park's edge side, away from the plant's own label.
        where.append(base + (outward * length * 1.5 if way == "out" else 0.0))


def render_park(park: Park | str | Path, result=None, quantity: str | Quantity = "pressure",
                title: str | None = None, out: Path | str = Path("park.png"), network_values: dict | None = None,
                options: ViewOptions = ViewOptions(), park_options: ParkViewOptions = ParkViewOptions(),
                time_s: float | None = None, subtitle: str = "") -> Path:
    """Render the park scene to `out` (.png or .html); returns the path written. See park_figure."""
    from parktwin.viz.render import check_out
    out = check_out(out)
    fig = park_figure(park, result, quantity, title or "", network_values, options, park_options, time_s, subtitle)
    return save(fig, out)
