"""Synthetic meter readings of a day of the park: what its declared meters would read, with a hidden leak,
demand noise and meter noise. The yardstick reconciliation is tested and documented against.

The truth is the park's own model (twin.meter_model.run_day) with each enterprise's hourly flows drawn
around its books (`demand_noise_fraction`) and the hidden leaks as what-ifs; each meter reads the truth
every `step_s` from midnight to the next midnight inclusive, with Gaussian noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from parktwin.twin.meter_model import book_loads, meter_values, run_day, with_changes
from parktwin.twin.park_hydraulics import JunctionLoad, NetworkHydraulics
from parktwin.twin.park_schema import HydraulicChange, Park


@dataclass(frozen=True)
class SynthesisOptions:
    start: str = "2026-03-01T00:00:00+08:00"     # the model's midnight, ISO 8601 with offset
    step_s: int = 900
    demand_noise_fraction: float = 0.05          # each enterprise's hourly flow times N(1, σ)
    flow_noise_fraction: float = 0.005           # flow meters: σ as a fraction of the reading
    pressure_noise_m: float = 0.05
    level_noise_m: float = 0.005
    seed: int = 0


@dataclass(frozen=True)
class SyntheticDay:
    csv: str                                     # meter,time,quantity,value
    leak_m3: dict                                # network -> leak volume of the day (the hidden truth)
    hydraulics: dict                             # network -> NetworkHydraulics of the truth


def leak(network: str, junction: str, area_m2: float) -> HydraulicChange:
    return HydraulicChange(network=network, element=junction, attribute="leak_area_m2", value=repr(float(area_m2)))


def synthesize_day(park: Park, leaks: tuple[HydraulicChange, ...] = (),
                   options: SynthesisOptions = SynthesisOptions()) -> SyntheticDay:
    if not park.meters:
        raise ValueError(f"{park.folder}/park.toml declares no [meters]: there is nothing to read")
    rng = np.random.default_rng(options.seed)
    loads = {net: {j: JunctionLoad(load.mean_m3s, np.clip(load.profile * rng.normal(1.0, options.demand_noise_fraction,
                                                                                  load.profile.shape), 0.0, None))
                   for j, load in by_junction.items()}
             for net, by_junction in book_loads(park).items()}
    truth = run_day(with_changes(park, leaks), loads, options.step_s)
    start = datetime.fromisoformat(options.start)
    lines = ["meter,time,quantity,value"]
    for meter in park.meters:
        h: NetworkHydraulics = truth[meter.network]
        values = meter_values(meter, h).astype(float)
        if meter.quantity in ("flow_m3s", "volume_m3"):
            values = values * (1.0 + rng.normal(0.0, options.flow_noise_fraction, values.shape))
        else:
            sigma = options.pressure_noise_m if meter.quantity == "pressure_m" else options.level_noise_m
            values = values + rng.normal(0.0, sigma, values.shape)
        for t, v in zip(h.times_s, values):
            lines.append(f"{meter.id},{(start + timedelta(seconds=float(t))).isoformat()},{meter.quantity},"
                         f"{float(v)!r}")
    leak_m3 = {net: float(np.sum(h.leak_volume_m3)) for net, h in truth.items()}
    return SyntheticDay(csv="\n".join(lines) + "\n", leak_m3=leak_m3, hydraulics=truth)
