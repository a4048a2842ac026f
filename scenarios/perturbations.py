"""Perturbation tables: `scenario,element,attribute,value` rows, checked column-wise.

A table is checked in two stages, both before anything is solved: `check()` needs no network (known
attribute, value of the right kind, no duplicate rows) and `validate(net)` adds the network (element ids
and kinds, leak_cd only with a leak, tank levels in range). Either raises one `PerturbationError` for the
earliest offending row. Checks run column-wise over numpy arrays, so 100,000 scenarios cost no Python
loop per row. Reading a table from a file is `scenarios.perturbation_files`; turning one into a batch of
solver inputs is `scenarios.batch.build_batch`.
"""
from __future__ import annotations

import csv
import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.scenarios.attributes import (ALL_JUNCTIONS, ATTRIBUTES, STATUS_WORDS, ElementKind, ValueKind,
                                  attribute_names, describe_element, element_columns)

COLUMNS = ("scenario", "element", "attribute", "value")
DEFAULT_H5_GROUP = "scenario/perturbations"
_ATTR_CODE = {a.name: i for i, a in enumerate(ATTRIBUTES)}


class PerturbationError(ValueError):
    """A table that cannot be applied: one line naming the source, the row and the reason."""

    def __init__(self, source: str, row_number: int | None, reason: str):
        self.source, self.row_number, self.reason = source, row_number, reason
        where = f"row {row_number}: " if row_number is not None else ""
        super().__init__(f"{source}: {where}{reason}")


class _FirstError:
    """Keeps the earliest row's error so checks can run column by column yet report in file order."""

    def __init__(self):
        self.pos: int | None = None
        self.reason = ""

    def offer(self, pos: int, reason: str) -> None:
        if self.pos is None or pos < self.pos:
            self.pos, self.reason = int(pos), reason

    def raise_if_any(self, table: "PerturbationTable") -> None:
        if self.pos is not None:
            raise PerturbationError(table.source, int(table.row_number[self.pos]), self.reason)


def factorize(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Unique values in order of first appearance and each row's code (a dict beats sorting strings)."""
    seen: dict[str, int] = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values.tolist()), np.int64, len(values))
    return list(seen), codes


def _as_str_array(values, n: int) -> np.ndarray:
    """A stripped str column of length n; numbers become their shortest round-trip text."""
    arr = np.atleast_1d(np.asarray(values))
    return np.strings.strip(np.broadcast_to(arr.astype(str), (n,)))


