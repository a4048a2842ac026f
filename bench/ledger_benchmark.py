"""Meter ledger: ingest and verify 1,000,000 readings as a user does, through `parktwin meters`.

Each command is timed as a whole process (start-up, CSV parsing, hashing, SQLite, signing), on a CSV of
`--meters` meters read every minute, so the file holds readings / meters timestamps.

    python -m bench.ledger_benchmark [--readings 1000000] [--meters 200]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.toolkit_loop import machine_description


def write_readings(path: Path, n: int, meters: int) -> None:
    start = datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=8)))
    with path.open("w") as fh:
        fh.write("meter,time,quantity,value\n")
        for i in range(n):
            m, step = i % meters, i // meters
            t = (start + timedelta(minutes=step)).isoformat()
            if m % 4 == 0:
                fh.write(f"F{m:03d},{t},flow_m3s,{0.01 + 1e-4 * ((i * 7919) % 1000)!r}\n")
            else:
                fh.write(f"P{m:03d},{t},pressure_m,{25.0 + 0.001 * ((i * 104729) % 10000)!r}\n")


def timed(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    print(f"  {' '.join(args[:2])}: {seconds:.1f} s  ({done.stdout.strip()[:120]})")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--meters", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, ledger = Path(tmp) / "readings.csv", Path(tmp) / "park.ledger"
        write_readings(csv_path, args.readings, args.meters)
        print(f"{args.readings:,} readings of {args.meters} meters, {csv_path.stat().st_size / 1e6:.0f} MB of CSV; "
              f"{machine_description()}")
        ingest_s = timed("meters", "ingest", str(ledger), str(csv_path))
        print(f"  ledger file: {ledger.stat().st_size / 1e6:.0f} MB")
        reingest_s = timed("meters", "ingest", str(ledger), str(csv_path))
        verify_s = timed("meters", "verify", str(ledger))
        prove_s = timed("meters", "prove", str(ledger), "--meter", "P001", "--time", "2026-03-01T01:00:00+08:00",
                        "--out", str(Path(tmp) / "proof.json"))
    print(f"ingest {ingest_s:.1f} s (target < 60 s), re-ingest {reingest_s:.1f} s, verify {verify_s:.1f} s "
          f"(target < 30 s), one inclusion proof {prove_s:.1f} s")


if __name__ == "__main__":
    main()
