"""Load run of the HTTP API: N concurrent clients sending what-ifs on the example park for T seconds.

    .venv/bin/python bench/api_load.py [--clients 50] [--seconds 30] [--single 200]

Starts `parktwin serve` on a free loopback port with a temporary data directory, then
1. single-request latency: `--single` what-ifs one after the other (p50/p95), the latency a user sees;
2. the load: `--clients` asyncio clients (httpx), each sending what-ifs back to back for `--seconds`;
reports errors (non-200 answers and transport errors), p50/p95/max latency and requests per second.
The what-ifs cycle through a few operation mixes so that no two consecutive requests are identical.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
WHATIFS = [
    [{"op": "expand_enterprise", "name": "paper_mill", "factor": 1.3}],
    [{"op": "plant_outage", "plant": "reclaimed"}],
    [{"op": "city_reclaimed_offer", "m3d": 4000}, {"op": "expand_enterprise", "name": "steelworks", "factor": 1.1}],
    [{"op": "plant_capacity", "plant": "wastewater", "capacity_m3d": 8000}],
    [{"op": "leak", "network": "supply", "junction": "S0407", "area_m2": 2e-3}],
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PARKTWIN_API_KEY"}
    proc = subprocess.Popen([sys.executable, "-m", "parktwin.api.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def single(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(n):
            t = time.perf_counter()
            r = c.post("/parks/example/whatif", json={"operations": WHATIFS[i % len(WHATIFS)]})
            out.append((time.perf_counter() - t) * 1e3)
            if r.status_code != 200:
                raise SystemExit(f"single what-if failed: {r.status_code} {r.text[:200]}")
    return out


async def load(url: str, clients: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        async def client(k: int):
            nonlocal errors
            i = k
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                try:
                    r = await c.post("/parks/example/whatif", json={"operations": WHATIFS[i % len(WHATIFS)]})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - t) * 1e3)
                errors += not ok
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        wall = time.perf_counter() - started
    return latencies, errors, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--single", type=int, default=200)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="parktwin-bench-"))
    proc, url = start_server(data_dir)
    try:
        single(url, 10)                                      # warm the connection and the caches
        one = single(url, args.single)
        lat, errors, wall = asyncio.run(load(url, args.clients, args.seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {cpu}, {os.cpu_count()} cores; 1-min load average before the run: {load_before:.2f}")
    print(f"single what-if, {args.single} sequential: p50 {statistics.median(one):.1f} ms, "
          f"p95 {pct(one, 0.95):.1f} ms")
    # answered = 200s only, so an error storm cannot pass for throughput
    print(f"load: {args.clients} clients x {args.seconds:.0f} s: {len(lat)} requests, {errors} errors, "
          f"{(len(lat) - errors) / wall:.1f} answered requests/s, p50 {statistics.median(lat):.0f} ms, p95 {pct(lat, 0.95):.0f} ms, "
          f"max {max(lat):.0f} ms")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
