"""Request and response bodies (pydantic), with units in the field names and descriptions.

What-if operations are a tagged union on `op`, one variant per `twin.whatif` operation; studies mirror
`scenarios.spec.ScenarioSpec` field for field, so the TOML documentation in scenarios/spec.py applies.
Constraints that the schema can state (>= 0, enums, lengths) are stated here, so a client sees them in
the OpenAPI document; what needs the park or the network (does that enterprise exist?) is checked by
the model layers and comes back as 422 naming the field.
"""
from __future__ import annotations

from enum import Enum, IntEnum
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from parktwin.viz.quantities import PARK_QUANTITIES, RESULT_QUANTITIES, SUMMARY_QUANTITIES

NetworkName = Literal["supply", "reclaimed", "discharge"]
PlantName = Literal["wastewater", "reclaimed"]
Id = Annotated[str, Field(min_length=1, max_length=200)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# Element lists of a study: not empty, no id twice (scenarios.spec refuses both).
IdList = Annotated[list[Id], Field(min_length=1, json_schema_extra={"uniqueItems": True})]
# The coupled park run is either a snapshot or a day (twin.coupled.DURATIONS_S): an enum, so that
# clients see it in the schema. Monte-Carlo jobs take the same two.
class RunDuration(IntEnum):
    snapshot = 0
    day = 86400


def _json_integer(value):
    # JSON Schema's integer is a number without a fraction: 110.0 is one, and a client may send it so.
    # Booleans stay refused (the models are strict): `false` is not 0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


def _run_duration(value: int) -> int:
    if value not in RunDuration.__members__.values():
        raise ValueError(f"must be one of {', '.join(str(int(d)) for d in RunDuration)}")
    return value


# In a body: a JSON integer, 0 or 86400 (not `false`, which an IntEnum would take for 0).
DurationS = Annotated[int, BeforeValidator(_json_integer), Field(strict=True, description="86400 = the 24 h run (the default, as `parktwin park "
                                                          "run`); 0 = a snapshot of daily means"),
                      AfterValidator(_run_duration),
                      WithJsonSchema({"type": "integer", "enum": [int(d) for d in RunDuration]})]


# What a picture can be coloured by, from the one table of quantities (viz.quantities).
ParkQuantity = Enum("ParkQuantity", {q: q for q in PARK_QUANTITIES}, type=str)
ResultQuantity = Enum("ResultQuantity", {q: q for q in dict.fromkeys(RESULT_QUANTITIES + SUMMARY_QUANTITIES)},
                      type=str)


class Strict(BaseModel):
    # NaN and infinity are not numbers a park has; JSON parsers here would otherwise let them in.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


# ---------------------------------------------------------------------- what-if operations
class ExpandEnterpriseOp(Strict):
    op: Literal["expand_enterprise"]
    name: Id = Field(description="enterprise name in the park")
    factor: NonNegative = Field(description="1.3 = +30 % output, value added, water needs and recycling")


class NeedsM3d(Strict):
    process_m3d: NonNegative = 0.0
    boiler_m3d: NonNegative = 0.0
    domestic_m3d: NonNegative = 0.0
    cooling_makeup_m3d: NonNegative = 0.0
    washing_m3d: NonNegative = 0.0
    greening_m3d: NonNegative = 0.0


class RecyclingM3d(Strict):
    cooling_circulation_m3d: NonNegative = 0.0
    cascade_use_m3d: NonNegative = 0.0


class Junctions(Strict):
    supply: Id = Field(description="junction id in supply.inp")
    reclaimed: Id = Field(description="junction id in reclaimed.inp")
    discharge: Id = Field(description="junction id in discharge.inp")


class EnterpriseIn(Strict):
    name: Id
    sector: Id = Field(description="sector key of the quota table, e.g. crude_steel")
    product: str = Field("", max_length=200, description="product and its unit, e.g. 'crude steel (t)'")
    annual_output: NonNegative = Field(description="in the product's unit per year")
    value_added_10k_yuan: NonNegative = Field(description="value added, 10,000 yuan per year")
    needs: NeedsM3d = Field(description="daily water needs by grade, m³/d")
    recycling: RecyclingM3d = Field(default_factory=RecyclingM3d, description="internal reuse, m³/d")
    consumption_fraction: float = Field(ge=0, le=1, description="of intake, evaporated or bound in product")
    discharge_fraction: float = Field(ge=0, le=1, description="of intake, sent to the discharge network")
    shift_hours: Annotated[Literal[8, 16, 24], BeforeValidator(_json_integer)] = 24
    junctions: Junctions


class AddEnterpriseOp(Strict):
    op: Literal["add_enterprise"]
    enterprise: EnterpriseIn


class PlantCapacityOp(Strict):
    op: Literal["plant_capacity"]
    plant: PlantName
    capacity_m3d: NonNegative = Field(description="treatment capacity, m³/d")


class PlantRecoveryOp(Strict):
    op: Literal["plant_recovery"]
    unit: Id = Field(description="treatment unit of the reclaimed plant")
    recovery_fraction: float = Field(gt=0, le=1, description="product / feed of that unit")


class PlantOutageOp(Strict):
    op: Literal["plant_outage"]
    plant: PlantName


class CityReclaimedOfferOp(Strict):
    op: Literal["city_reclaimed_offer"]
    m3d: NonNegative = Field(description="city reclaimed water offered to the park, m³/d")


class CityFreshHeadOp(Strict):
    op: Literal["city_fresh_head"]
    head_m: float = Field(allow_inf_nan=False, ge=-1e4, le=1e4,
                          description="municipal supply head at the park boundary, m (the park must name "
                                      "city.fresh_reservoir)")


class LeakOp(Strict):
    op: Literal["leak"]
    network: NetworkName
    junction: Id
    area_m2: NonNegative = Field(description="leak orifice area, m²")
    discharge_coefficient: float = Field(0.75, gt=0, le=1, allow_inf_nan=False,
                                         description="orifice discharge coefficient Cd, q = Cd·A·sqrt(2·g·p)")


class PumpOutageOp(Strict):
    op: Literal["pump_outage"]
    network: NetworkName
    pump: Id


class PerturbationOp(Strict):
    op: Literal["perturbation"]
    network: NetworkName
    element: Id = Field(description="node or link id, or '*' for demand_multiplier")
    attribute: Literal["leak_area_m2", "leak_cd", "demand_multiplier", "base_demand_m3s", "roughness", "status",
                       "tank_level_m", "reservoir_head_m", "pump_speed", "valve_setting"] = Field(
        description="a perturbation-table attribute (README: the perturbation table)")
    value: float | Literal["open", "closed"] = Field(description="SI value; 'open'/'closed' for status")


_OPERATIONS = (ExpandEnterpriseOp, AddEnterpriseOp, PlantCapacityOp, PlantRecoveryOp, PlantOutageOp,
               CityReclaimedOfferOp, CityFreshHeadOp, LeakOp, PumpOutageOp, PerturbationOp)
Operation = Annotated[Union[_OPERATIONS], Field(discriminator="op")]
# the `op` values: pydantic puts them in error locations (operations.0.<op>.field); errors.py drops them
OPERATION_TAGS = frozenset(c.model_fields["op"].annotation.__args__[0] for c in _OPERATIONS)


class WhatIfRequest(Strict):
    # No max_length here: the cap is the server's setting (PARKTWIN_MAX_OPERATIONS), checked by the route
    # with a 422 naming it; the request body cap bounds what is parsed before that.
    operations: list[Operation] = Field(description="applied in order to the park; at most the server's "
                                        "cap (PARKTWIN_MAX_OPERATIONS, default 100)")
    duration_s: DurationS = int(RunDuration.day)


class IndicatorChange(BaseModel):
    before: float | None = Field(description="base case value")
    after: float | None = Field(description="what-if value")
    change: float | None = Field(description="after - before; null where either is null")
    unit: str | None = None


class ServiceChange(BaseModel):
    converged: bool
    min_pressure_m: float | None = Field(description="lowest junction pressure, m")
    min_pressure_change_m: float | None
    unserved_m3d: float | None = Field(description="demand the network could not deliver, m³/d")
    unserved_change_m3d: float | None
    leaks_m3d: float | None = Field(description="network leak outflow, m³/d")
    low_pressure_junctions: list[str] = Field(description="junctions below the service pressure (10 m)")
    new_low_pressure_junctions: list[str] = Field(description="below service pressure now, not in the base case")
    resolved_low_pressure_junctions: list[str] = Field(description="below service pressure in the base case only")


class WhatIfResponse(BaseModel):
    park_id: str
    duration_s: int
    indicators: dict[str, IndicatorChange]
    balance: dict[str, Any] = Field(description="the what-if water balance, m³/d (as balance.json)")
    base_balance: dict[str, Any] = Field(description="the base case water balance, m³/d")
    service: dict[str, ServiceChange] = Field(description="per network: service violations and their change")
    elapsed_ms: float = Field(description="server time for this what-if, ms")


# ---------------------------------------------------------------------- parks and networks
class NetworkInfo(BaseModel):
    id: str
    name: str = Field(description="the uploaded file's name, or the park network's name")
    junctions: int
    nodes: int
    links: int
    pumps: int


class ParkSummary(BaseModel):
    id: str
    name: str
    enterprises: int
    bundled: bool = Field(description="true for the example park shipped with ParkTwin")


class ParkDetail(BaseModel):
    id: str
    name: str
    enterprises: list[dict[str, Any]] = Field(description="as park.toml: needs and recycling in m³/d")
    plants: dict[str, Any] = Field(description="wastewater and reclaimed plants: capacity_m3d, units")
    city: dict[str, Any] = Field(description="city links: heads in m, flows in m³/d")
    targets: dict[str, Any]
    networks: dict[str, NetworkInfo]


class Indicators(BaseModel):
    park_id: str
    duration_s: int
    indicators: dict[str, dict[str, Any]] = Field(description="value, unit, target, met, formula per indicator")


class Balance(BaseModel):
    park_id: str
    duration_s: int
    balance: dict[str, Any] = Field(description="park, enterprise and network balances, m³/d")


class Health(BaseModel):
    status: Literal["ok"]
    version: str


# ---------------------------------------------------------------------- Monte-Carlo studies
class LeakAreaIn(Strict):
    distribution: Literal["lognormal", "uniform", "fixed"] = "lognormal"
    median_m2: float | None = Field(None, gt=0, description="lognormal: median area, m²")
    sigma: float | None = Field(None, gt=0, description="lognormal: sigma of ln(area)")
    min_m2: float | None = Field(None, ge=0, description="uniform: minimum area, m²")
    max_m2: float | None = Field(None, gt=0, description="uniform: maximum area, m² (> min_m2)")
    value_m2: float | None = Field(None, gt=0, description="fixed: area, m²")


class LeaksIn(Strict):
    area: LeakAreaIn
    count: JsonInt = Field(1, ge=0, le=100, description="leaks per scenario, at distinct junctions")
    location: Literal["uniform", "pipe_length"] = "uniform"
    cd: float | None = Field(None, gt=0, description="discharge coefficient (default 0.75)")
    junctions: IdList | None = Field(None, max_length=100_000, description="candidate junctions; all if absent")


class DemandIn(Strict):
    distribution: Literal["uniform", "normal", "fixed"] = "fixed"
    min: float | None = Field(None, ge=0, description="uniform: lowest multiplier")
    max: float | None = Field(None, gt=0, description="uniform: highest multiplier (> min)")
    mean: float | None = Field(None, ge=0, description="normal: mean multiplier")
    sd: float | None = Field(None, gt=0, description="normal: standard deviation")
    value: float | None = Field(None, ge=0, description="fixed: the multiplier (default 1)")
    junction_sd: float = Field(0.0, ge=0, description="per-junction factor N(1, sd); 0 = none")
    junctions: IdList | None = Field(None, max_length=100_000, description="with junction_sd > 0 only")


class RoughnessIn(Strict):
    fraction: float = Field(gt=0, lt=1, description="each pipe's roughness times U(1 - f, 1 + f), 0 < f < 1")


class BreaksIn(Strict):
    count: JsonInt = Field(1, ge=0, le=100, description="pipes closed per scenario")
    location: Literal["uniform", "pipe_length"] = "uniform"
    pipes: IdList | None = Field(None, max_length=100_000)


class PumpOutagesIn(Strict):
    probability: float = Field(ge=0, le=1, description="each pump closed independently with this probability")
    pumps: IdList | None = Field(None, max_length=10_000)


class TankLevelsIn(Strict):
    tanks: IdList | None = Field(None, max_length=10_000)


class ReservoirHeadsIn(Strict):
    delta_m: float = Field(gt=0, description="head U(base - delta, base + delta), m")
    reservoirs: IdList | None = Field(None, max_length=10_000)


class ParkTarget(Strict):
    park_id: Id = Field(description="a park id")
    network: NetworkName = Field(description="which of the park's networks")


class NetworkTarget(Strict):
    network_id: Id = Field(description="an uploaded network id")


# the classes of plain unions: pydantic puts them in error locations (target.ParkTarget.network)
UNION_VARIANTS = frozenset({"ParkTarget", "NetworkTarget"})


def _target_one_of(schema: dict) -> None:
    # The two target shapes share no field and forbid others, so exactly one matches: say oneOf.
    target = schema["properties"]["target"]
    target["oneOf"] = target.pop("anyOf")


class StudyRequest(Strict):
    model_config = ConfigDict(json_schema_extra=_target_one_of)

    target: ParkTarget | NetworkTarget = Field(description="a park's network, or an uploaded network")
    scenarios: JsonInt = Field(ge=1, description="number of scenarios (capped by the server)")
    seed: JsonInt = Field(ge=0, le=2 ** 63 - 1)
    sampler: Literal["mc", "lhs", "sobol"] = "mc"
    leaks: LeaksIn | None = None
    demand: DemandIn | None = None
    roughness: RoughnessIn | None = None
    breaks: BreaksIn | None = None
    pump_outages: PumpOutagesIn | None = None
    tank_levels: TankLevelsIn | None = None
    reservoir_heads: ReservoirHeadsIn | None = None
    store: Literal["summary", "full"] = Field("summary", description="summary: statistics; full: every result")
    duration_s: JsonInt = Field(0, ge=0, le=7 * 86400, description="0 = snapshot; else an extended-period run, s")


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    target: str = Field(description="the network solved: park_id/network or network_id")
    scenarios: int
    scenarios_done: int
    progress: float = Field(description="scenarios_done / scenarios, 0..1")
    store: str
    duration_s: int
    created_utc: str
    started_utc: str | None
    finished_utc: str | None
    error: str | None


class JobSummary(BaseModel):
    id: str
    status: str
    summary: dict[str, Any] = Field(description="scenario counts, timing and network-wide statistics (m, m³/s)")
