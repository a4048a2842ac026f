"""A compiled network as PyVista geometry: pipes as tubes sized by diameter, junctions as points, tanks
and reservoirs as glyphs.

Each link gets its own two points (2 L points in all) rather than sharing the node points: a link then
carries its own radius, and either its own value (link quantities) or the values of its two end nodes
(node quantities, drawn as a gradient along the pipe), without VTK averaging neighbouring links.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parktwin.hydraulics.network import NetworkArrays, NodeKind
from parktwin.viz.options import ViewOptions

RADIUS = "tube_radius_m"   # point array that sizes the tubes


class NoCoordinates(ValueError):
    """The network (or too much of it) has no coordinates to draw it with."""


def node_xy_m(net: NetworkArrays) -> np.ndarray:
    """[N, 2] plan coordinates. Nodes without coordinates are placed at the mean of their placed
    neighbours, repeatedly (a node in a pipe run without [COORDINATES] lands between its ends); a network
    with no coordinates at all, or with a part no placed node reaches, is a NoCoordinates error."""
    xy = np.array(net.xy_m, dtype=float, copy=True)
    missing = np.isnan(xy).any(axis=1) | _unplaced_origin(xy)
    if len(xy) > 1 and not missing.all() and np.ptp(xy[~missing], axis=0).max() == 0.0:
        missing[:] = True     # every node on one spot: no layout at all
    if not missing.any():
        return xy
    if missing.all():
        raise NoCoordinates(f"{net.name}: the network has no node coordinates ([COORDINATES] section), so it "
                            "cannot be drawn")
    start, end = np.asarray(net.link_start), np.asarray(net.link_end)
    while missing.any():
        # Sum the positions of placed neighbours of every missing node (both link directions).
        total = np.zeros_like(xy)
        count = np.zeros(len(xy))
        for a, b in ((start, end), (end, start)):
            ok = missing[a] & ~missing[b]
            np.add.at(total, a[ok], xy[b[ok]])
            np.add.at(count, a[ok], 1.0)
        newly = missing & (count > 0)
        if not newly.any():
            raise NoCoordinates(f"{net.name}: {int(missing.sum())} nodes have no coordinates and no placed "
                                f"neighbour (e.g. {net.node_ids[int(np.flatnonzero(missing)[0])]!r}); "
                                "cannot draw the network")
        xy[newly] = total[newly] / count[newly, None]
        missing &= ~newly
    return xy


def _unplaced_origin(xy: np.ndarray) -> np.ndarray:
    """Nodes WNTR placed at (0, 0) for want of coordinates: at the origin while the origin lies well
    outside the other nodes' bounding box (a real node at (0, 0) sits among its neighbours)."""
    at_origin = np.all(xy == 0.0, axis=1)
    others = xy[~at_origin & ~np.isnan(xy).any(axis=1)]
    if not at_origin.any() or len(others) == 0:
        return at_origin if len(others) == 0 and len(xy) > 1 else np.zeros(len(xy), bool)
    lo, hi = others.min(axis=0), others.max(axis=0)
    margin = 0.5 * (hi - lo) + 1.0
    outside = np.any((0.0 < lo - margin) | (0.0 > hi + margin))
    return at_origin if outside else np.zeros(len(xy), bool)


def extent_m(xy: np.ndarray) -> float:
    """Diagonal of the plan bounding box (at least 1 m, so a one-node network still has a scale)."""
    span = np.nanmax(xy, axis=0) - np.nanmin(xy, axis=0)
    return max(float(np.hypot(*span)), 1.0)


def vertical_exaggeration(elevation_m: np.ndarray, extent: float, options: ViewOptions) -> float:
    if options.vertical_exaggeration is not None:
        return float(options.vertical_exaggeration)
    relief = float(np.nanmax(elevation_m) - np.nanmin(elevation_m)) if len(elevation_m) else 0.0
    if relief <= 0.0:
        return 1.0
    return float(np.clip(0.06 * extent / relief, 1.0, 10.0))


def tube_radius_m(diameter_m: np.ndarray, extent: float, options: ViewOptions) -> np.ndarray:
    """Display radius per link: grows with the square root of the diameter (area-like, so that mains
    stand out without drowning the small pipes), from tube_min_radius_ratio to 1 of the widest radius."""
    d = np.asarray(diameter_m, dtype=float)
    r_max = options.tube_radius_fraction * extent
    positive = d[d > 0]
    if positive.size == 0:
        return np.full(d.shape, r_max * 0.5)
    rel = np.sqrt(np.clip(d, 0.0, None) / positive.max())
    lo = options.tube_min_radius_ratio
    return r_max * (lo + (1.0 - lo) * rel)


