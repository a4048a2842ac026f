"""Scenario specifications: which inputs of a network are uncertain in a batch, and how.

A `ScenarioSpec` comes from TOML (`load_spec`), from command-line options (`spec_from_options`) or from
its constructor; every field is checked on construction, and `validate(net)` adds what needs the network
and returns the elements each section draws from (`selection.Selection`). Every rejection is one `SpecError`
whose message starts with the field's TOML path: ``leaks.area.sigma: must be > 0``.
`scenarios.samplers.expand` turns a specification into a perturbation table.

    scenarios = 10000
    seed = 42
    sampler = "lhs"                  # mc | lhs | sobol
    [leaks]                          # every section is optional; at least one is needed
    count = 1                        # leaks per scenario, at distinct junctions
    location = "pipe_length"         # uniform | pipe_length (half the length of the junction's pipes)
    [leaks.area]
    distribution = "lognormal"       # lognormal: median_m2, sigma | uniform: min_m2, max_m2 | fixed: value_m2
    median_m2 = 1e-4
    sigma = 0.8
    [demand]                         # global factor: uniform min/max | normal mean/sd | fixed value (1)
    distribution = "normal"
    mean = 1.0
    sd = 0.1
    junction_sd = 0.05               # per-junction factor N(1, sd), written as junction rows
    [roughness]
    fraction = 0.1                   # every pipe: roughness x U(1 - f, 1 + f), one row per pipe
    [breaks]
    count = 1                        # pipes closed per scenario
    [pump_outages]
    probability = 0.05               # each pump independently closed
    [tank_levels]                    # initial level U(min, max) per tank
    [reservoir_heads]
    delta_m = 2.0                    # head U(base - delta, base + delta)
"""
from __future__ import annotations

import json
import math
import tomllib
from collections import Counter
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.scenarios.selection import Selection, select
from parktwin.scenarios.spec_errors import SAMPLERS, SpecError
from parktwin.scenarios.spec_errors import check as _check

LOCATIONS = ("uniform", "pipe_length")

_AREA_LAWS = {"lognormal": (("median_m2", ">0"), ("sigma", ">0")),
              "uniform": (("min_m2", ">=0"), ("max_m2", ">min")), "fixed": (("value_m2", ">0"),)}
_DEMAND_LAWS = {"uniform": (("min", ">=0"), ("max", ">min")), "normal": (("mean", ">=0"), ("sd", ">0")),
                "fixed": (("value", ">=0"),)}


# ---------------------------------------------------------------------- field checks
def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


_RULES = {">0": (lambda x: x > 0, "must be > 0"), ">=0": (lambda x: x >= 0, "must be >= 0"),
          "0..1": (lambda x: 0 <= x <= 1, "must be between 0 and 1"),
          "(0,1)": (lambda x: 0 < x < 1, "must be > 0 and < 1")}


def _int(path: str, value, minimum: int) -> int:
    # bool is an int in Python; `count = true` is a mistake, not 1.
    _check(isinstance(value, (int, np.integer)) and not isinstance(value, bool), path,
           f"must be an integer, not {value!r}")
    _check(value >= minimum, path, f"must be >= {minimum}")
    return int(value)


def _float(path: str, value, rule: str | None = None) -> float:
    _check(isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool), path,
           f"must be a number, not {value!r}")
    _check(math.isfinite(value), path, f"must be finite, not {value!r}")
    if rule is not None:
        _check(_RULES[rule][0](value), path, _RULES[rule][1])
    return float(value)


def _choice(path: str, value, valid: tuple[str, ...], what: str) -> None:
    _check(value in valid, path, f"unknown {what} {value!r} (valid: {', '.join(valid)})")


def _ids(path: str, value) -> tuple[str, ...] | None:
    if value is None:
        return None
    _check(isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value), path,
           f"must be a list of id strings (quote numeric ids: \"11\"), not {value!r}")
    _check(len(value) > 0, path, "must not be empty (leave it out to use every element)")
    repeated = [v for v, n in Counter(value).items() if n > 1]
    _check(not repeated, path, f"{repeated[0]!r} is listed twice" if repeated else "")
    return tuple(value)


