"""The meter ledger: an append-only, tamper-evident store of readings in one SQLite file.

Tables (docs/meter-ledger.md describes them for whoever moves a city's ledger to a server database):
- `readings(seq, meter, time_us, quantity, value)`: one row per reading, `seq` its leaf index;
- `leaves(seq, hash)`: each reading's RFC 9162 leaf hash as it was signed;
- `checkpoints(id, tree_size, root, time, signature, frontier)`: signed (size, root, time), one every
  `CHECKPOINT_EVERY_READINGS` readings and one at the end of every ingest; `frontier` is the compact range
  the next ingest continues from (O(log n) hashes, so an ingest never rereads the ledger);
- `ingests`, `meta`: what was ingested from which file; the ledger's random `origin` and key id.

`verify` trusts nothing stored but the signatures: it recomputes every leaf from the readings, every
signed root from the leaves, and names the first reading that differs from what was signed. The stored
leaf hashes only sharpen the answer: when they still reproduce the signed root they are authentic and
the bad reading is named exactly; when a forger rebuilt them too, the answer is the span between the
last checkpoint that still holds and the first that fails (at most CHECKPOINT_EVERY_READINGS readings).
"""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from parktwin.twin.ledger_audit import audit
from parktwin.twin.ledger_keys import Checkpoint, public_key_id, sign_checkpoint, signature_ok
from parktwin.twin.merkle import HASH_BYTES, Frontier, MerkleLevels
from parktwin.twin.meter_readings import MeterReading, format_time_us, leaf_of, parse_readings

LEDGER_FORMAT = "parktwin-ledger/v1"
CHECKPOINT_EVERY_READINGS = 1024

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE readings(seq INTEGER PRIMARY KEY, meter TEXT NOT NULL, time_us INTEGER NOT NULL,
                      quantity TEXT NOT NULL, value REAL NOT NULL);
