"""Periodic operation: run the park's networks several days and report one day whose tanks repeat.

A "daily" balance means one only when the tanks end the day where they started; a network that starts
from the levels in its file usually does not (the example park's tank fills on the first day). The
networks run N days in one extended run (controls, pump states and patterns carry over as in EPANET),
the volumes are summed per day, and the reported day is either the last of N days (`--days N`) or, by
default, the first day whose tank levels at its end are within `tolerance_m` of those at its start in
every network. Runs of 1, 2, 4, ... days are tried up to `max_days`; a park whose tanks never repeat
is reported on its last day, flagged not periodic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parktwin.hydraulics.extended import StepVolumes

SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class Periodicity:
    """How many days to run. days=None: until the tanks repeat day on day within tolerance_m."""
    days: int | None = None
    tolerance_m: float = 0.01
    max_days: int = 16

    def __post_init__(self):
        if self.days is not None and (isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1):
            raise ValueError(f"days: expected a whole number of days >= 1, got {self.days!r}")
        if not self.tolerance_m > 0:
            raise ValueError(f"tolerance_m: must be > 0, got {self.tolerance_m!r}")
        if isinstance(self.max_days, bool) or not isinstance(self.max_days, int) or self.max_days < 1:
            raise ValueError(f"max_days: expected a whole number >= 1, got {self.max_days!r}")

    def run_lengths(self) -> tuple[int, ...]:
        """The run lengths (days) to try in turn."""
        if self.days is not None:
            return (self.days,)
        out, n = [], 1
        while n < self.max_days:
            out.append(n)
            n *= 2
        return tuple(out) + (self.max_days,)


ONE_DAY = Periodicity(days=1)


class DailyVolumes(StepVolumes):
    """`StepVolumes` per day: node_m3 / leak_m3 [days, B, N]. The run's report times fall on every hour,
    and a hydraulic step never crosses a report time, so no step straddles midnight."""

    def __init__(self, batch: int, n_nodes: int, days: int):
        super().__init__(batch, n_nodes)
        self.days = [StepVolumes(batch, n_nodes) for _ in range(days)]
        self.elapsed_s = np.zeros(batch, np.int64)

    def add(self, solver, st, cols: np.ndarray, tstep_s: np.ndarray) -> None:
        day = self.elapsed_s[cols] // SECONDS_PER_DAY
        if len(np.unique(day)) > 1:
            raise ValueError("DailyVolumes: the scenarios of one step are on different days")
        if len(day):
            d = min(int(day[0]), len(self.days) - 1)   # the step at the very end has length 0
            self.days[d].add(solver, st, cols, tstep_s)
        super().add(solver, st, cols, tstep_s)
        self.elapsed_s[cols] += np.asarray(tstep_s, np.int64)


def tank_levels_at_midnight(net, times_s: np.ndarray, head_m: np.ndarray) -> np.ndarray:
    """[days + 1, tanks] tank levels (m) at every midnight of the run, from the report-time heads."""
    if len(net.tank_node) == 0:
        return np.zeros((0, 0))
    rows = [int(np.flatnonzero(times_s == t)[0]) for t in range(0, int(times_s[-1]) + 1, SECONDS_PER_DAY)
            if np.any(times_s == t)]
    return head_m[np.asarray(rows)][:, net.tank_node] - net.elevation_m[net.tank_node]


def level_change_m(levels: np.ndarray, day: int) -> float:
    """The largest |level at the end of `day` - level at its start| over the tanks (0 without tanks)."""
    if levels.size == 0:
        return 0.0
    return float(np.max(np.abs(levels[day + 1] - levels[day])))
