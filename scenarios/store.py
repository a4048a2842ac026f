"""The HDF5 result store: DESIGN's "HDF5 result layout", written chunk by chunk.

    store = ResultStore.create(path, net, scenario_ids, time_s, perturbations, attrs)
    store.write(slice(0, 2048), results)        # data, then failure reasons, then done flags, then flush
    store.close(complete=True)

Every dataset is created at full size (B, T, N) up front, chunked along the scenario axis, so memory stays
bounded whatever B is and a chunk can be written as soon as it is solved. An interrupted run is never
disguised as a finished one: the root attribute `complete` stays False and `scenario/done` says which
scenarios hold results, so `open_for_resume` can carry on in the same file (no temp-file-and-rename, which
would throw the partial work away).

Float precision is the caller's choice. `parktwin run` writes float32 by default: the validation tolerance
(1e-3 m, 1e-5 m3/s) survives it with room to spare (the ulp of a 1000 m head is 6e-5 m), files are half the
size, and writing 50,000 L-Town scenarios (N=785, L=909, T=1) takes 0.4-0.45 s against 0.9-2.1 s for
float64 on the development machine. `--precision double` (float_dtype=np.float64) makes the file
bit-identical to the in-memory ResultSet, for comparisons at 1e-9 from files.

What a file records is the run's choice (`--record`, SolverOptions.record): only the chosen element
quantities get datasets, and the root attribute `recorded` lists them (comma-separated ResultSet names,
"quality" where the file holds water quality). Status, convergence, iterations and failures are always
there. `read_results` returns an unrecorded quantity with no columns ([B, T, 0]), as ResultSet.allocate
does; `require_recorded` is the one clear error for a reader that needs one.

HDF5 chunks match the write pattern: a chunk spans every report time and every element, and its rows
divide the writer's chunk of scenarios (`scenarios_per_chunk`), so each write fills whole chunks.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.results import QUALITY, QUANTITIES, ResultSet, short_names

STRING_DTYPE = h5py.string_dtype("utf-8")
MAX_SCENARIOS_PER_CHUNK = 256
# Bigger HDF5 chunks make reading one scenario back slow; smaller ones make writing slow. A few MB is the
# usual sweet spot and keeps extended-period runs (large T) from producing 100 MB chunks.
TARGET_CHUNK_BYTES = 4 << 20
CHUNK_CACHE_BYTES = 16 << 20

# name in the file -> (ResultSet attribute, element axis "node"/"link"/None, kind)
_FIELDS = {
    "node/head": ("head_m", "node", "float"),
    "node/pressure": ("pressure_m", "node", "float"),
    "node/demand": ("demand_m3s", "node", "float"),
    "node/leak": ("leak_m3s", "node", "float"),
    "link/flow": ("flow_m3s", "link", "float"),
    "link/status": ("status", "link", "int8"),
    "solver/converged": ("converged", None, "bool"),
    "solver/iterations": ("iterations", None, "int32"),
}
# Water quality, present only in files whose root attribute quality_kind is set (a network whose QUALITY
# option is not NONE, run for a duration); units in the root attribute quality_units.
_QUALITY_FIELDS = {
    "node/quality": ("node_quality", "node", "float"),
    "link/quality": ("link_quality", "link", "float"),
}
_UNITS = {"node/head": "m", "node/pressure": "m", "node/demand": "m3/s", "node/leak": "m3/s",
          "link/flow": "m3/s", "link/status": "0 closed, 1 open, 2 active; -1 not written",
          "solver/iterations": "-1 not written"}


class StoreMismatch(ValueError):
    """A file cannot be resumed with the run asked for (other network, scenarios, times or --record)."""


class NotRecorded(ValueError):
    """A reader asked for a quantity the file's run did not record."""


def recorded_names(quantities=None, quality: bool = False) -> tuple[str, ...]:
    """The `recorded` list of a file: its element quantities (None: all of QUANTITIES) and "quality"."""
    chosen = QUANTITIES if quantities is None else tuple(n for n in QUANTITIES if n in quantities)
    return chosen + ((QUALITY,) if quality else ())


def file_recorded(f: h5py.File) -> tuple[str, ...]:
    """What an open result file records: its `recorded` attribute, or for files written before there was a
    choice, the result datasets it holds."""
    value = f.attrs.get("recorded")
    if value is not None:
        value = value.decode() if isinstance(value, bytes) else str(value)
        return tuple(n for n in value.split(",") if n)
    return recorded_names([attr for name, (attr, _, _) in _FIELDS.items() if name in f],
                          quality="node/quality" in f)