def _check_law(obj, prefix: str, laws: dict) -> None:
    """Known distribution, its parameters given and in range, the other distributions' parameters absent.
    `laws` maps a distribution to (parameter, rule) pairs; rule ">min" means "> the first parameter"."""
    _choice(f"{prefix}.distribution", obj.distribution, tuple(laws), "distribution")
    needed = dict(laws[obj.distribution])
    every = {p for params in laws.values() for p, _ in params}
    for name in (f.name for f in fields(obj) if f.name in every):
        path, value = f"{prefix}.{name}", getattr(obj, name)
        if name not in needed:
            _check(value is None, path, f"not used by the {obj.distribution} distribution (it takes "
                                        f"{', '.join(needed)})")
            continue
        _check(value is not None, path, f"required for the {obj.distribution} distribution")
        if needed[name] == ">min":
            low_name = next(iter(needed))
            low = getattr(obj, low_name)
            _check(_float(path, value) > low, path, f"must be > {prefix}.{low_name} ({low:g})")
        _set(obj, name, _float(path, value, None if needed[name] == ">min" else needed[name]))


# ---------------------------------------------------------------------- sections
@dataclass(frozen=True)
class LeakArea:
    distribution: str = "lognormal"
    median_m2: float | None = None
    sigma: float | None = None          # of ln(area)
    min_m2: float | None = None
    max_m2: float | None = None
    value_m2: float | None = None

    def __post_init__(self):
        _check_law(self, "leaks.area", _AREA_LAWS)

    @property
    def is_random(self) -> bool:
        return self.distribution != "fixed"


@dataclass(frozen=True)
class LeakSpec:
    area: LeakArea
    count: int = 1
    location: str = "uniform"
    cd: float | None = None
    junctions: tuple[str, ...] | None = None

    def __post_init__(self):
        _check(isinstance(self.area, LeakArea), "leaks.area", f"must be a LeakArea, not {self.area!r}")
        _set(self, "count", _int("leaks.count", self.count, 0))
        _choice("leaks.location", self.location, LOCATIONS, "location")
        if self.cd is not None:
            _set(self, "cd", _float("leaks.cd", self.cd, ">0"))
        _set(self, "junctions", _ids("leaks.junctions", self.junctions))


@dataclass(frozen=True)
class DemandSpec:
    distribution: str = "fixed"
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    sd: float | None = None
    value: float | None = None
    junction_sd: float = 0.0            # 0: no per-junction factor
    junctions: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.distribution == "fixed" and self.value is None:
            _set(self, "value", 1.0)
        _check_law(self, "demand", _DEMAND_LAWS)
        _set(self, "junction_sd", _float("demand.junction_sd", self.junction_sd, ">=0"))
        _set(self, "junctions", _ids("demand.junctions", self.junctions))
        _check(self.junctions is None or self.junction_sd > 0, "demand.junctions",
               "only used with demand.junction_sd > 0")

    @property
    def is_random(self) -> bool:
        return self.distribution != "fixed"


@dataclass(frozen=True)
class RoughnessSpec:
    fraction: float

    def __post_init__(self):
        # Below 1 so that every roughness stays > 0, as the perturbation table requires.
        _set(self, "fraction", _float("roughness.fraction", self.fraction, "(0,1)"))


@dataclass(frozen=True)
class BreakSpec:
    count: int = 1
    location: str = "uniform"
    pipes: tuple[str, ...] | None = None

    def __post_init__(self):
        _set(self, "count", _int("breaks.count", self.count, 0))
        _choice("breaks.location", self.location, LOCATIONS, "location")
        _set(self, "pipes", _ids("breaks.pipes", self.pipes))


@dataclass(frozen=True)
class PumpOutageSpec:
    probability: float
    pumps: tuple[str, ...] | None = None

    def __post_init__(self):
        _set(self, "probability", _float("pump_outages.probability", self.probability, "0..1"))
        _set(self, "pumps", _ids("pump_outages.pumps", self.pumps))


@dataclass(frozen=True)
class TankLevelSpec:
    tanks: tuple[str, ...] | None = None

    def __post_init__(self):
        _set(self, "tanks", _ids("tank_levels.tanks", self.tanks))


