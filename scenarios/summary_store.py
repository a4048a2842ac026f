"""The summary store: running statistics over scenarios in HDF5, for `parktwin mc ... --store summary`.

    store = SummaryStore.create(path, net, scenario_ids, time_s, perturbations, attrs, SummaryOptions())
    store.add(rows, results)            # counts the chunk; every `save_every` chunks saves the state
    store.close(complete=True)          # saves, writes summary/<statistic>, sets `complete`

The file carries DESIGN's id datasets (node/ids, link/ids, scenario/ids, time_s, node/xyz, link/nodes,
network/inp, scenario/perturbations), `scenario/done` and `scenario/failure` like ResultStore's, then:

    summary/<statistic>          [T, N], [T, L], [Q, T, N] or counts: SummaryAccumulator.finalize()
    summary/link_diameter_m      [L] for the mean |velocity| (NaN for pumps)
    summary/state/a, .../b       the accumulator's raw integer state (to_arrays()), two slots
    summary/state.attrs[current] the slot that holds the last complete save

The state is the truth about which scenarios are counted (its bitmap); a save is ordered so that a process
killed at any point leaves a consistent file: failure reasons of the new rows, then the state into the
slot not in use, flush, then `current` flips to it, flush, then the new rows' `done` flags, flush. A kill
before the flip leaves the previous save intact; one after it leaves `done` behind the state, and
`open_for_resume` rewrites `done` from the state's bitmap. Rows counted since the last save are lost by a
kill and solved again on resume, which is why the state and `done` never disagree after resuming.
Overwriting two fixed slots in place keeps the file size constant (HDF5 does not reclaim deleted space).

From scenarios.store: STRING_DTYPE, CHUNK_CACHE_BYTES, StoreMismatch, parktwin_version and is_complete are
used as they are; its private helpers _utc_now, _attr_value, _runs and _as_rows, and the id-writing part
of ResultStore.create, are copied below in minimal form (ResultStore.create also makes the full result
datasets, which a summary file must not claim to have).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from parktwin.hydraulics.network import LinkKind, NetworkArrays
from parktwin.hydraulics.results import ResultSet
from parktwin.scenarios.statistics import SummaryAccumulator, SummaryOptions
from parktwin.scenarios.store import (CHUNK_CACHE_BYTES, STRING_DTYPE, StoreMismatch, _as_rows, _attr_value, _runs,
                              _utc_now, is_complete, open_to_resume, parktwin_version,
                              write_network)

__all__ = ["SummaryStore", "read_summary", "read_accumulator", "is_complete", "StoreMismatch"]

STORE_KIND = "summary"
_SLOTS = ("a", "b")
_DONE_STEP = 1 << 23          # scenarios per slice when rewriting done flags (a multiple of 8)
_UNITS = {"pressure": "m", "leak": "m3/s", "unserved": "m3/s", "flow": "m3/s", "velocity": "m/s",
          "quantile": "1", "n": "count", "duplicates": "count"}


def _write_ids(f: h5py.File, net: NetworkArrays, ids: list[str], time_s: np.ndarray, perturbations) -> None:
    write_network(f, net, ids, time_s)
    f.create_dataset("scenario/done", shape=(len(ids),), dtype=np.bool_, fillvalue=False)
    f.create_dataset("scenario/failure", data=np.array([""] * len(ids), dtype=object), dtype=STRING_DTYPE)
    if perturbations is not None:
        perturbations.write_h5(f.require_group("scenario/perturbations"))


def _padded_state(acc: SummaryAccumulator, n_scenarios: int) -> dict[str, np.ndarray]:
    """to_arrays() with the bitmap at its full size, so the slot datasets keep one shape for the run."""
    arrays = acc.to_arrays()
    bits = np.zeros((n_scenarios + 7) // 8, np.uint8)
    bits[: len(arrays["counted"])] = arrays["counted"]
    arrays["counted"] = bits
    return arrays


def _current_state(f: h5py.File) -> dict[str, np.ndarray]:
    group = f["summary/state"]
    slot = group[str(group.attrs["current"])]
    return {name: ds[()] for name, ds in slot.items()}


def _write_done(f: h5py.File, bits: np.ndarray, n_scenarios: int) -> None:
    """scenario/done := the state's bitmap, in slices so memory stays bounded for any number of scenarios."""
    for lo in range(0, n_scenarios, _DONE_STEP):
        hi = min(lo + _DONE_STEP, n_scenarios)
        chunk = np.unpackbits(bits[lo // 8: (hi + 7) // 8], bitorder="little")[: hi - lo].astype(bool)
        f["scenario/done"][lo:hi] = chunk


def _unit(name: str) -> str:
    if "prob" in name:
        return "1 (fraction of the scenarios counted at that time)"
    return "count" if "hist" in name else _UNITS.get(name.split("_")[0], "")


@dataclass
class SummaryStore:
    """An open summary file. Use `create` or `open_for_resume`, then `add` chunks, then `close`."""

    path: Path
    file: h5py.File
    acc: SummaryAccumulator
    n_scenarios: int
    time_s: np.ndarray
    save_every: int = 8
    _pending: list = field(default_factory=list)   # (rows, failure reasons) counted since the last save
    _unsaved_chunks: int = 0

    @staticmethod
    def create(path, net: NetworkArrays, scenario_ids, time_s, perturbations, attrs: dict,
               options: SummaryOptions = SummaryOptions(), save_every: int = 8) -> "SummaryStore":
        """Create (overwrite) `path`, nothing counted yet. `attrs` must carry `backend` and `device`; all
        of it is written as root attributes. The state is saved every `save_every` chunks and at close."""
        missing = {"backend", "device"} - set(attrs)
        if missing:
            raise ValueError(f"attrs must include {sorted(missing)}")
        if int(save_every) < 1:
            raise ValueError(f"save_every must be at least 1, got {save_every}")
        ids = [str(s) for s in scenario_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("scenario ids must be unique")
        time_s = np.asarray(time_s, dtype=np.int64)
        acc = SummaryAccumulator(len(time_s), net.n_nodes, net.n_links, options, n_junctions=net.n_junctions,
                                 quality=bool(attrs.get("quality_kind")))
        path = Path(path)
        f = h5py.File(path, "w", rdcc_nbytes=CHUNK_CACHE_BYTES)
        _write_ids(f, net, ids, time_s, perturbations)
        g = f.create_group("summary")
        for key, value in options.__dict__.items():
            g.attrs[key] = np.asarray(value, np.float64)
        diameter = np.where(np.asarray(net.link_kind) == LinkKind.PUMP, np.nan, np.asarray(net.diameter_m, float))
        g.create_dataset("link_diameter_m", data=diameter).attrs["unit"] = "m; NaN = no velocity (pumps)"
        state = g.create_group("state")
        for slot in _SLOTS:
            for name, value in _padded_state(acc, len(ids)).items():
                state.create_dataset(f"{slot}/{name}", data=value)
        state.attrs["current"] = _SLOTS[0]
        f.attrs["parktwin_version"] = parktwin_version()
        f.attrs["network_sha256"] = net.source_sha256
        f.attrs["network_name"] = net.name
        f.attrs["created_utc"] = _utc_now()
        f.attrs["store"] = STORE_KIND
        for key, value in attrs.items():
            f.attrs[key] = _attr_value(value)
        f.attrs["complete"] = False
        f.flush()
        return SummaryStore(path, f, acc, len(ids), time_s, int(save_every))

    @staticmethod
    def open_for_resume(path, expected_sha256: str, expected_ids, expected_time_s=None,
                        options: SummaryOptions | None = None, save_every: int = 8) -> "SummaryStore":
        """Re-open a partly counted summary. Refuses (StoreMismatch) a result file, another network,
        other scenario ids or order, other report times or, if given, other SummaryOptions."""
        path = Path(path)
        f = open_to_resume(path, rdcc_nbytes=CHUNK_CACHE_BYTES)
        try:
            if f.attrs.get("store", "") != STORE_KIND:
                raise StoreMismatch(f"{path}: not a summary file; refusing to resume")
            found = str(f.attrs.get("network_sha256", ""))
            if found != expected_sha256:
                raise StoreMismatch(f"{path}: written for network sha256 {found[:12] or '?'}, "
                                    f"not {expected_sha256[:12] or '?'}; refusing to resume")
            ids = f["scenario/ids"].asstr()[()]
            expected = np.asarray([str(s) for s in expected_ids], dtype=object)
            if len(ids) != len(expected) or not np.array_equal(ids, expected):
                raise StoreMismatch(f"{path}: holds {len(ids)} scenarios with other ids or order than "
                                    f"the {len(expected)} asked for; refusing to resume")
            time_s = f["time_s"][()]
            if expected_time_s is not None and not np.array_equal(time_s, np.asarray(expected_time_s)):
                raise StoreMismatch(f"{path}: report times differ (file has {len(time_s)}); refusing to resume")
            state = _current_state(f)
            acc = SummaryAccumulator.from_arrays(state)
            if options is not None and options != acc.options:
                raise StoreMismatch(f"{path}: summarised with {acc.options}, not {options}; refusing to resume")
            _write_done(f, state["counted"], len(ids))
        except BaseException:
            f.close()
            raise
        f.attrs["resumed_utc"] = _utc_now()
        f.attrs["complete"] = False
        f.flush()
        return SummaryStore(path, f, acc, len(ids), time_s, int(save_every))

    # ------------------------------------------------------------------ adding
    def pending_rows(self) -> np.ndarray:
        """Indices of the scenarios not counted yet, in order."""
        return np.flatnonzero(~self.acc.counted_mask(self.n_scenarios))

    def done_rows(self) -> np.ndarray:
        return np.flatnonzero(self.acc.counted_mask(self.n_scenarios))

    def add(self, rows, results: ResultSet, required_demand_m3s: np.ndarray | None = None) -> None:
        """Count one chunk's results for `rows` (a slice or indices, any order). Scenarios already counted
        are ignored (SummaryAccumulator.duplicates_ignored). See SummaryAccumulator.add for
        `required_demand_m3s` (pressure-driven runs)."""
        idx = _as_rows(rows, self.n_scenarios)
        _, n, l, _ = self.acc.dims
        if len(results.node_ids) != n or len(results.link_ids) != l:
            raise ValueError("results are for another network (node or link count differs)")
        if not np.array_equal(np.asarray(results.time_s), self.time_s):
            raise ValueError(f"results have report times {results.time_s}, the file {self.time_s}")
        fresh = self.acc.add(results, idx, required_demand_m3s)
        if fresh.any():
            reasons = np.asarray([str(v) for v in np.asarray(results.failure, dtype=object)[fresh]], dtype=object)
            self._pending.append((idx[fresh], reasons))
        self._unsaved_chunks += 1
        if self._unsaved_chunks >= self.save_every:
            self.save()

    def save(self) -> None:
        """Save the state and the done flags of the rows counted since the last save (order: module doc)."""
        f = self.file
        rows = np.concatenate([r for r, _ in self._pending]) if self._pending else np.zeros(0, np.int64)
        reasons = np.concatenate([m for _, m in self._pending]) if self._pending else np.zeros(0, object)
        order = np.argsort(rows, kind="stable")
        rows, reasons = rows[order], reasons[order]
        runs = _runs(rows)
        for start, stop, pos in runs:
            f["scenario/failure"][start:stop] = reasons[pos: pos + stop - start]
        state = f["summary/state"]
        slot = _SLOTS[1 - _SLOTS.index(str(state.attrs["current"]))]
        for name, value in _padded_state(self.acc, self.n_scenarios).items():
            state[slot][name][...] = value
        f.flush()
        state.attrs["current"] = slot
        f.flush()
        for start, stop, _ in runs:
            f["scenario/done"][start:stop] = True
        f.flush()
        self._pending, self._unsaved_chunks = [], 0

    def set_attrs(self, attrs: dict) -> None:
        for key, value in attrs.items():
            self.file.attrs[key] = _attr_value(value)

    def close(self, complete: bool = True) -> bool:
        """Save, write the statistics, close. `complete` is written True only if asked for and every
        scenario is counted. Returns what was written."""
        if not self.file.id.valid:
            return False
        is_done = False
        try:
            self.save()
            g = self.file["summary"]
            for name, value in self.acc.finalize(g["link_diameter_m"][()]).items():
                if name in g:
                    g[name][...] = value
                else:
                    unit = str(self.file.attrs.get("quality_units", "")) if name.startswith("quality_") and \
                        "prob" not in name else _unit(name)
                    g.create_dataset(name, data=value).attrs["unit"] = unit
            is_done = bool(complete and self.acc.n_scenarios == self.n_scenarios)
            if is_done:
                self.file.attrs["completed_utc"] = _utc_now()
        finally:
            self.file.attrs["complete"] = is_done
            self.file.close()
        return is_done

    def __enter__(self) -> "SummaryStore":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)


# ---------------------------------------------------------------------- reading
def read_accumulator(path) -> SummaryAccumulator:
    """The accumulator as last saved: to merge summaries of several files, or to inspect raw counts."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("store", "") != STORE_KIND:
            raise ValueError(f"{path}: not a summary file")
        return SummaryAccumulator.from_arrays(_current_state(f))


def read_summary(path) -> tuple[dict[str, np.ndarray], dict]:
    """(statistics, meta). Statistics are those written at close; a file killed before any close gives
    the statistics of its last saved state instead. meta: attrs, complete, options, ids, times, done."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("store", "") != STORE_KIND:
            raise ValueError(f"{path}: not a summary file (no `store = summary` attribute)")
        g = f["summary"]
        diameter = g["link_diameter_m"][()]
        state = _current_state(f)
        if "pressure_mean" in g:
            stats = {name: ds[()] for name, ds in g.items()
                     if isinstance(ds, h5py.Dataset) and name != "link_diameter_m"}
        else:
            stats = SummaryAccumulator.from_arrays(state).finalize(diameter)
        done = f["scenario/done"][()]
        meta = {
            "attrs": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()},
            "complete": bool(f.attrs.get("complete", False)) and bool(done.all()),
            "options": SummaryOptions.from_json(state["options_json"].tobytes().decode()),
            "node_ids": tuple(f["node/ids"].asstr()[()]),
            "link_ids": tuple(f["link/ids"].asstr()[()]),
            "scenario_ids": tuple(f["scenario/ids"].asstr()[()]),
            "time_s": f["time_s"][()],
            "done": done,
            "failure": np.asarray(f["scenario/failure"].asstr()[()], dtype=object),
            "link_diameter_m": diameter,
            "node_xyz_m": f["node/xyz"][()],
            "link_nodes": f["link/nodes"][()],
            "network_inp": f["network/inp"][()].tobytes(),
        }
    return stats, meta