def require_recorded(path, quantity: str, recorded: tuple[str, ...], asked: str | None = None) -> None:
    """NotRecorded unless `quantity` (a name of results.RECORDABLE) is in `recorded`, naming the file,
    the quantity (and `asked`, what the caller wanted it for) and what the file holds."""
    if quantity not in recorded:
        name = short_names([quantity])[0]
        what = name if asked in (None, name) else f"{asked} needs {name}, which"
        held = ", ".join(short_names(recorded)) or "no element quantity"
        raise NotRecorded(f"{path}: {what} was not recorded in this file (recorded: {held}); "
                          f"run again with --record including {name}")


def open_to_resume(path: Path, **kwargs) -> h5py.File:
    """Open `path` read-write to resume it; a file HDF5 cannot open (a run killed while it created the
    file, or not HDF5 at all), or one whose creation never finished, is refused with one StoreMismatch that
    names it and says what to do."""
    try:
        f = h5py.File(path, "r+", **kwargs)
    except OSError as exc:
        raise StoreMismatch(f"{path}: not a readable HDF5 file ({exc}); it cannot be resumed: start "
                            "afresh (delete it, or write another file)") from None
    if not created(f):
        f.close()
        raise StoreMismatch(f"{path}: its creation did not finish (the run was stopped while it wrote the "
                            "scenarios' perturbation table); it cannot be resumed: start afresh (delete it, "
                            "or write another file)")
    return f


def created(f: h5py.File) -> bool:
    """Whether the stores' create() got past the perturbation table (which a sampled study writes a chunk at
    a time, so a run can be stopped in it): both write the network's sha256 after it."""
    return "network_sha256" in f.attrs


def parktwin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("parktwin")
    except PackageNotFoundError:
        return "0+unknown"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _attr_value(value):
    """HDF5 attributes cannot hold None; store it as the string 'none' so every option is visible."""
    if value is None:
        return "none"
    if isinstance(value, (bool, int, float, str, np.generic, np.ndarray)):
        return value
    return str(value)


def _runs(rows: np.ndarray) -> list[tuple[int, int, int]]:
    """Split sorted row indices into runs of consecutive rows: (file start, file stop, position in rows).

    h5py's fancy indexing is slow and needs increasing indices; slices per run are as fast as one slice.
    """
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [len(rows)]))
    return [(int(rows[a]), int(rows[b - 1]) + 1, int(a)) for a, b in zip(starts, stops)]


def write_network(f: h5py.File, net: NetworkArrays, ids, time_s: np.ndarray) -> None:
    """The datasets every ParkTwin file carries: ids, times, coordinates, link ends and the .inp itself."""
    f.create_dataset("node/ids", data=np.array(net.node_ids, dtype=object), dtype=STRING_DTYPE)
    f.create_dataset("link/ids", data=np.array(net.link_ids, dtype=object), dtype=STRING_DTYPE)
    f.create_dataset("scenario/ids", data=np.array(ids, dtype=object), dtype=STRING_DTYPE)
    f.create_dataset("time_s", data=time_s).attrs["unit"] = "s"
    xyz = np.column_stack([np.asarray(net.xy_m, dtype=np.float64).reshape(net.n_nodes, 2),
                           np.asarray(net.elevation_m, dtype=np.float64)])
    f.create_dataset("node/xyz", data=xyz).attrs["unit"] = "m (x, y, elevation); nan = no coordinates"
    f.create_dataset("link/nodes", data=np.column_stack([net.link_start, net.link_end]).astype(np.int32))
    src = Path(net.source_path) if net.source_path else None
    inp = src.read_bytes() if src and src.is_file() else b""
    d = f.create_dataset("network/inp", data=np.frombuffer(inp, dtype=np.uint8))
    d.attrs["filename"] = src.name if src else ""
    d.attrs["sha256"] = net.source_sha256


