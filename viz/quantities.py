"""The quantities a view can show, declared once as data.

Every picture names its quantity and unit from here (scalar bar, title, CLI errors), so the names a user
types, the label on the bar and the unit conversion cannot drift apart. Values are kept in SI
everywhere else; `display_factor` converts SI to the unit shown (flows in L/s read better than m³/s).
"""
from __future__ import annotations

from dataclasses import dataclass

NODE, LINK, ENTERPRISE = "node", "link", "enterprise"


@dataclass(frozen=True)
class Quantity:
    name: str                 # what the user types: --quantity NAME
    label: str                # what the scalar bar says, before the unit
    unit: str                 # the unit shown (after display_factor)
    location: str             # NODE, LINK or ENTERPRISE: what carries one value
    cmap: str                 # matplotlib colour map; its low end is the quantity's low end
    display_factor: float = 1.0   # SI value * display_factor = value shown
    summary_key: str = ""     # the statistic of a Monte-Carlo summary file, "" if it is no statistic
    magnitude: bool = False   # show |value| (a flow's sign only says which end the file calls start)
    description: str = ""

    @property
    def bar_title(self) -> str:
        """Scalar bar title: the quantity and its unit, e.g. 'pressure [m]'."""
        return f"{self.label} [{self.unit}]"

    @property
    def is_statistic(self) -> bool:
        return bool(self.summary_key)


# Low pressure reads red (trouble) in RdYlBu; probabilities and losses grow towards dark red.
QUANTITIES: dict[str, Quantity] = {q.name: q for q in (
    Quantity("pressure", "pressure", "m", NODE, "RdYlBu", description="pressure head at nodes"),
    Quantity("head", "hydraulic head", "m", NODE, "viridis", description="total head at nodes"),
    Quantity("elevation", "elevation", "m", NODE, "gist_earth", description="node elevation (no solve needed)"),
    Quantity("demand", "delivered demand", "L/s", NODE, "Blues", 1000.0, description="delivered demand at nodes"),
    Quantity("leak", "leak outflow", "L/s", NODE, "Reds", 1000.0, description="leak outflow at junctions"),
    Quantity("flow", "|flow|", "L/s", LINK, "Blues", 1000.0, magnitude=True,
             description="flow magnitude in links"),
    Quantity("velocity", "|velocity|", "m/s", LINK, "plasma", magnitude=True,
             description="mean flow velocity magnitude in links"),
    # The unit of water quality is the file's (root attribute quality_units: mg/L, hours, percent).
    Quantity("quality", "water quality", "", NODE, "viridis",
             description="node water quality of an extended run of a network with a QUALITY option"),
    Quantity("reclaimed_share", "reclaimed share of intake", "%", ENTERPRISE, "YlGn", 100.0,
             description="intake from reclaimed water / total intake, per enterprise (park only)"),
    # A park's TDS is a steady blend per network (twin/park_quality.py): per enterprise is where it differs.
    Quantity("tds", "delivered TDS", "mg/L", ENTERPRISE, "YlOrBr",
             description="total dissolved solids of an enterprise's intake, all grades (park with [quality] only)"),
    # Monte-Carlo statistics (summary files of `parktwin mc --store summary`).
    Quantity("low_pressure_probability", "P(pressure < service)", "1", NODE, "YlOrRd",
             summary_key="pressure_below_service_prob",
             description="probability that pressure is below the service threshold, per junction"),
    Quantity("pressure_min", "minimum pressure", "m", NODE, "RdYlBu", summary_key="pressure_min",
             description="minimum pressure over the scenarios"),
    Quantity("pressure_mean", "mean pressure", "m", NODE, "RdYlBu", summary_key="pressure_mean",
             description="mean pressure over the scenarios"),
    Quantity("pressure_max", "maximum pressure", "m", NODE, "RdYlBu", summary_key="pressure_max",
             description="maximum pressure over the scenarios"),
    Quantity("leak_mean", "mean leak outflow", "L/s", NODE, "Reds", 1000.0, summary_key="leak_mean",
             description="mean leak outflow over the scenarios"),
    Quantity("flow_mean", "mean |flow|", "L/s", LINK, "Blues", 1000.0, summary_key="flow_abs_mean",
             description="mean flow magnitude over the scenarios"),
    Quantity("velocity_mean", "mean |velocity|", "m/s", LINK, "plasma", summary_key="velocity_abs_mean",
             description="mean velocity magnitude over the scenarios"),
    Quantity("quality_mean", "mean water quality", "", NODE, "viridis", summary_key="quality_mean",
             description="mean node water quality over the scenarios (runs that record quality)"),
)}

# What each kind of source can show (the CLI lists these when a quantity does not fit the source).
RESULT_QUANTITIES = ("pressure", "head", "demand", "leak", "flow", "velocity", "elevation", "quality")
SUMMARY_QUANTITIES = tuple(name for name, q in QUANTITIES.items() if q.is_statistic) + ("elevation",)
PARK_QUANTITIES = ("pressure", "head", "demand", "leak", "flow", "velocity", "elevation", "reclaimed_share", "tds")
NETWORK_QUANTITIES = RESULT_QUANTITIES[:-1]   # a plain .inp: elevation alone, or its base case solved


def get_quantity(name: str, valid: tuple[str, ...] | None = None, where: str = "") -> Quantity:
    """The quantity called `name`; a ValueError naming the valid choices (for `where`) otherwise."""
    choices = tuple(QUANTITIES) if valid is None else tuple(c for c in valid if c in QUANTITIES)
    if name not in choices:
        known = "not available" if name in QUANTITIES else "unknown quantity"
        place = f" for {where}" if where else ""
        raise ValueError(f"{known}{place}: {name!r}; valid: {', '.join(choices)}")
    return QUANTITIES[name]