@dataclass(frozen=True, eq=False)
class PerturbationTable:
    """Rows `scenario,element,attribute,value`, each column a numpy str array, values as written.

    Build it with `from_rows`, `from_columns` or `read_perturbations` (they check it); the raw constructor
    trusts its input until `check()` or `validate(net)` runs.
    """

    scenario: np.ndarray
    element: np.ndarray
    attribute: np.ndarray
    value: np.ndarray
    row_number: np.ndarray | None = None    # 1-based line (CSV) or row (JSON, HDF5, rows) in the source
    source: str = "<rows>"

    def __post_init__(self):
        n = len(self.scenario)
        for name in COLUMNS:
            col = np.asarray(getattr(self, name), dtype=str)
            if col.shape != (n,):
                raise PerturbationError(self.source, None, f"column {name!r} has shape {col.shape}, expected ({n},)")
            object.__setattr__(self, name, col)
        rows = np.arange(1, n + 1) if self.row_number is None else np.asarray(self.row_number, dtype=np.int64)
        object.__setattr__(self, "row_number", rows)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_rows(cls, rows, source: str = "<rows>") -> "PerturbationTable":
        """Rows as dicts with the four keys or as (scenario, element, attribute, value) sequences."""
        cols: list[list[str]] = [[], [], [], []]
        numbers: list[int] = []
        for i, row in enumerate(rows, start=1):
            fields = _row_fields(row)
            if isinstance(fields, str):
                cls._fail_after(cols, numbers, source, i, fields)
            for c, f in zip(cols, fields):
                c.append(f)
            numbers.append(i)
        return cls._checked_from_lists(cols, numbers, source)

    @classmethod
    def from_columns(cls, scenario, element, attribute, value, source: str = "<columns>") -> "PerturbationTable":
        """Whole columns at once (samplers); scalars broadcast, numeric values are written as text."""
        sizes = [np.size(c) for c in (scenario, element, attribute, value) if np.ndim(c) > 0]
        n = max(sizes) if sizes else 1
        table = cls(*(_as_str_array(c, n) for c in (scenario, element, attribute, value)), source=source)
        table.check()
        return table

    @classmethod
    def read_h5(cls, group, source: str | None = None, allow_empty: bool = True) -> "PerturbationTable":
        """The table stored in an open h5py group by `write_h5`."""
        import h5py
        source = source or f"{Path(group.file.filename).name}:{group.name}"
        cols = []
        for name in COLUMNS:
            if name not in group:
                raise PerturbationError(source, None, f"missing column {name!r} (need {', '.join(COLUMNS)})")
            ds = group[name]
            if ds.ndim != 1:
                raise PerturbationError(source, None, f"column {name!r} has shape {ds.shape}, expected 1-D")
            data = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]
            cols.append(_as_str_array(data, len(data)))
        if not len(cols[0]) and not allow_empty:
            raise PerturbationError(source, None, "the table has no rows")
        table = cls(*cols, source=source)
        table.check()
        return table

    @classmethod
    def _checked_from_lists(cls, cols, numbers, source) -> "PerturbationTable":
        table = cls(*(np.array(c, dtype=str) for c in cols), row_number=np.array(numbers, np.int64),
                    source=source)
        table.check()
        return table

    @classmethod
    def _fail_after(cls, cols, numbers, source, row_number, reason):
        # A malformed row k is reported only once the rows before it passed their own checks.
        cls._checked_from_lists(cols, numbers, source)
        raise PerturbationError(source, row_number, reason)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.scenario)

    def scenario_ids(self) -> tuple[str, ...]:
        """Scenario ids in order of first appearance."""
        return tuple(factorize(self.scenario)[0])

    def for_scenarios(self, ids) -> "PerturbationTable":
        """The rows of those scenarios only, in the table's order."""
        keep = np.isin(self.scenario, np.asarray(list(ids), dtype=str))
        out = PerturbationTable(self.scenario[keep], self.element[keep], self.attribute[keep],
                                self.value[keep], self.row_number[keep], self.source)
        parsed = self.__dict__.get("_parsed")
        if parsed is not None:
            object.__setattr__(out, "_parsed", tuple(p[keep] for p in parsed))
        return out

    def to_rows(self) -> list[dict[str, str]]:
        return [dict(zip(COLUMNS, r)) for r in zip(*(getattr(self, c).tolist() for c in COLUMNS))]

    # ------------------------------------------------------------------ writers
    def to_csv(self, path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            w.writerows(zip(*(getattr(self, c).tolist() for c in COLUMNS)))

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps({"rows": self.to_rows()}, indent=1), encoding="utf-8")

    def write_h5(self, group) -> None:
        """Four UTF-8 string datasets in the given h5py group (replacing any there)."""
        write_h5_tables(group, (self,))

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Network-free checks; raises PerturbationError for the earliest bad row."""
        if "_parsed" in self.__dict__:
            return
        first = _FirstError()
        for name in COLUMNS:
            empty = np.flatnonzero(getattr(self, name) == "")
            if len(empty):
                first.offer(empty[0], f"empty {name!r}")
        names, inverse = np.unique(self.attribute, return_inverse=True)
        code_of_unique = np.array([_ATTR_CODE.get(str(a), -1) for a in names], dtype=np.int64)
        attr_code = code_of_unique[inverse] if len(self) else np.zeros(0, np.int64)
        for k in np.flatnonzero(code_of_unique < 0):
            if names[k] != "":
                first.offer(np.argmax(inverse == k), _unknown_attribute(str(names[k])))
        numeric = np.full(len(self), np.nan)
        for code in np.unique(attr_code[attr_code >= 0]):
            rows = np.flatnonzero(attr_code == code)
            numeric[rows] = _parse_values(ATTRIBUTES[code], self.value[rows], rows, first)
        star = np.flatnonzero((self.element == ALL_JUNCTIONS) & (attr_code >= 0))
        wrong_star = star[[ATTRIBUTES[c].element is not ElementKind.JUNCTION_OR_ALL for c in attr_code[star]]]
        if len(wrong_star):
            first.offer(wrong_star[0], f"'*' (all junctions) is allowed only for demand_multiplier, "
                                       f"not {self.attribute[wrong_star[0]]}")
        self._check_duplicates(first)
        first.raise_if_any(self)
        object.__setattr__(self, "_parsed", (attr_code, numeric))

    def _check_duplicates(self, first: _FirstError) -> None:
        if len(self) < 2:
            return
        keys = [np.unique(getattr(self, c), return_inverse=True)[1] for c in ("attribute", "element", "scenario")]
        order = np.lexsort(keys)   # stable: equal keys keep file order
        same = np.ones(len(self) - 1, dtype=bool)
        for k in keys:
            same &= k[order[1:]] == k[order[:-1]]
        dup = np.flatnonzero(same)
        if len(dup):
            i = dup[np.argmin(order[dup + 1])]
            later, earlier = order[i + 1], order[i]
            first.offer(later, f"repeats row {self.row_number[earlier]} (scenario {str(self.scenario[later])!r}, "
                               f"element {str(self.element[later])!r}, attribute {str(self.attribute[later])!r})")

    def validate(self, net: NetworkArrays) -> None:
        """All checks, the network's included; raises PerturbationError for the earliest bad row."""
        resolve(self, net)