CREATE INDEX readings_meter_time ON readings(meter, time_us, quantity);
CREATE INDEX readings_time ON readings(time_us);
CREATE TABLE leaves(seq INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE checkpoints(id INTEGER PRIMARY KEY, tree_size INTEGER NOT NULL, root BLOB NOT NULL,
                         time TEXT NOT NULL, signature TEXT NOT NULL, frontier BLOB NOT NULL);
CREATE TABLE ingests(id INTEGER PRIMARY KEY, source TEXT NOT NULL, file_sha256 TEXT NOT NULL, time TEXT NOT NULL,
                     added INTEGER NOT NULL, already_present INTEGER NOT NULL);
"""


class LedgerError(ValueError):
    """The ledger refuses an operation; the message says why and what to do."""


@dataclass(frozen=True)
class IngestSummary:
    source: str
    added: int
    already_present: int
    tree_size: int
    root_hash: str
    checkpoints_signed: int


@dataclass(frozen=True)
class VerifyReport:
    ledger: str
    readings: int
    checkpoints: int
    signed_size: int                   # readings covered by the last checkpoint signed by the key
    problems: tuple[str, ...] = field(default_factory=tuple)   # the first names the first bad reading

    @property
    def ok(self) -> bool:
        return not self.problems


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    path = Path(path)
    if not create and not path.is_file():
        raise LedgerError(f"{path}: no such ledger")
    # isolation_level=None: transactions are opened explicitly, one per ingest. A second writer waits for
    # the first (up to a minute) instead of failing at once.
    con = sqlite3.connect(path, isolation_level=None, timeout=60.0)
    try:
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        con.close()
        raise LedgerError(f"{path}: not a ledger ({exc})") from None
    if not tables and create:
        return con
    fmt = con.execute("SELECT value FROM meta WHERE key='format'").fetchone() if "meta" in tables else None
    if fmt is None or fmt[0] != LEDGER_FORMAT:
        con.close()
        raise LedgerError(f"{path}: not a ParkTwin meter ledger ({LEDGER_FORMAT})")
    return con


def _meta(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM meta"))


def reading_label(meter: str, time_us: int, quantity: str | None = None) -> str:
    q = f" {quantity}" if quantity else ""
    return f"meter {meter!r}{q} at {format_time_us(time_us)}"


def stored_checkpoints(con: sqlite3.Connection, origin: str) -> list[tuple[int, Checkpoint, bytes]]:
    """(id, checkpoint, frontier) in order."""
    return [(cid, Checkpoint(origin, size, bytes(root).hex(), time, sig), bytes(frontier))
            for cid, size, root, time, sig, frontier in
            con.execute("SELECT id, tree_size, root, time, signature, frontier FROM checkpoints ORDER BY id")]


def _existing_matches(con: sqlite3.Connection, parsed: list[tuple[int, MeterReading]]):
    """For each (line, reading) already in the ledger under the same meter, time and quantity: its stored value."""
    con.execute("CREATE TEMP TABLE incoming(line INTEGER, meter TEXT, time_us INTEGER, quantity TEXT)")
    con.executemany("INSERT INTO incoming VALUES (?, ?, ?, ?)",
                    ((line, r.meter, r.time_us, r.quantity) for line, r in parsed))
    found = dict(con.execute("SELECT i.line, r.value FROM incoming i JOIN readings r ON r.meter = i.meter "
                             "AND r.time_us = i.time_us AND r.quantity = i.quantity"))
    con.execute("DROP TABLE incoming")
    return found


def ingest(path: Path, text: str, source: str, key: Ed25519PrivateKey,
           meters: dict[str, str] | None = None) -> IngestSummary:
    """Append the readings of one CSV (all or nothing) and sign a checkpoint; see the module docstring."""
    parsed = parse_readings(text, source, meters)      # refuses the whole file before anything is opened
    path = Path(path)
    con = connect(path, create=True)
    try:
        con.execute("BEGIN IMMEDIATE")
        if not con.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone():
            for statement in _SCHEMA.split(";"):   # DDL inside the transaction: a crash leaves no half ledger
                if statement.strip():
                    con.execute(statement)
            con.executemany("INSERT INTO meta VALUES (?, ?)",
                            [("format", LEDGER_FORMAT), ("origin", secrets.token_hex(16)),
                             ("public_key_id", public_key_id(key.public_key()))])
        meta = _meta(con)
        origin = meta["origin"]
        if meta["public_key_id"] != public_key_id(key.public_key()):
            raise LedgerError(f"{path}: signed with key {meta['public_key_id']}, not with the key given "
                              f"({public_key_id(key.public_key())}); use the ledger's own key")
        frontier = _checked_frontier(con, path, origin, key.public_key())

        seen: dict[tuple[str, int, str], tuple[int, float]] = {}
        fresh: list[tuple[int, MeterReading]] = []
        already = 0
        stored = _existing_matches(con, parsed) if frontier.size else {}
        for line, r in parsed:
            k = (r.meter, r.time_us, r.quantity)
            prior = seen.get(k)
            if prior is not None:
                if prior[1] != r.value:
                    raise LedgerError(f"{source}: line {line}: {reading_label(*k)} repeats line {prior[0]} "
                                      f"with another value ({r.value!r} vs {prior[1]!r})")
                already += 1
                continue
            seen[k] = (line, r.value)
            if line in stored:
                if stored[line] != r.value:
                    raise LedgerError(f"{source}: line {line}: {reading_label(*k)} is already in the ledger with "
                                      f"value {stored[line]!r}, not {r.value!r}; a reading is never changed")
                already += 1
                continue
            fresh.append((line, r))

        signed = 0
        if fresh:
            signed = _append(con, fresh, frontier, origin, key)
        con.execute("INSERT INTO ingests(source, file_sha256, time, added, already_present) VALUES (?, ?, ?, ?, ?)",
                    (source, hashlib.sha256(text.encode()).hexdigest(), now_utc(), len(fresh), already))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return IngestSummary(source=source, added=len(fresh), already_present=already, tree_size=frontier.size,
                         root_hash=frontier.root().hex(), checkpoints_signed=signed)


def _checked_frontier(con, path: Path, origin: str, public_key: Ed25519PublicKey) -> Frontier:
    """The frontier to continue from, after checking it against the last checkpoint and its signature."""
    last = con.execute("SELECT tree_size, root, time, signature, frontier FROM checkpoints "
                       "ORDER BY id DESC LIMIT 1").fetchone()
    n_rows = con.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    if last is None:
        if n_rows:
            raise LedgerError(f"{path}: holds readings but no checkpoint; run `parktwin meters verify`")
        return Frontier()
    size, root, time, sig, hashes = last
    cp = Checkpoint(origin, size, bytes(root).hex(), time, sig)
    try:
        frontier = Frontier(size, bytes(hashes))
    except ValueError:
        frontier = None
    if frontier is None or frontier.root() != bytes(root) or not signature_ok(public_key, cp) or n_rows != size:
        raise LedgerError(f"{path}: its last checkpoint (size {size}, {time}) does not hold "
                          f"({n_rows} readings stored); run `parktwin meters verify` before adding to it")
    return frontier


def _append(con, fresh: list[tuple[int, MeterReading]], frontier: Frontier, origin: str,
            key: Ed25519PrivateKey) -> int:
    start = frontier.size
    time = now_utc()
    cache: dict[int, str] = {}
    hashes = [leaf_of(r.meter, r.time_us, r.quantity, r.value, cache) for _, r in fresh]
    con.executemany("INSERT INTO readings(seq, meter, time_us, quantity, value) VALUES (?, ?, ?, ?, ?)",
                    ((start + i, r.meter, r.time_us, r.quantity, r.value) for i, (_, r) in enumerate(fresh)))
    con.executemany("INSERT INTO leaves(seq, hash) VALUES (?, ?)", zip(range(start, start + len(hashes)), hashes))
    checkpoints = []
    for i, h in enumerate(hashes):
        frontier.append(h)
        if frontier.size % CHECKPOINT_EVERY_READINGS == 0 or i == len(hashes) - 1:
            root = frontier.root()
            cp = sign_checkpoint(key, origin, frontier.size, root, time)
            checkpoints.append((frontier.size, root, time, cp.signature, frontier.hashes()))
    con.executemany("INSERT INTO checkpoints(tree_size, root, time, signature, frontier) VALUES (?, ?, ?, ?, ?)",
                    checkpoints)
    return len(checkpoints)


def latest_checkpoint(path: Path) -> Checkpoint:
    con = connect(path)
    try:
        cps = stored_checkpoints(con, _meta(con)["origin"])
    finally:
        con.close()
    if not cps:
        raise LedgerError(f"{path}: has no checkpoint yet (ingest readings first)")
    return cps[-1][1]


def verify(path: Path, public_key: Ed25519PublicKey, published: Checkpoint | None = None) -> VerifyReport:
    """Recompute everything and report the first reading that differs from what the key signed;
    `published`, a checkpoint kept outside the ledger, also catches a ledger cut short."""
    con = connect(path)
    try:
        origin = _meta(con)["origin"]
        rows = con.execute("SELECT seq, meter, time_us, quantity, value FROM readings ORDER BY seq").fetchall()
        stored_rows = con.execute("SELECT seq, hash FROM leaves ORDER BY seq").fetchall()
        checkpoints = stored_checkpoints(con, origin)
    finally:
        con.close()
    problems, signed_size = audit(rows, stored_rows, checkpoints, public_key, published)
    return VerifyReport(ledger=str(path), readings=len(rows), checkpoints=len(checkpoints),
                        signed_size=signed_size, problems=tuple(problems))


def stored_leaf_levels(con: sqlite3.Connection) -> MerkleLevels:
    hashes = [bytes(h) for (h,) in con.execute("SELECT hash FROM leaves ORDER BY seq")]
    if any(len(h) != HASH_BYTES for h in hashes):
        raise LedgerError("a stored leaf hash is not 32 bytes; run `parktwin meters verify`")
    return MerkleLevels(b"".join(hashes))
