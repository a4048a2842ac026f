"""The park description as frozen dataclasses (units in the field names); `twin.park` fills them.

Kept apart from the loader so later modules (balance, scenarios, API) can import the types without
pulling in the network reader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

NETWORKS = ("supply", "reclaimed", "discharge")        # one EPANET file each: <name>.inp
FRESH_GRADES = ("process", "boiler", "domestic")          # must be served by fresh water
RECLAIMED_GRADES = ("cooling_makeup", "washing", "greening")  # reclaimed water allowed
SHIFT_HOURS = (8, 16, 24)
# A unit passes dissolved salts unless park.toml says it rejects them: UF, MBR and filters do not desalt.
SALT_REJECTION_DEFAULT = 0.0
# No water carries more than 10^6 mg/L of dissolved solids (that is a kilogram per litre): a larger TDS is a
# unit mistake (µg/L, µS/cm), caught at load time.
TDS_MAX_MG_L = 1.0e6

class ParkError(ValueError):
    """A park description is invalid; the message reads "<file>: <key path>: <reason>"."""

    def __init__(self, file: str, key: str, reason: str):
        super().__init__(f"{file}: {key}: {reason}")
        self.file, self.key, self.reason = file, key, reason


def _frozen(mapping) -> Mapping:
    # Frozen dataclasses still expose mutable dicts; a read-only view keeps a loaded Park immutable.
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class WaterNeeds:
    """Daily demand by quality grade, m³/d."""
    process_m3d: float = 0.0
    boiler_m3d: float = 0.0
    domestic_m3d: float = 0.0
    cooling_makeup_m3d: float = 0.0
    washing_m3d: float = 0.0
    greening_m3d: float = 0.0

    @property
    def fresh_only_m3d(self) -> float:
        return self.process_m3d + self.boiler_m3d + self.domestic_m3d

    @property
    def reclaimable_m3d(self) -> float:
        return self.cooling_makeup_m3d + self.washing_m3d + self.greening_m3d

    @property
    def total_m3d(self) -> float:
        return self.fresh_only_m3d + self.reclaimable_m3d


@dataclass(frozen=True)
class Recycling:
    """Water reused inside the enterprise, m³/d; it never appears in the park networks."""
    cooling_circulation_m3d: float = 0.0
    cascade_use_m3d: float = 0.0

    @property
    def total_m3d(self) -> float:
        return self.cooling_circulation_m3d + self.cascade_use_m3d


@dataclass(frozen=True)
class Enterprise:
    name: str
    sector: str
    product: str
    annual_output: float          # in the product's own unit (t, kL, ...), as the sector quota expects
    value_added_10k_yuan: float
    needs: WaterNeeds
    recycling: Recycling
    consumption_fraction: float   # of intake, evaporated or bound in product
    discharge_fraction: float     # of intake, sent to the discharge network
    shift_hours: int              # 8, 16 or 24 h of operation per day
    junctions: Mapping[str, str]  # network name -> junction id
    # False: the sector has no row in the provincial quota table (shown as such, never filed under another)
    has_quota: bool = True

    def __post_init__(self):
        object.__setattr__(self, "junctions", _frozen(self.junctions))


@dataclass(frozen=True)
class TreatmentUnit:
    name: str
    recovery_fraction: float      # product / feed; the rest is brine returned to discharge
    # Local salt rejection: permeate TDS = (1 - this) x the feed-side TDS where it permeates (twin/park_quality.py)
    salt_rejection_fraction: float = SALT_REJECTION_DEFAULT


@dataclass(frozen=True)
class ReclaimedPlant:
    capacity_m3d: float
    units: tuple[TreatmentUnit, ...]

    @property
    def recovery_fraction(self) -> float:
        """Overall recovery of the units in series."""
        out = 1.0
        for unit in self.units:
            out *= unit.recovery_fraction
        return out


@dataclass(frozen=True)
class WastewaterPlant:
    capacity_m3d: float
    losses_fraction: float = 0.0      # of what it treats: water leaving with sludge and by evaporation


@dataclass(frozen=True)
class CityLinks:
    fresh_head_m: float               # municipal supply head at the park boundary
    fresh_capacity_m3d: float
    reclaimed_offer_m3d: float        # city reclaimed water available to the park
    wastewater_capacity_m3d: float    # city plant's room for the park's overflow
    reclaimed_to_city_m3d: float      # park reclaimed water sent to city uses
    # The supply network's reservoir that is the municipal connection: its head is set to fresh_head_m.
    # None: the head in supply.inp stands and fresh_head_m is only recorded.
    fresh_reservoir: str | None = None


@dataclass(frozen=True)
class SourceQuality:
    """park.toml [quality]: total dissolved solids (TDS, mg/L) of the water the park's books start from.

    Site measurements, so no defaults: a made-up salinity would pass for a measured one in the report."""
    city_fresh_tds_mg_l: float        # the city's fresh water at the park connection
    city_reclaimed_tds_mg_l: float    # the city's reclaimed water offered to the park
    wastewater_tds_mg_l: float        # the park wastewater plant's influent (biological treatment keeps it)


@dataclass(frozen=True)
class Targets:
    reuse_rate_fraction: float
    substitution_rate_fraction: float
    # sector -> park-set quota, m³ per unit of product; overrides twin.quotas for that sector
    sector_quotas_m3_per_unit: Mapping[str, float] = field(default_factory=dict)
    # What the park plant's reclaimed water counts as: "unconventional" (Vu) or "reuse" (Vr).
    park_reclaimed_as: str = "unconventional"
    # Water per 10,000 yuan of value added: the baseline year's value and the relative target.
    intensity_baseline_m3_per_10k_yuan: float | None = None
    intensity_baseline_year: int = 2020
    intensity_price_basis: str = "constant 2020 prices"
    intensity_reduction_fraction: float = 0.16

    def __post_init__(self):
        object.__setattr__(self, "sector_quotas_m3_per_unit", _frozen(self.sector_quotas_m3_per_unit))


@dataclass(frozen=True)
class HydraulicChange:
    """One perturbation row on one of the park's networks (what-ifs: leaks, pump outages, raw rows).

    `attribute` and `value` as in the perturbation table (scenarios.attributes, SI units)."""
    network: str
    element: str
    attribute: str
    value: str


@dataclass(frozen=True)
class Meter:
    """A meter of park.toml [meters.<id>] (twin/park_meters.py reads them): what it reads, and where."""
    id: str
    network: str                  # one of NETWORKS
    element: str                  # node (pressure_m, level_m) or link / junction (flow_m3s, volume_m3) id
    quantity: str                 # one of twin.meter_readings.QUANTITIES
    role: str                     # one of METER_ROLES
    grade: str | None = None      # the water grade it meters, one of FRESH_GRADES + RECLAIMED_GRADES
    enterprise: str | None = None


# intake: water entering the park (city fresh, city reclaimed); enterprise: an enterprise's connection;
# outfall: the discharge network's outflow to the plant; network: anything else (pressures, levels, mains)
METER_ROLES = ("intake", "enterprise", "outfall", "network")


@dataclass(frozen=True)
class Park:
    name: str
    folder: str
    enterprises: tuple[Enterprise, ...]
    wastewater_plant: WastewaterPlant
    reclaimed_plant: ReclaimedPlant
    city: CityLinks
    targets: Targets
    # Hydraulic what-ifs on top of the files; empty for a park as loaded.
    hydraulic_changes: tuple[HydraulicChange, ...] = ()
    meters: tuple[Meter, ...] = ()          # park.toml [meters]; readings attach to the model through them
    quality: SourceQuality | None = None    # park.toml [quality]; None: TDS is not modelled

    def network_path(self, network: str) -> str:
        """Path of the EPANET file of one of NETWORKS."""
        if network not in NETWORKS:
            raise KeyError(f"unknown network {network!r} (valid: {', '.join(NETWORKS)})")
        return f"{self.folder}/{network}.inp"

    def enterprise(self, name: str) -> Enterprise:
        for ent in self.enterprises:
            if ent.name == name:
                return ent
        raise KeyError(name)