H5_CHUNK_ROWS = 4096


def write_h5_tables(group, tables) -> None:
    """The rows of `tables`, one table after another, as the four UTF-8 string datasets `read_h5` reads
    (replacing any in the group). The datasets grow with each table, so a study's table can be written a
    chunk of scenarios at a time and only that chunk is ever in memory."""
    import h5py
    for name in COLUMNS:
        if name in group:
            del group[name]
    columns = {name: group.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(H5_CHUNK_ROWS,),
                                          dtype=h5py.string_dtype()) for name in COLUMNS}
    n = 0
    for table in tables:
        k = len(table)
        for name, ds in columns.items():
            ds.resize((n + k,))
            ds[n:n + k] = getattr(table, name).astype(object)
        n += k


def _row_fields(row) -> tuple[str, ...] | str:
    """The four stripped fields of one row, or the reason it has none."""
    if isinstance(row, dict):
        missing = [c for c in COLUMNS if row.get(c) is None]
        if missing:
            return f"missing {', '.join(map(repr, missing))} (need {', '.join(COLUMNS)})"
        fields = [row[c] for c in COLUMNS]
    elif isinstance(row, (list, tuple)):
        if len(row) != 4 or any(f is None for f in row):
            return f"expected 4 fields ({', '.join(COLUMNS)}), got {list(row)!r}"
        fields = list(row)
    else:
        return f"expected an object with {', '.join(COLUMNS)}, got {type(row).__name__}"
    return tuple(str(f).strip() for f in fields)


