"""park.toml [meters.<id>]: the park's meters, so that ledger readings attach to the model.

    [meters.intake_fresh]
    network = "supply"          # supply, reclaimed or discharge
    element = "P_INTAKE"        # a link (flow through it) or a junction (its demand) for flow_m3s/volume_m3,
                                # a node for pressure_m, a tank for level_m
    quantity = "flow_m3s"       # pressure_m, flow_m3s, volume_m3, level_m
    role = "intake"             # intake, enterprise, outfall, network (default: enterprise if enterprise
                                # is given, else network)
    grade = "process"           # optional: the water grade it meters
    enterprise = "steelworks"   # optional: the enterprise it belongs to
"""
from __future__ import annotations

from pathlib import Path

from parktwin.twin.meter_readings import QUANTITIES
from parktwin.twin.park_schema import FRESH_GRADES, METER_ROLES, NETWORKS, RECLAIMED_GRADES, Meter, ParkError

PARK_FILE = "park.toml"
_KEYS = ("network", "element", "quantity", "role", "grade", "enterprise")


def read_meters(raw, enterprise_names: set[str]) -> tuple[Meter, ...]:
    """The [meters] table, checked key by key; ParkError names the meter and key."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ParkError(PARK_FILE, "meters", f"expected a table of meters, got {type(raw).__name__}")
    meters = []
    for meter_id, t in raw.items():
        where = f"meters.{meter_id}"
        if not isinstance(t, dict):
            raise ParkError(PARK_FILE, where, f"expected a table, got {type(t).__name__}")
        extra = sorted(set(t) - set(_KEYS))
        if extra:
            raise ParkError(PARK_FILE, f"{where}.{extra[0]}", f"unknown key (expected one of: {', '.join(_KEYS)})")

        def text(key: str, required: bool = True) -> str | None:
            value = t.get(key)
            if value is None and not required:
                return None
            if isinstance(value, int) and not isinstance(value, bool) and key == "element":
                return str(value)       # EPANET ids are strings; TOML authors write numeric ones bare
            if not isinstance(value, str) or not value.strip():
                raise ParkError(PARK_FILE, f"{where}.{key}", f"expected a non-empty string, got {value!r}")
            return value.strip()

        network, element, quantity = text("network"), text("element"), text("quantity")
        if network not in NETWORKS:
            raise ParkError(PARK_FILE, f"{where}.network", f"unknown network {network!r} (valid: {', '.join(NETWORKS)})")
        if quantity not in QUANTITIES:
            raise ParkError(PARK_FILE, f"{where}.quantity", f"unknown quantity {quantity!r} (valid: {', '.join(QUANTITIES)})")
        enterprise = text("enterprise", required=False)
        if enterprise is not None and enterprise not in enterprise_names:
            raise ParkError(PARK_FILE, f"{where}.enterprise", f"no enterprise {enterprise!r} in [enterprises]")
        role = text("role", required=False) or ("enterprise" if enterprise else "network")
        if role not in METER_ROLES:
            raise ParkError(PARK_FILE, f"{where}.role", f"unknown role {role!r} (valid: {', '.join(METER_ROLES)})")
        if role != "network" and quantity not in ("flow_m3s", "volume_m3"):
            raise ParkError(PARK_FILE, f"{where}.quantity", f"an {role} meter reads flow_m3s or volume_m3, not {quantity}")
        grade = text("grade", required=False)
        if grade is not None and grade not in FRESH_GRADES + RECLAIMED_GRADES:
            raise ParkError(PARK_FILE, f"{where}.grade",
                            f"unknown grade {grade!r} (valid: {', '.join(FRESH_GRADES + RECLAIMED_GRADES)})")
        meters.append(Meter(id=str(meter_id), network=network, element=element, quantity=quantity, role=role,
                            grade=grade, enterprise=enterprise))
    return tuple(meters)


def check_meter_elements(folder: Path, meters: tuple[Meter, ...]) -> None:
    """Each meter's element exists in its network and is of a kind its quantity can be read at."""
    if not meters:
        return
    from parktwin.hydraulics.compile import load_network
    for network in NETWORKS:
        mine = [m for m in meters if m.network == network]
        if not mine:
            continue
        net = load_network(folder / f"{network}.inp")
        nodes, links = set(net.node_ids), set(net.link_ids)
        junctions = set(net.junction_ids)
        tanks = {net.node_ids[i] for i in net.tank_node}
        for m in mine:
            if m.quantity == "level_m":
                ok, kind = m.element in tanks, "a tank"
            elif m.quantity == "pressure_m":
                ok, kind = m.element in nodes, "a node"
            else:
                ok, kind = m.element in links or m.element in junctions, "a link or a junction"
            if not ok:
                raise ParkError(PARK_FILE, f"meters.{m.id}.element",
                                f"{m.element!r} is not {kind} of {network}.inp ({m.quantity} is read at {kind})")
