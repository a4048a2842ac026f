"""The result set of a batch: (scenario, time, element) arrays in SI units."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ResultSet:
    node_ids: tuple[str, ...]
    link_ids: tuple[str, ...]
    time_s: np.ndarray            # [T]
    head_m: np.ndarray            # [B, T, N]
    pressure_m: np.ndarray        # [B, T, N]
    demand_m3s: np.ndarray        # [B, T, N] delivered demand (+ file emitters); fixed-grade: net outflow
    leak_m3s: np.ndarray          # [B, T, N]
    flow_m3s: np.ndarray          # [B, T, L]
    status: np.ndarray            # [B, T, L] int8: 0 closed, 1 open, 2 active
    converged: np.ndarray         # [B, T] bool
    iterations: np.ndarray        # [B, T] int
    failure: np.ndarray           # [B] str: "" or why the scenario failed
    # Water quality at the report times in EPANET's reporting units (chemical: the file's mass unit per
    # litre; age: hours; trace: percent); None when the network has no quality model or for a snapshot.
    node_quality: np.ndarray | None = None   # [B, T, N]
    link_quality: np.ndarray | None = None   # [B, T, L] EPANET's LINKQUAL (volume-weighted mean)

    @property
    def batch_size(self) -> int:
        return self.head_m.shape[0]

    def scenario(self, b: int) -> "ResultSet":
        """One scenario as a batch of one."""
        return self.rows(b, b + 1)

    def rows(self, start: int, stop: int) -> "ResultSet":
        """Scenarios start..stop-1 as views (writing to them writes to this set)."""
        sl = slice(start, stop)
        return ResultSet(self.node_ids, self.link_ids, self.time_s, self.head_m[sl], self.pressure_m[sl],
                         self.demand_m3s[sl], self.leak_m3s[sl], self.flow_m3s[sl], self.status[sl],
                         self.converged[sl], self.iterations[sl], self.failure[sl],
                         None if self.node_quality is None else self.node_quality[sl],
                         None if self.link_quality is None else self.link_quality[sl])

    @staticmethod
    def allocate(node_ids, link_ids, time_s, batch: int, dtype="float64", prefill: bool = True,
                 quantities=None) -> "ResultSet":
        """Arrays for `batch` scenarios; NaN where nothing is written (prefill=False when every report
        time will be written, as in a snapshot: filling first would only touch the memory twice).
        `quantities`: the element arrays to record (names in QUANTITIES; None: all). The others get no
        columns ([B, T, 0]), so a study that needs only pressures neither stores nor computes the rest,
        and nothing can mistake a quantity that was not recorded for data."""
        t, n, l = len(time_s), len(node_ids), len(link_ids)
        wanted = set(QUANTITIES if quantities is None else quantities)
        unknown = wanted - set(QUANTITIES)
        if unknown:
            raise ValueError(f"quantities: unknown {sorted(unknown)}; valid: {', '.join(QUANTITIES)}")

        def make(name, width):
            shape = (batch, t, width if name in wanted else 0)
            return np.full(shape, np.nan, dtype=dtype) if prefill else np.empty(shape, dtype)
        return ResultSet(
            tuple(node_ids), tuple(link_ids), np.asarray(time_s, dtype=np.int64),
            make("head_m", n), make("pressure_m", n), make("demand_m3s", n),
            make("leak_m3s", n), make("flow_m3s", l), np.zeros((batch, t, l), np.int8),
            np.zeros((batch, t), bool), np.zeros((batch, t), np.int64), np.full(batch, "", dtype=object),
        )


QUANTITIES = ("head_m", "pressure_m", "demand_m3s", "leak_m3s", "flow_m3s")

# What a run can be told to record (`--record`, SolverOptions.record): the element quantities by their short
# or full names, and water quality (recorded only where the network has a quality model and the run a
# duration). Status, convergence, iterations and failure reasons are always recorded.
QUALITY = "quality"
RECORDABLE = QUANTITIES + (QUALITY,)
_SHORT_NAMES = {"head": "head_m", "pressure": "pressure_m", "demand": "demand_m3s", "leak": "leak_m3s",
                "flow": "flow_m3s"}


def parse_record(names) -> tuple[str, ...] | None:
    """`--record` as given ("pressure,flow", or names in an iterable; short or full names; "all") -> the
    canonical selection in RECORDABLE order, or None for everything. ValueError names an unknown name and
    lists the valid ones."""
    if names is None:
        return None
    items = names.split(",") if isinstance(names, str) else [str(n) for n in names]
    items = [n.strip().lower() for n in items if n.strip()]
    if items == ["all"]:
        return None
    unknown = [n for n in items if n not in _SHORT_NAMES and n not in RECORDABLE]
    if unknown or not items:
        what = f"unknown quantity {unknown[0]!r}" if unknown else "no quantity given"
        valid = ", ".join(f"{short} ({full})" for short, full in _SHORT_NAMES.items())
        raise ValueError(f"--record: {what}; valid: {valid}, {QUALITY}, or all")
    wanted = {_SHORT_NAMES.get(n, n) for n in items}
    chosen = tuple(n for n in RECORDABLE if n in wanted)
    return None if chosen == RECORDABLE else chosen


def short_names(names) -> tuple[str, ...]:
    """head_m -> head, ...: the names `--record` takes (quality stays quality)."""
    full_to_short = {full: short for short, full in _SHORT_NAMES.items()}
    return tuple(full_to_short.get(n, n) for n in names)


def recorded_quantities(record) -> tuple[str, ...] | None:
    """The element arrays of QUANTITIES a selection records (for ResultSet.allocate), None for all."""
    return None if record is None else tuple(n for n in QUANTITIES if n in record)


def records_quality(record) -> bool:
    return record is None or QUALITY in record
