"""Reading perturbation tables from .csv, .json and .h5/.hdf5 files (the table writes itself: `to_csv`,
`to_json`, `write_h5`).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from parktwin.scenarios.perturbations import COLUMNS, DEFAULT_H5_GROUP, PerturbationError, PerturbationTable


def read_perturbations(path, *, group: str = DEFAULT_H5_GROUP, allow_empty: bool = False) -> PerturbationTable:
    """A checked table from .csv, .json or .h5/.hdf5 (the group `group`). A file without rows is an
    error unless `allow_empty` (result files of base-case runs store an empty table)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise PerturbationError(source, None, "no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path, source, allow_empty)
        if suffix == ".json":
            return _read_json(path, source, allow_empty)
    except UnicodeDecodeError as err:
        raise PerturbationError(source, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    if suffix in (".h5", ".hdf5"):
        import h5py
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise PerturbationError(source, None, f"cannot open as HDF5 ({err})") from None
        with f:
            if group not in f:
                raise PerturbationError(source, None, f"no group {group!r}")
            return PerturbationTable.read_h5(f[group], source=source, allow_empty=allow_empty)
    raise PerturbationError(source, None, f"unsupported file type {suffix or '(none)'!r}; use .csv, .json or .h5")


class _PlainLines:
    """csv.reader's interface (iteration, line_num) over unquoted text."""

    def __init__(self, text: str):
        self._lines = text.split("\n")
        if self._lines and self._lines[-1] == "":
            self._lines.pop()
        self.line_num = 0

    def __iter__(self):
        for number, line in enumerate(self._lines, start=1):
            self.line_num = number
            yield line.split(",")


def _read_csv(path: Path, source: str, allow_empty: bool) -> PerturbationTable:
    cols: list[list[str]] = [[], [], [], []]
    numbers: list[int] = []
    header: list[str] | None = None
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    # Without quotes a CSV row is its line split at commas; csv.reader is kept for quoted files only
    # (it costs more than the whole rest of reading a 100,000-row table).
    if '"' not in text and "\r" not in text:
        reader = _PlainLines(text)
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for fields in reader:
            if not any(x.strip() for x in fields):
                continue
            if header is None:
                header = [h.strip().lower() for h in fields]
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise PerturbationError(source, reader.line_num, f"missing column(s) "
                                            f"{', '.join(map(repr, missing))}; the header must name "
                                            f"{','.join(COLUMNS)}")
                index = [header.index(c) for c in COLUMNS]
                continue
            extra = [x for x in fields[len(header):] if x.strip()]
            if len(fields) < len(header) or extra:
                PerturbationTable._fail_after(cols, numbers, source, reader.line_num,
                                              f"{len(fields)} fields, but the header has {len(header)}")
            for c, k in zip(cols, index):
                c.append(fields[k].strip())
            numbers.append(reader.line_num)
    except csv.Error as err:
        raise PerturbationError(source, reader.line_num, f"malformed CSV ({err})") from None
    if header is None:
        raise PerturbationError(source, None, "the file is empty")
    if not numbers and not allow_empty:
        raise PerturbationError(source, None, "the file has a header but no rows")
    return PerturbationTable._checked_from_lists(cols, numbers, source)


def _read_json(path: Path, source: str, allow_empty: bool) -> PerturbationTable:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise PerturbationError(source, None, "the file is empty")
    try:
        # Numbers stay text, so a value reads exactly as written (and NaN/Infinity reach the finite check).
        data = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except json.JSONDecodeError as err:
        raise PerturbationError(source, None, f"not valid JSON (line {err.lineno}, column {err.colno}: "
                                              f"{err.msg})") from None
    if isinstance(data, dict) and "rows" in data:
        data = data["rows"]
    if not isinstance(data, list):
        raise PerturbationError(source, None, 'expected a list of rows or {"rows": [...]}')
    if not data and not allow_empty:
        raise PerturbationError(source, None, "the file has no rows")
    return PerturbationTable.from_rows(data, source=source)
