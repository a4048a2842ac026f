"""What-if requests: API operations -> `twin.whatif` operations -> one coupled run -> the change.

The operations are applied one at a time so that a rejected one is named by its index in the request
("operations.2.capacity_m3d"); `twin.whatif.apply` applies a list in order, so this is the same park.
"""
from __future__ import annotations

import math
import threading
import time

from parktwin.api.server import models as m
from parktwin.api.server.errors import ApiError


def to_twin_operation(op):
    """The `twin.whatif` operation of one request operation."""
    import parktwin.twin.whatif as w
    from parktwin.twin.park_schema import Enterprise, Recycling, WaterNeeds
    if isinstance(op, m.ExpandEnterpriseOp):
        return w.ExpandEnterprise(op.name, op.factor)
    if isinstance(op, m.AddEnterpriseOp):
        e = op.enterprise
        return w.AddEnterprise(Enterprise(
            name=e.name, sector=e.sector, product=e.product, annual_output=e.annual_output,
            value_added_10k_yuan=e.value_added_10k_yuan, needs=WaterNeeds(**e.needs.model_dump()),
            recycling=Recycling(**e.recycling.model_dump()), consumption_fraction=e.consumption_fraction,
            discharge_fraction=e.discharge_fraction, shift_hours=e.shift_hours,
            junctions=e.junctions.model_dump()))
    if isinstance(op, m.PlantCapacityOp):
        return w.PlantCapacity(op.plant, op.capacity_m3d)
    if isinstance(op, m.PlantRecoveryOp):
        return w.PlantRecovery(op.unit, op.recovery_fraction)
    if isinstance(op, m.PlantOutageOp):
        return w.PlantOutage(op.plant)
    if isinstance(op, m.CityReclaimedOfferOp):
        return w.CityReclaimedOffer(op.m3d)
    if isinstance(op, m.CityFreshHeadOp):
        return w.CityFreshHead(op.head_m)
    if isinstance(op, m.LeakOp):
        return w.JunctionLeak(op.network, op.junction, op.area_m2, op.discharge_coefficient)
    if isinstance(op, m.PumpOutageOp):
        return w.PumpOutage(op.network, op.pump)
    if isinstance(op, m.PerturbationOp):
        return w.Perturbation(op.network, op.element, op.attribute, op.value)
    raise ApiError(422, f"unknown operation {type(op).__name__}", "operations")


def apply_operations(park, operations):
    from parktwin.twin.whatif import WhatIfError, apply
    for i, op in enumerate(operations):
        try:
            park = apply(park, [to_twin_operation(op)])
        except WhatIfError as exc:
            raise ApiError(422, f"operations.{i}: {exc}", f"operations.{i}.{exc.field}") from None
        except NotImplementedError as exc:
            raise NotImplementedError(f"operations.{i}: {exc}") from None
        except ValueError as exc:     # e.g. a Perturbation row the network rejects (unknown id, bad value)
            raise ApiError(422, f"operations.{i}: {exc}", f"operations.{i}") from None
    return park


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _diff(a, b) -> float | None:
    a, b = _num(a), _num(b)
    return None if a is None or b is None else a - b


def _service(base, new) -> dict:
    out = {}
    for name, s in new.service.items():
        b = base.service.get(name)
        low, low_base = list(s.low_pressure_junctions), set(b.low_pressure_junctions if b else ())
        out[name] = {
            "converged": bool(s.converged),
            "min_pressure_m": _num(s.min_pressure_m),
            "min_pressure_change_m": _diff(s.min_pressure_m, b.min_pressure_m) if b else None,
            "unserved_m3d": _num(s.unserved_m3d),
            "unserved_change_m3d": _diff(s.unserved_m3d, b.unserved_m3d) if b else None,
            "leaks_m3d": _num(s.leaks_m3d),
            "low_pressure_junctions": low,
            "new_low_pressure_junctions": [j for j in low if j not in low_base],
            "resolved_low_pressure_junctions": sorted(low_base - set(low)),
        }
    return out


# One coupled run at a time per server process: a run is mostly Python between compiled kernels that use
# both cores, so requests interleaved on the thread pool only fight over the GIL; queued, they finish
# sooner on average and the process serves more what-ifs per second.
_RUN_LOCK = threading.Lock()


def run_whatif(registry, park_id: str, request: m.WhatIfRequest, lock_timeout_s: float = 30.0) -> dict:
    from parktwin.twin.coupled import _plain, run_park
    from parktwin.twin.whatif import compare
    started = time.perf_counter()
    park = registry.park(park_id)
    base = registry.base_result(park_id, int(request.duration_s))
    new_park = apply_operations(park, request.operations)
    if not _RUN_LOCK.acquire(timeout=lock_timeout_s):
        raise ApiError(503, "every solver is busy with other what-ifs; try again shortly")
    try:
        new = run_park(new_park, duration_s=int(request.duration_s))
    except ValueError as exc:   # a park the operations made unsolvable (e.g. a junction with no demand)
        raise ApiError(422, f"operations: the changed park cannot be run: {exc}", "operations") from None
    finally:
        _RUN_LOCK.release()
    return {
        "park_id": park_id, "duration_s": int(request.duration_s),
        "indicators": _plain(compare(base, new)),
        "balance": _plain(new.balance), "base_balance": _plain(base.balance),
        "service": _service(base, new),
        "elapsed_ms": (time.perf_counter() - started) * 1e3,
    }