def _as_rows(rows, n_scenarios: int) -> np.ndarray:
    idx = np.arange(n_scenarios)[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError("rows must be a slice or a 1-D array of scenario indices")
    if len(idx) and (idx.min() < 0 or idx.max() >= n_scenarios):
        raise IndexError(f"scenario rows out of range 0..{n_scenarios - 1}")
    return idx


@dataclass
class ResultStore:
    """An open result file. Use `create` or `open_for_resume`, then `write` chunks, then `close`."""

    path: Path
    file: h5py.File
    n_scenarios: int
    time_s: np.ndarray
    n_nodes: int
    n_links: int
    float_dtype: np.dtype

    # ------------------------------------------------------------------ opening
    @staticmethod
    def create(path, net: NetworkArrays, scenario_ids, time_s, perturbations, attrs: dict,
               compression: str | None = None, float_dtype=np.float64,
               scenarios_per_chunk: int | None = None, quantities=None) -> "ResultStore":
        """Create (overwrite) `path` with every dataset at full size, nothing solved yet.

        `attrs` must carry `backend` and `device`; anything else in it (the solver options) is written as
        root attributes too. `compression` is None (default, fastest), "gzip" or "lzf".
        `scenarios_per_chunk` caps the HDF5 chunk along the scenario axis (default: up to 256 scenarios
        and about 4 MB); a value dividing the writer's chunk size keeps writes chunk-aligned, and a chunk
        that the 4 MB cap makes smaller is a divisor of it too. `quantities`: the element quantities to
        store (names of results.QUANTITIES; None: all); the others get no dataset. Water quality is stored
        where `attrs` has quality_kind.
        """
        missing = {"backend", "device"} - set(attrs)
        if missing:
            raise ValueError(f"attrs must include {sorted(missing)}")
        if compression not in (None, "gzip", "lzf"):
            raise ValueError(f"compression must be None, 'gzip' or 'lzf', not {compression!r}")
        float_dtype = np.dtype(float_dtype)
        if float_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError("float_dtype must be float32 or float64")
        ids = [str(s) for s in scenario_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("scenario ids must be unique")
        b, n, l = len(ids), net.n_nodes, net.n_links
        time_s = np.asarray(time_s, dtype=np.int64)
        t = len(time_s)
        unknown = set(quantities or ()) - set(QUANTITIES)
        if unknown:
            raise ValueError(f"quantities: unknown {sorted(unknown)}; valid: {', '.join(QUANTITIES)}")
        recorded = recorded_names(quantities, quality=bool(attrs.get("quality_kind")))

        path = Path(path)
        f = h5py.File(path, "w", rdcc_nbytes=CHUNK_CACHE_BYTES)
        write_network(f, net, ids, time_s)

        comp = {"compression": compression} if compression else {}
        fields = {name: spec for name, spec in _FIELDS.items() if spec[2] != "float" or spec[0] in recorded}
        fields.update(_QUALITY_FIELDS if QUALITY in recorded else {})
        for name, (_, axis, kind) in fields.items():
            width = {"node": n, "link": l, None: None}[axis]
            shape = (b, t) if width is None else (b, t, width)
            dtype, fill = {"float": (float_dtype, np.nan), "int8": (np.int8, -1),
                           "bool": (np.bool_, False), "int32": (np.int32, -1)}[kind]
            rows = _rows_per_chunk(b, t * (width or 1) * np.dtype(dtype).itemsize, scenarios_per_chunk)
            chunks = (rows, max(t, 1)) + (() if width is None else (max(width, 1),))
            # Unwritten rows read back as the fill value (NaN, -1), never as plausible numbers.
            ds = f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks if b and t else None,
                                  fillvalue=fill, **(comp if b and t else {}))
            if name in _UNITS:
                ds.attrs["unit"] = _UNITS[name]
            elif name in _QUALITY_FIELDS:
                ds.attrs["unit"] = str(attrs.get("quality_units", ""))
        f.create_dataset("scenario/done", shape=(b,), dtype=np.bool_, fillvalue=False)
        f.create_dataset("scenario/failure", data=np.array([""] * b, dtype=object), dtype=STRING_DTYPE)
        if perturbations is not None:
            perturbations.write_h5(f.require_group("scenario/perturbations"))

        f.attrs["parktwin_version"] = parktwin_version()
        f.attrs["network_sha256"] = net.source_sha256
        f.attrs["network_name"] = net.name
        f.attrs["created_utc"] = _utc_now()
        f.attrs["float_dtype"] = float_dtype.name
        f.attrs["recorded"] = ",".join(recorded)
        for key, value in attrs.items():
            f.attrs[key] = _attr_value(value)
        f.attrs["complete"] = False
        f.flush()
        return ResultStore(path, f, b, time_s, n, l, float_dtype)

    @staticmethod
    def open_for_resume(path, expected_sha256: str, expected_ids, expected_time_s=None,
                        expected_recorded=None) -> "ResultStore":
        """Re-open a partly written file. Refuses (StoreMismatch) unless it is the same network, the same
        scenario ids in the same order and, if given, the same report times and the same recorded
        quantities (`expected_recorded`, as recorded_names gives them)."""
        path = Path(path)
        f = open_to_resume(path, rdcc_nbytes=CHUNK_CACHE_BYTES)
        try:
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
            recorded = file_recorded(f)
            if expected_recorded is not None and tuple(expected_recorded) != recorded:
                held, asked = (",".join(short_names(r)) or "none" for r in (recorded, expected_recorded))
                raise StoreMismatch(f"{path}: records {held}, not {asked} as asked (--record); refusing to "
                                    f"resume: give --record {held} (or write another file)")
        except BaseException:
            f.close()
            raise
        f.attrs["resumed_utc"] = _utc_now()
        f.attrs["complete"] = False
        return ResultStore(path, f, len(ids), time_s, len(f["node/ids"]), len(f["link/ids"]),
                           np.dtype(str(f.attrs.get("float_dtype", "float64"))))

    # ------------------------------------------------------------------ writing
    def pending_rows(self) -> np.ndarray:
        """Indices of the scenarios not written yet, in order."""
        return np.flatnonzero(~self.file["scenario/done"][()])

    def done_rows(self) -> np.ndarray:
        return np.flatnonzero(self.file["scenario/done"][()])

    def write(self, rows, results: ResultSet) -> None:
        """Write one chunk's results for `rows` (a slice or sorted indices) and mark them done.

        Order matters for a process killed mid-write: data first, then the done flags, then flush, so a
        scenario is only ever flagged done once its data is in the file.
        """
        idx = _as_rows(rows, self.n_scenarios)
        if results.batch_size != len(idx):
            raise ValueError(f"{results.batch_size} results for {len(idx)} rows")
        if len(results.node_ids) != self.n_nodes or len(results.link_ids) != self.n_links:
            raise ValueError("results are for another network (node or link count differs)")
        if not np.array_equal(np.asarray(results.time_s), self.time_s):
            raise ValueError(f"results have report times {results.time_s}, the file {self.time_s}")
        order = np.argsort(idx, kind="stable")
        if not np.all(order == np.arange(len(idx))):
            idx = idx[order]
        else:
            order = None
        runs = _runs(idx)
        f = self.file
        for name, (attr, _, _) in _stored_fields(f).items():
            ds = f[name]
            data = getattr(results, attr)
            if data is not None and data.ndim == 3 and data.shape[2] != ds.shape[2]:
                raise ValueError(f"{self.path}: the results do not hold {attr} ({data.shape[2]} columns), which "
                                 "this file records; solve with the file's record selection")
            if data is None:
                # a scenario that failed before any step (the solver raised) has no quality: NaN, as its heads
                data = np.full((results.batch_size,) + ds.shape[1:], np.nan)
            if order is not None:
                data = data[order]
            data = np.asarray(data, dtype=ds.dtype)
            for start, stop, pos in runs:
                ds[start:stop] = data[pos: pos + stop - start]
        failure = np.asarray([str(s) for s in results.failure], dtype=object)
        if order is not None:
            failure = failure[order]
        for start, stop, pos in runs:
            f["scenario/failure"][start:stop] = failure[pos: pos + stop - start]
        for start, stop, _ in runs:
            f["scenario/done"][start:stop] = True
        f.flush()

    def set_attrs(self, attrs: dict) -> None:
        for key, value in attrs.items():
            self.file.attrs[key] = _attr_value(value)

    def close(self, complete: bool = True) -> bool:
        """Close the file; `complete` is written True only if asked for and every scenario is done.
        Returns what was written."""
        if not self.file.id.valid:
            return False
        done = bool(self.file["scenario/done"][()].all())
        is_done = bool(complete and done)
        self.file.attrs["complete"] = is_done
        if is_done:
            self.file.attrs["completed_utc"] = _utc_now()
        self.file.close()
        return is_done

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)