@dataclass(frozen=True)
class NetworkGeometry:
    """Where each node of one network is drawn: xyz in display coordinates (z exaggerated and offset)."""

    net: NetworkArrays
    xyz: np.ndarray           # [N, 3] display coordinates
    extent_m: float
    z_scale: float            # vertical exaggeration applied to elevations


def network_geometry(net: NetworkArrays, options: ViewOptions, *, z_offset: float = 0.0,
                     z_scale: float | None = None, xy: np.ndarray | None = None) -> NetworkGeometry:
    xy = node_xy_m(net) if xy is None else xy
    ext = extent_m(xy)
    scale = vertical_exaggeration(np.asarray(net.elevation_m), ext, options) if z_scale is None else z_scale
    z = np.asarray(net.elevation_m, dtype=float) * scale + z_offset
    return NetworkGeometry(net, np.column_stack([xy, z]), ext, scale)


def link_values_from_nodes(net: NetworkArrays, node_values: np.ndarray) -> np.ndarray:
    """[L, 2]: the values at each link's start and end node."""
    v = np.asarray(node_values, dtype=float)
    return np.column_stack([v[net.link_start], v[net.link_end]])


def pipe_tubes(geom: NetworkGeometry, options: ViewOptions, link_values: np.ndarray | None = None,
               scalars_name: str = "value", radius_extent: float | None = None):
    """Tubes along every link, radius by diameter. link_values: None, [L] (one per link) or [L, 2]
    (start and end, e.g. node values): stored as point array `scalars_name` on the tubes."""
    import pyvista as pv
    from vtkmodules.vtkFiltersCore import vtkTubeFilter

    net = geom.net
    n_links = net.n_links
    ends = np.column_stack([net.link_start, net.link_end]).ravel()
    points = geom.xyz[ends]
    lines = np.column_stack([np.full(n_links, 2), 2 * np.arange(n_links), 2 * np.arange(n_links) + 1]).ravel()
    poly = pv.PolyData(points, lines=lines)
    radius = tube_radius_m(net.diameter_m, radius_extent or geom.extent_m, options)
    poly.point_data[RADIUS] = np.repeat(radius, 2)
    if link_values is not None:
        v = np.asarray(link_values, dtype=float)
        poly.point_data[scalars_name] = np.repeat(v, 2) if v.ndim == 1 else v.reshape(-1)
    poly.point_data.active_scalars_name = RADIUS
    tube = vtkTubeFilter()
    tube.SetInputData(poly)
    tube.SetNumberOfSides(options.tube_sides)
    # Absolute: the radius array is the radius itself (VTK's default would rescale it to a range).
    tube.SetVaryRadiusToVaryRadiusByAbsoluteScalar()
    tube.SetRadius(1.0)
    tube.CappingOff()
    tube.Update()
    out = pv.wrap(tube.GetOutput())
    if link_values is not None:
        out.point_data.active_scalars_name = scalars_name
    return out


def junction_points(geom: NetworkGeometry, node_values: np.ndarray | None = None, scalars_name: str = "value"):
    """The junctions as a point cloud (vertices), with their values if given."""
    import pyvista as pv
    nj = geom.net.n_junctions
    cloud = pv.PolyData(geom.xyz[:nj].copy())
    if node_values is not None:
        cloud.point_data[scalars_name] = np.asarray(node_values, dtype=float)[:nj]
    return cloud


def special_nodes(geom: NetworkGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(tank node indices, reservoir node indices)."""
    kind = np.asarray(geom.net.node_kind)
    return np.flatnonzero(kind == NodeKind.TANK), np.flatnonzero(kind == NodeKind.RESERVOIR)


def node_glyphs(geom: NetworkGeometry, nodes: np.ndarray, shape: str, size: float):
    """One glyph per node: 'cube' (reservoirs, plants), 'cylinder' (tanks) or 'sphere'."""
    import pyvista as pv
    if len(nodes) == 0:
        return None
    centers = pv.PolyData(geom.xyz[nodes].copy())
    if shape == "cube":
        source = pv.Cube(x_length=size, y_length=size, z_length=size)
    elif shape == "cylinder":
        source = pv.Cylinder(radius=size * 0.5, height=size, direction=(0.0, 0.0, 1.0), resolution=16)
    else:
        source = pv.Sphere(radius=size * 0.5)
    return centers.glyph(geom=source, orient=False, scale=False)