@dataclass(frozen=True)
class ReservoirHeadSpec:
    delta_m: float
    reservoirs: tuple[str, ...] | None = None

    def __post_init__(self):
        _set(self, "delta_m", _float("reservoir_heads.delta_m", self.delta_m, ">0"))
        _set(self, "reservoirs", _ids("reservoir_heads.reservoirs", self.reservoirs))


@dataclass(frozen=True)
class SourceQualitySpec:
    """Water-quality source strengths, uniform in [min, max] at each listed node (attribute source_quality,
    in the network's quality units; MASS sources in mass/min)."""
    nodes: tuple[str, ...]
    min: float
    max: float

    def __post_init__(self):
        _set(self, "nodes", _ids("source_quality.nodes", self.nodes))
        _check(bool(self.nodes), "source_quality.nodes", "name at least one node")
        _set(self, "min", _float("source_quality.min", self.min, ">=0"))
        _set(self, "max", _float("source_quality.max", self.max, ">=0"))
        _check(self.max >= self.min, "source_quality.max", "must not be below min")


_SECTIONS = {"leaks": LeakSpec, "demand": DemandSpec, "roughness": RoughnessSpec, "breaks": BreakSpec,
             "pump_outages": PumpOutageSpec, "tank_levels": TankLevelSpec, "reservoir_heads": ReservoirHeadSpec,
             "source_quality": SourceQualitySpec}


@dataclass(frozen=True)
class ScenarioSpec:
    scenarios: int
    seed: int
    sampler: str = "mc"
    leaks: LeakSpec | None = None
    demand: DemandSpec | None = None
    roughness: RoughnessSpec | None = None
    breaks: BreakSpec | None = None
    pump_outages: PumpOutageSpec | None = None
    tank_levels: TankLevelSpec | None = None
    reservoir_heads: ReservoirHeadSpec | None = None
    source_quality: SourceQualitySpec | None = None

    def __post_init__(self):
        _set(self, "scenarios", _int("scenarios", self.scenarios, 1))
        _set(self, "seed", _int("seed", self.seed, 0))
        _choice("sampler", self.sampler, SAMPLERS, "sampler")
        for name, cls in _SECTIONS.items():
            section = getattr(self, name)
            _check(section is None or isinstance(section, cls), name, f"must be a {cls.__name__}")
        _check(any(getattr(self, name) is not None for name in _SECTIONS), "spec",
               f"nothing varies: add at least one of {', '.join(f'[{s}]' for s in _SECTIONS)}")

    def validate(self, net: NetworkArrays) -> Selection:
        """The checks that need the network (ids, counts, the row cap, Sobol's dimension limit);
        returns the elements each section draws from (`scenarios.selection.Selection`)."""
        return select(self, net)

    def to_toml(self) -> str:
        """TOML text that `load_spec` reads back into an equal specification."""
        lines = [f"scenarios = {self.scenarios}", f"seed = {self.seed}", f"sampler = {json.dumps(self.sampler)}"]
        for name in _SECTIONS:
            section = getattr(self, name)
            if section is not None:
                lines += ["", f"[{name}]"] + _toml_pairs(section)
                if isinstance(section, LeakSpec):
                    lines += [f"[{name}.area]"] + _toml_pairs(section.area)
        return "\n".join(lines) + "\n"


def _toml_pairs(section) -> list[str]:
    out = []
    for f in fields(section):
        value = getattr(section, f.name)
        if value is None or isinstance(value, LeakArea):
            continue
        if isinstance(value, tuple):
            text = "[" + ", ".join(json.dumps(v) for v in value) + "]"
        elif isinstance(value, str):
            text = json.dumps(value)     # a JSON string is a valid TOML basic string
        else:
            text = repr(value)           # shortest round-trip text; ints stay ints, floats keep a '.' or 'e'
        out.append(f"{f.name} = {text}")
    return out


# ---------------------------------------------------------------------- reading
def spec_from_dict(data: dict) -> ScenarioSpec:
    """A specification from parsed TOML (nested dicts); unknown keys are rejected by name."""
    _check(isinstance(data, dict), "spec", "must be a table")
    top = ("scenarios", "seed", "sampler", *_SECTIONS)
    for key in data:
        _check(key in top, str(key), f"unknown key (valid: {', '.join(top)})")
    for key in ("scenarios", "seed"):
        _check(key in data, key, "required")
    kwargs = {k: data[k] for k in ("scenarios", "seed", "sampler") if k in data}
    for name, cls in _SECTIONS.items():
        if name in data:
            kwargs[name] = _section(cls, name, data[name])
    return ScenarioSpec(**kwargs)


