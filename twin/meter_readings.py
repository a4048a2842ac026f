"""Meter readings as the ledger takes them: the CSV `meter,time,quantity,value`, checked and canonicalised.

The canonical form is what the ledger hashes, so it must not depend on how a file spelled a reading:
the time goes to UTC with microseconds kept only when they are not zero, the value to Python's shortest
round-trip repr of the float64. The same reading written `2026-03-01T08:00:00+08:00,1.50` and
`2026-03-01T00:00:00Z,1.5` is one reading, and a re-ingest adds nothing.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from parktwin.twin.merkle import leaf_hash

# quantity -> unit, one home for the names the ledger, reconciliation and the alarms accept
QUANTITIES = {"pressure_m": "m", "flow_m3s": "m³/s", "volume_m3": "m³", "level_m": "m"}
HEADER = ("meter", "time", "quantity", "value")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


class ReadingsError(ValueError):
    """A readings file is refused; the message names the file and line."""


@dataclass(frozen=True)
class MeterReading:
    meter: str
    time_us: int          # microseconds since 1970-01-01T00:00:00Z
    quantity: str         # one of QUANTITIES
    value: float          # SI, in the quantity's unit


def parse_time_us(text: str) -> int:
    """ISO 8601 with a UTC offset (or Z) -> microseconds since the epoch; ValueError says why not."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"time {text!r} is not ISO 8601") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"time {text!r} has no UTC offset (write Z or +08:00)")
    return (dt - _EPOCH) // _US


def format_time_us(time_us: int) -> str:
    """The canonical UTC spelling: 2026-03-01T00:00:00Z, or ...00.250000Z when there are microseconds."""
    dt = _EPOCH + timedelta(microseconds=time_us)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


def canonical_bytes(meter: str, time_text: str, quantity: str, value: float) -> bytes:
    """The leaf data of one reading. Meter ids hold no control characters, so the tabs cannot be forged."""
    return f"{meter}\t{time_text}\t{quantity}\t{value!r}".encode()


def leaf_of(meter: str, time_us: int, quantity: str, value: float, cache: dict[int, str] | None = None) -> bytes:
    """The RFC 9162 leaf hash of one reading; `cache` keeps the time spellings (meters share their times)."""
    text = cache.get(time_us) if cache is not None else None
    if text is None:
        text = format_time_us(time_us)
        if cache is not None:
            cache[time_us] = text
    return leaf_hash(canonical_bytes(meter, text, quantity, float(value)))


def _check_meter(meter: str) -> str | None:
    if not meter or meter != meter.strip():
        return f"meter id {meter!r} is empty or has leading/trailing spaces"
    if any(ord(c) < 32 or ord(c) == 127 for c in meter):
        return f"meter id {meter!r} has a control character"
    return None


def parse_readings(text: str, source: str, meters: dict[str, str] | None = None) -> list[tuple[int, MeterReading]]:
    """(line number, reading) for every data line; the first bad line raises ReadingsError naming it.

    `meters`, when given, maps the declared meter ids to their quantity: a reading of another meter or
    of another quantity is refused.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        raise ReadingsError(f"{source}: line 1: the header must be {','.join(HEADER)}, got {header!r}")
    out: list[tuple[int, MeterReading]] = []
    time_cache: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 4:
            raise ReadingsError(f"{source}: line {line}: expected 4 fields (meter,time,quantity,value), got {len(row)}")
        meter, time_text, quantity, value_text = row
        reason = _check_meter(meter)
        if reason:
            raise ReadingsError(f"{source}: line {line}: {reason}")
        if quantity not in QUANTITIES:
            raise ReadingsError(f"{source}: line {line}: unknown quantity {quantity!r} "
                                f"(valid: {', '.join(QUANTITIES)})")
        if meters is not None:
            declared = meters.get(meter)
            if declared is None:
                raise ReadingsError(f"{source}: line {line}: meter {meter!r} is not declared in park.toml [meters]")
            if declared != quantity:
                raise ReadingsError(f"{source}: line {line}: meter {meter!r} is declared to read {declared}, "
                                    f"not {quantity}")
        time_us = time_cache.get(time_text)
        if time_us is None:
            try:
                time_us = parse_time_us(time_text)
            except ValueError as exc:
                raise ReadingsError(f"{source}: line {line}: {exc}") from None
            time_cache[time_text] = time_us
        try:
            value = float(value_text)
        except ValueError:
            raise ReadingsError(f"{source}: line {line}: value {value_text!r} is not a number") from None
        if not math.isfinite(value):
            raise ReadingsError(f"{source}: line {line}: value {value_text!r} is not finite")
        out.append((line, MeterReading(meter, time_us, quantity, value)))
    return out
