"""The error every rejected scenario specification raises and the limits it is checked against.

A leaf module: `scenarios.spec` checks the fields, `scenarios.selection` what needs the network, and both
raise the same `SpecError`, so neither has to import the other for it.
"""
from __future__ import annotations

SAMPLERS = ("mc", "lhs", "sobol")
# Roughness and per-junction demand write one row per element per scenario. As numpy text columns a row
# costs ~230 bytes, so the cap is ~11 GB of table: beyond it a request is refused, not swapped.
MAX_ROWS = 50_000_000
SOBOL_MAX_DIMENSIONS = 21201     # scipy's Sobol' direction numbers end there


class SpecError(ValueError):
    """A specification that cannot be sampled: `field` is the TOML path, `reason` what is wrong."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def check(ok: bool, path: str, reason: str) -> None:
    if not ok:
        raise SpecError(path, reason)