def _section(cls, prefix: str, table):
    _check(isinstance(table, dict), prefix, f"must be a table, not {table!r}")
    names = [f.name for f in fields(cls)]
    for key in table:
        _check(key in names, f"{prefix}.{key}", f"unknown key (valid: {', '.join(names)})")
    kwargs = dict(table)
    if cls is LeakSpec:     # a missing [leaks.area] reads as empty, so the error names what it lacks
        kwargs["area"] = _section(LeakArea, f"{prefix}.area", table.get("area", {}))
    for f in fields(cls):
        _check(f.default is not MISSING or f.name in kwargs, f"{prefix}.{f.name}", "required")
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    return cls(**kwargs)


def load_spec(path) -> ScenarioSpec:
    """Read a TOML specification; malformed TOML is a SpecError naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SpecError(path.name, f"not valid TOML: {err}") from None
    return spec_from_dict(data)


# Command-line keyword -> TOML path. Id lists may be given as "a,b,c".
OPTIONS: dict[str, tuple[str, ...]] = {
    "scenarios": ("scenarios",), "seed": ("seed",), "sampler": ("sampler",),
    "leaks": ("leaks", "count"), "leak_location": ("leaks", "location"), "leak_cd": ("leaks", "cd"),
    "leak_junctions": ("leaks", "junctions"), "leak_area": ("leaks", "area", "distribution"),
    "leak_median_m2": ("leaks", "area", "median_m2"), "leak_sigma": ("leaks", "area", "sigma"),
    "leak_min_m2": ("leaks", "area", "min_m2"), "leak_max_m2": ("leaks", "area", "max_m2"),
    "leak_value_m2": ("leaks", "area", "value_m2"),
    "demand": ("demand", "distribution"), "demand_min": ("demand", "min"), "demand_max": ("demand", "max"),
    "demand_mean": ("demand", "mean"), "demand_sd": ("demand", "sd"), "demand_value": ("demand", "value"),
    "demand_junction_sd": ("demand", "junction_sd"), "demand_junctions": ("demand", "junctions"),
    "roughness_fraction": ("roughness", "fraction"),
    "breaks": ("breaks", "count"), "break_location": ("breaks", "location"), "break_pipes": ("breaks", "pipes"),
    "pump_outage_probability": ("pump_outages", "probability"), "pump_outage_pumps": ("pump_outages", "pumps"),
    "tank_levels": ("tank_levels",), "tank_level_tanks": ("tank_levels", "tanks"),
    "reservoir_head_delta_m": ("reservoir_heads", "delta_m"),
    "reservoir_head_reservoirs": ("reservoir_heads", "reservoirs"),
}
_LIST_KEYS = {"junctions", "pipes", "pumps", "tanks", "reservoirs"}


def spec_from_options(**options) -> ScenarioSpec:
    """A specification from flat keywords (see OPTIONS); None means "not given", a section exists as
    soon as one of its options is given, `tank_levels=True` turns that section on. Errors name the
    TOML path and the option: ``leaks.area.sigma (--leak-sigma): must be > 0``."""
    data: dict = {}
    for key, value in options.items():
        _check(key in OPTIONS, f"--{key.replace('_', '-')}", f"unknown option (valid: {', '.join(OPTIONS)})")
        if value is None or value is False:
            continue
        path = OPTIONS[key]
        if value is True and len(path) == 1 and path[0] in _SECTIONS:
            data.setdefault(path[0], {})
            continue
        if path[-1] in _LIST_KEYS and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = list(value) if isinstance(value, tuple) else value
    try:
        return spec_from_dict(data)
    except SpecError as err:
        option = next((k for k, p in OPTIONS.items() if ".".join(p) == err.field), None)
        if option is None:
            raise
        raise SpecError(f"{err.field} (--{option.replace('_', '-')})", err.reason) from None
