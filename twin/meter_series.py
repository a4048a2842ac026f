"""Ledger readings as hourly steps on a network's clock, for the leak alarms over time (twin.leak_alarm).

A meter's id is the element it reads (`parktwin locate NETWORK --ledger`): pressure_m at a node,
flow_m3s in a link, level_m in a tank. Each step is the mean of the meter's readings in that hour; an
hour without a reading is NaN (the alarm skips it for that meter). `from` is the network's time 0.
"""
from __future__ import annotations

import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.twin.leak_alarm import MeterSeries
from parktwin.twin.ledger import connect

STEP_S = 3600
US = 1_000_000


def hourly_series(ledger, net: NetworkArrays, from_us: int, to_us: int) -> tuple[MeterSeries, list[str]]:
    """(the series, meter ids of the ledger that are no element of `net`)."""
    n_steps = (to_us - from_us) // (STEP_S * US)
    if n_steps < 1:
        raise ValueError("the period from --from to --to must be at least an hour")
    con = connect(ledger)
    try:
        rows = con.execute("SELECT meter, quantity, time_us, value FROM readings WHERE time_us >= ? AND time_us < ? "
                           "AND quantity IN ('pressure_m', 'flow_m3s', 'level_m')",
                           (from_us, from_us + n_steps * STEP_S * US)).fetchall()
    finally:
        con.close()
    nodes, links = set(net.node_ids), set(net.link_ids)
    tanks = {net.node_ids[i] for i in net.tank_node}
    columns: dict[tuple[str, str], int] = {}
    skipped: set[str] = set()
    for meter, quantity, _, _ in rows:
        known = {"pressure_m": meter in nodes, "flow_m3s": meter in links, "level_m": meter in tanks}[quantity]
        if not known:
            skipped.add(meter)
        elif (meter, quantity) not in columns:
            columns[(meter, quantity)] = len(columns)
    if not columns:
        raise ValueError(f"{ledger}: no reading in the period is of an element of {net.name} "
                         "(a meter's id must be the node, link or tank it reads)")
    total = np.zeros((n_steps, len(columns)))
    count = np.zeros((n_steps, len(columns)))
    for meter, quantity, t, v in rows:
        col = columns.get((meter, quantity))
        if col is not None:
            step = (t - from_us) // (STEP_S * US)
            total[step, col] += v
            count[step, col] += 1
    with np.errstate(invalid="ignore"):
        values = np.where(count > 0, total / count, np.nan)
    keys = sorted(columns, key=columns.get)
    return (MeterSeries(np.arange(n_steps) * float(STEP_S), tuple(m for m, _ in keys), tuple(q for _, q in keys), values),
            sorted(skipped))
