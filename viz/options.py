"""Options of a view, as frozen dataclasses (never dicts), with the defaults the pictures use."""
from __future__ import annotations

import math
from dataclasses import dataclass

CAMERAS = ("oblique", "top")


@dataclass(frozen=True)
class ViewOptions:
    """How a network or park is drawn and rendered.

    Sizes that depend on the network (tube radius, layer spacing) are fractions of the horizontal extent
    (the diagonal of the bounding box), so that the same options suit a 500 m park and a 20 km city.
    """

    window_size: tuple[int, int] = (1600, 1000)     # pixels (width, height) of a PNG
    camera: str = "oblique"                         # "oblique" (3D from the south-west) or "top" (plan)
    # z = elevation * vertical_exaggeration; None: chosen so relief spans ~6 % of the extent (1..10x),
    # since real relief (tens of m over km) would be invisible.
    vertical_exaggeration: float | None = None
    tube_radius_fraction: float = 0.0035            # radius of the widest pipe / extent
    tube_min_radius_ratio: float = 0.25             # narrowest tube radius / widest, so small pipes show
    tube_sides: int = 8
    junction_point_size: float = 7.0                # pixels; junctions are drawn as shaded points
    lighting: bool = True                           # False: flat colours, exactly the colour map's (tests)
    show_labels: bool = True                        # ids of tanks and reservoirs, enterprise names
    max_labels: int = 40                            # more special nodes than this: no labels (unreadable)
    show_scalar_bar: bool = True
    background: str = "white"
    nan_color: str = "lightgrey"                    # nodes or links with no value (e.g. tanks for a probability)
    clim: tuple[float, float] | None = None         # colour range in the displayed unit; None: data range

    def __post_init__(self) -> None:
        width, height = self.window_size
        if int(width) < 16 or int(height) < 16:
            raise ValueError(f"ViewOptions.window_size: {self.window_size} pixels; both must be at least 16")
        if self.camera not in CAMERAS:
            raise ValueError(f"ViewOptions.camera: unknown {self.camera!r}; valid: {', '.join(CAMERAS)}")
        if self.vertical_exaggeration is not None and not self.vertical_exaggeration > 0:
            raise ValueError(f"ViewOptions.vertical_exaggeration: {self.vertical_exaggeration}; must be above 0")
        if not 0 < self.tube_radius_fraction < 1 or not 0 < self.tube_min_radius_ratio <= 1:
            raise ValueError("ViewOptions.tube_radius_fraction must be in (0, 1) and tube_min_radius_ratio in "
                             f"(0, 1]; got {self.tube_radius_fraction} and {self.tube_min_radius_ratio}")
        if self.clim is not None:
            low, high = self.clim
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"ViewOptions.clim: {self.clim}; needs two finite numbers, low < high")


@dataclass(frozen=True)
class ParkViewOptions:
    """Park scene specifics, on top of ViewOptions."""

    layer_gap_fraction: float = 0.10      # vertical distance between stacked layers / extent
    terrain_cells: int = 80               # terrain grid resolution per side
    terrain_color: str = "tan"
    terrain_opacity: float = 0.85
    layer_colors: tuple[tuple[str, str], ...] = (("supply", "royalblue"), ("reclaimed", "seagreen"),
                                                 ("discharge", "saddlebrown"))   # layers without values
    enterprise_color: str = "darkorange"
    plant_color: str = "purple"
    city_color: str = "crimson"