def _stored_fields(f: h5py.File) -> dict:
    """The result datasets this file holds: status and solver always, the recorded quantities of
    _FIELDS, the quality ones where it records quality."""
    return {k: v for k, v in dict(_FIELDS, **_QUALITY_FIELDS).items() if k in f}


def _rows_per_chunk(b: int, bytes_per_scenario: int, scenarios_per_chunk: int | None) -> int:
    """Scenarios per HDF5 chunk of a dataset: at most MAX_SCENARIOS_PER_CHUNK and about
    TARGET_CHUNK_BYTES, and, when the writer's chunk is known (`scenarios_per_chunk`, a divisor of it),
    a divisor of that, so every write covers whole chunks (no chunk is written twice)."""
    cap = max(1, min(b, MAX_SCENARIOS_PER_CHUNK, TARGET_CHUNK_BYTES // max(bytes_per_scenario, 1)))
    if scenarios_per_chunk is None:
        return int(cap)
    step = max(1, int(scenarios_per_chunk))
    if step <= cap:
        return step
    # The largest divisor of the writer's chunk within the cap; one under half the cap would make many
    # tiny chunks, and then the cap itself is better.
    best = max(d for d in range(1, cap + 1) if step % d == 0)
    return best if 2 * best >= cap else int(cap)


# ---------------------------------------------------------------------- reading
def is_complete(path) -> bool:
    """True only for a file whose run finished: `complete` attribute set and every scenario done."""
    with h5py.File(path, "r") as f:
        return bool(f.attrs.get("complete", False)) and bool(f["scenario/done"][()].all())


def _select(f: h5py.File, scenarios) -> np.ndarray:
    b = len(f["scenario/ids"])
    if scenarios is None:
        return np.arange(b)
    if isinstance(scenarios, slice):
        return np.arange(b)[scenarios]
    if isinstance(scenarios, str):
        scenarios = [scenarios]
    values = list(scenarios)
    if values and all(isinstance(v, (str, np.str_)) for v in values):
        lookup = {s: i for i, s in enumerate(f["scenario/ids"].asstr()[()])}
        unknown = [v for v in values if v not in lookup]
        if unknown:
            raise KeyError(f"scenario ids not in the file: {unknown[:5]}")
        return np.asarray([lookup[v] for v in values], dtype=np.int64)
    arr = np.asarray(values)
    if arr.dtype == bool:
        return np.flatnonzero(arr)
    return _as_rows(arr.astype(np.int64), b)


def _read_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """ds[rows] for any row order, by consecutive runs (h5py fancy indexing wants increasing indices)."""
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    out = np.empty((len(rows),) + ds.shape[1:], dtype=ds.dtype)
    for start, stop, pos in _runs(sorted_rows):
        out[pos: pos + stop - start] = ds[start:stop]
    # Duplicates in `rows` make runs overlap; fill from the sorted copy then undo the sort.
    result = np.empty_like(out)
    result[order] = out
    return result


def read_results(path, scenarios=None) -> tuple[ResultSet, dict]:
    """Read a result file back: (ResultSet of the chosen scenarios, meta).

    `scenarios`: None (all), a slice, integer rows, a boolean mask or scenario ids. Floats come back as
    float64 whatever the file holds. Scenarios not written yet (see meta["done"]) read as NaN. Quantities
    the run did not record (meta["recorded"] lists those it did) come back with no columns.
    """
    with h5py.File(path, "r") as f:
        rows = _select(f, scenarios)
        if len(rows) and np.all(np.diff(rows) == 1):
            take = lambda ds: ds[int(rows[0]): int(rows[-1]) + 1]  # noqa: E731
        else:
            take = lambda ds: _read_rows(ds, rows)  # noqa: E731
        values = {}
        for name, (attr, _, kind) in _stored_fields(f).items():
            data = take(f[name])
            values[attr] = data.astype(np.float64) if kind == "float" else data
        values["iterations"] = values["iterations"].astype(np.int64)
        for attr in QUANTITIES:   # not recorded: no columns, as ResultSet.allocate(quantities=...) gives them
            values.setdefault(attr, np.empty((len(rows), len(f["time_s"]), 0)))
        # Variable-length strings: reading them all is cheap (B short strings) and sidesteps wrappers.
        failure = np.asarray(f["scenario/failure"].asstr()[()], dtype=object)[rows]
        results = ResultSet(
            node_ids=tuple(f["node/ids"].asstr()[()]), link_ids=tuple(f["link/ids"].asstr()[()]),
            time_s=f["time_s"][()], failure=failure, **values,
        )
        all_ids = f["scenario/ids"].asstr()[()]
        meta = {
            "attrs": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()},
            "complete": bool(f.attrs.get("complete", False)) and bool(f["scenario/done"][()].all()),
            "scenario_ids": tuple(all_ids[rows]),
            "rows": rows,
            "done": f["scenario/done"][()][rows],
            "node_xyz_m": f["node/xyz"][()],
            "link_nodes": f["link/nodes"][()],
            "network_inp": f["network/inp"][()].tobytes(),
            "perturbations_group": "scenario/perturbations" if "scenario/perturbations" in f else None,
            "recorded": file_recorded(f),
        }
    return results, meta
