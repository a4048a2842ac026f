"""The randomized oracle's seed: fresh on every run unless PARKTWIN_ORACLE_SEED names one to replay."""
from __future__ import annotations

import os
import secrets

SEED_VARIABLE = "PARKTWIN_ORACLE_SEED"


def _seed() -> int:
    given = os.environ.get(SEED_VARIABLE, "").strip()
    if not given:
        return secrets.randbelow(2**31)
    try:
        return int(given)
    except ValueError:
        raise SystemExit(f"{SEED_VARIABLE}={given!r}: not an integer seed") from None


ORACLE_SEED = _seed()


def replay_hint(test_filter: str = "") -> str:
    k = f" -k '{test_filter}'" if test_filter else ""
    return (f"seed {ORACLE_SEED}; replay with {SEED_VARIABLE}={ORACLE_SEED} "
            f".venv/bin/python -m pytest tests/test_oracle_random.py{k}")