def _unknown_attribute(name: str) -> str:
    close = difflib.get_close_matches(name, attribute_names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown attribute {name!r} (valid: {', '.join(attribute_names())}){hint}"


def _parse_values(attr, text: np.ndarray, rows: np.ndarray, first: _FirstError) -> np.ndarray:
    """Values of one attribute as floats (status words as their link-status code)."""
    if attr.value is ValueKind.STATUS_WORD:
        lower = np.strings.lower(text)
        codes = np.array([STATUS_WORDS.get(w, -1) for w in lower.tolist()], dtype=float)
        bad = np.flatnonzero(codes < 0)
        if len(bad):
            first.offer(rows[bad[0]], f"{attr.name} must be 'open' or 'closed', not {str(text[bad[0]])!r}")
        return codes
    try:
        values = text.astype(np.float64)
        unparsable = np.zeros(len(text), dtype=bool)
    except ValueError:
        values, unparsable = _parse_slowly(text)
    checks = [
        (unparsable, "is not a number"),
        (~unparsable & ~np.isfinite(values), "is not finite"),
    ]
    if attr.value is ValueKind.POSITIVE_FLOAT:
        checks.append((np.isfinite(values) & (values <= 0), "must be > 0"))
    elif attr.value is ValueKind.NON_NEGATIVE_FLOAT:
        checks.append((np.isfinite(values) & (values < 0), "must be >= 0"))
    for bad, why in checks:
        hit = np.flatnonzero(bad)
        if len(hit):
            first.offer(rows[hit[0]], f"{attr.name} value {str(text[hit[0]])!r} {why}")
    return values


def _parse_slowly(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.full(len(text), np.nan)
    bad = np.zeros(len(text), dtype=bool)
    for i, t in enumerate(text.tolist()):
        try:
            values[i] = float(t)
        except ValueError:
            bad[i] = True
    return values, bad


# ---------------------------------------------------------------------- against a network
# Tank levels converted from feet may miss a limit by rounding; EPANET itself compares exactly.
_TANK_LEVEL_TOL_M = 1e-9


def _not_an_element(element: str, attr, net: NetworkArrays) -> str:
    what = describe_element(net, element, prefer_nodes=attr.element.is_node)
    it_is = f" (it is a {what})" if what else ""
    return f"{element!r} is not a {attr.element.noun} of {net.name}{it_is}; {attr.name} applies to " \
           f"{attr.element.plural}"


def resolve(table: PerturbationTable, net: NetworkArrays):
    """All checks; returns each row's attribute code, numeric value and column (-1: every junction)."""
    table.check()
    attr_code, numeric = table._parsed
    column = np.full(len(table), -1, np.int64)
    first = _FirstError()
    rows_of: dict[str, np.ndarray] = {}
    for code in np.unique(attr_code):
        attr = ATTRIBUTES[code]
        rows = np.flatnonzero(attr_code == code)
        if attr.element is ElementKind.JUNCTION_OR_ALL:
            rows = rows[table.element[rows] != ALL_JUNCTIONS]
        if len(rows):
            lookup = element_columns(net, attr.element)
            names, inverse = np.unique(table.element[rows], return_inverse=True)
            cols = np.array([lookup.get(e, -1) for e in names.tolist()], np.int64)[inverse]
            column[rows] = cols
            bad = np.flatnonzero(cols < 0)
            if len(bad):
                first.offer(rows[bad[0]], _not_an_element(str(table.element[rows[bad[0]]]), attr, net))
            rows = rows[cols >= 0]
        rows_of[attr.name] = rows
    _check_resolved(table, net, column, numeric, rows_of, first)
    first.raise_if_any(table)
    return attr_code, numeric, column


def _check_resolved(table, net, column, numeric, rows_of, first) -> None:
    """Checks that need the rows' elements resolved to columns; offers the first failure of each."""
    none = np.zeros(0, np.int64)
    cd, area = rows_of.get("leak_cd", none), rows_of.get("leak_area_m2", none)
    if len(cd):
        key = factorize(table.scenario)[1] * net.n_junctions + column
        for r in cd[~np.isin(key[cd], key[area])][:1]:
            first.offer(r, f"leak_cd on junction {str(table.element[r])!r} needs a leak_area_m2 row for the "
                           f"same junction in scenario {str(table.scenario[r])!r}")
    # The solver replaces the first demand category; a junction without one would silently keep zero.
    demand = rows_of.get("base_demand_m3s", none)
    for r in demand[~np.isin(column[demand], net.demand_node)][:1]:
        first.offer(r, f"junction {str(table.element[r])!r} has no demand in {net.name} for "
                       f"base_demand_m3s to replace")
    quality_rows = np.concatenate([rows_of.get("source_quality", none), rows_of.get("bulk_coeff", none)])
    if len(quality_rows):
        from parktwin.hydraulics.quality import quality_model
        from parktwin.hydraulics.quality_model import KIND_CHEM
        model = quality_model(net)
        r = int(quality_rows.min())
        if model is None:
            first.offer(r, f"{table.attribute[r]} needs a network with a QUALITY option; {net.name} has none")
        elif model.kind != KIND_CHEM and len(rows_of.get("bulk_coeff", none)):
            first.offer(int(rows_of["bulk_coeff"].min()), f"bulk_coeff needs a chemical QUALITY option; "
                                                         f"{net.name} computes {model.kind_name}")
    tank = rows_of.get("tank_level_m", none)
    low, high = net.tank_min_level_m[column[tank]], net.tank_max_level_m[column[tank]]
    outside = (numeric[tank] < low - _TANK_LEVEL_TOL_M) | (numeric[tank] > high + _TANK_LEVEL_TOL_M)
    for r, lo, hi in list(zip(tank[outside], low[outside], high[outside]))[:1]:
        first.offer(r, f"tank_level_m {table.value[r]} for tank {str(table.element[r])!r} is outside its "
                       f"range {lo:g} to {hi:g} m")
