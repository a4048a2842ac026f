"""Proofs a third party checks with a published checkpoint and the park's public key alone.

- inclusion: this reading (meter, time, quantity, value) is reading #i of the ledger whose signed
  checkpoint says size n, root r (RFC 9162 2.1.3);
- consistency: the ledger at a later checkpoint only appended to the ledger at an earlier one, so
  nothing the earlier checkpoint covered was changed since (RFC 9162 2.1.4).

Proofs are JSON; hashes are hex.
"""
from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from parktwin.twin.ledger import LedgerError, _meta, connect, reading_label, stored_checkpoints, stored_leaf_levels
from parktwin.twin.ledger_keys import Checkpoint, signature_ok
from parktwin.twin.merkle import ProofError, verify_consistency, verify_inclusion
from parktwin.twin.meter_readings import QUANTITIES, format_time_us, leaf_of, parse_time_us

INCLUSION_FORMAT = "parktwin-inclusion-proof/v1"
CONSISTENCY_FORMAT = "parktwin-consistency-proof/v1"


def _checkpoint_of_size(cps: list[Checkpoint], size: int | None, path: Path) -> Checkpoint:
    if not cps:
        raise LedgerError(f"{path}: has no checkpoint yet (ingest readings first)")
    if size is None:
        return cps[-1]
    for cp in cps:
        if cp.tree_size == size:
            return cp
    raise LedgerError(f"{path}: no checkpoint of size {size} (sizes: {', '.join(str(c.tree_size) for c in cps[-5:])}"
                      f"{' ...' if len(cps) > 5 else ''})")


def prove_inclusion(path: Path, meter: str, time_us: int, quantity: str | None = None,
                    size: int | None = None) -> dict:
    """The inclusion proof of one reading against the latest checkpoint (or the one of `size`)."""
    con = connect(path)
    try:
        origin = _meta(con)["origin"]
        query = "SELECT seq, quantity, value FROM readings WHERE meter = ? AND time_us = ?"
        args: tuple = (meter, time_us)
        if quantity is not None:
            query, args = query + " AND quantity = ?", args + (quantity,)
        found = con.execute(query, args).fetchall()
        if not found:
            raise LedgerError(f"{path}: no reading of {reading_label(meter, time_us, quantity)}")
        if len(found) > 1:
            raise LedgerError(f"{path}: {reading_label(meter, time_us)} has several readings "
                              f"({', '.join(q for _, q, _ in found)}); choose one with --quantity")
        seq, quantity, value = found[0]
        cp = _checkpoint_of_size([c for _, c, _ in stored_checkpoints(con, origin)], size, path)
        if seq >= cp.tree_size:
            raise LedgerError(f"{path}: reading #{seq} is not covered by the checkpoint of size {cp.tree_size}")
        levels = stored_leaf_levels(con)
    finally:
        con.close()
    leaf = leaf_of(meter, time_us, quantity, value)
    if levels.size < cp.tree_size or levels.root(cp.tree_size).hex() != cp.root_hash or levels.leaf(seq) != leaf:
        raise LedgerError(f"{path}: the ledger no longer matches its checkpoint of size {cp.tree_size}; "
                          "run `parktwin meters verify`")
    return {"format": INCLUSION_FORMAT,
            "reading": {"meter": meter, "time": format_time_us(time_us), "quantity": quantity, "value": value},
            "leaf_index": seq, "tree_size": cp.tree_size,
            "inclusion_path": [h.hex() for h in levels.inclusion_path(seq, cp.tree_size)],
            "checkpoint": cp.as_dict()}


def prove_consistency(path: Path, first_size: int, second_size: int | None = None) -> dict:
    """The proof that the checkpoint of `second_size` (default: the latest) extends the one of `first_size`."""
    con = connect(path)
    try:
        cps = [c for _, c, _ in stored_checkpoints(con, _meta(con)["origin"])]
        first = _checkpoint_of_size(cps, first_size, path)
        second = _checkpoint_of_size(cps, second_size, path)
        if first.tree_size > second.tree_size:
            raise LedgerError(f"{path}: size {first.tree_size} is after size {second.tree_size}; give the earlier first")
        levels = stored_leaf_levels(con)
    finally:
        con.close()
    if levels.size < second.tree_size or levels.root(second.tree_size).hex() != second.root_hash:
        raise LedgerError(f"{path}: the ledger no longer matches its checkpoint of size {second.tree_size}; "
                          "run `parktwin meters verify`")
    return {"format": CONSISTENCY_FORMAT, "first": first.as_dict(), "second": second.as_dict(),
            "consistency_path": [h.hex() for h in levels.consistency_path(first.tree_size, second.tree_size)]}


def _hashes(proof: dict, key: str) -> list[bytes]:
    value = proof.get(key)
    if not isinstance(value, list):
        raise ProofError(f"the proof has no list {key!r}")
    try:
        return [bytes.fromhex(h) for h in value]
    except (TypeError, ValueError):
        raise ProofError(f"{key!r} holds something that is not a hex hash") from None


def _signed(cp: Checkpoint, public_key: Ed25519PublicKey, what: str) -> None:
    if not signature_ok(public_key, cp):
        raise ProofError(f"{what} (size {cp.tree_size}, {cp.time}) is not signed by this key")


def check_proof(proof: dict, public_key: Ed25519PublicKey, published: Checkpoint | None = None) -> str:
    """Check an inclusion or consistency proof; returns what it proved, raises ProofError if it does not hold.

    `published`: the checkpoint the checker trusts (published by the park). Without it the proof's own
    checkpoint is used, which the signature still authenticates.
    """
    fmt = proof.get("format") if isinstance(proof, dict) else None
    if fmt == INCLUSION_FORMAT:
        return _check_inclusion(proof, public_key, published)
    if fmt == CONSISTENCY_FORMAT:
        return _check_consistency(proof, public_key, published)
    raise ProofError(f"not a proof (format {fmt!r}; expected {INCLUSION_FORMAT} or {CONSISTENCY_FORMAT})")


def _check_inclusion(proof: dict, public_key: Ed25519PublicKey, published: Checkpoint | None) -> str:
    cp = published or Checkpoint.from_dict(proof.get("checkpoint"), "the proof's checkpoint")
    _signed(cp, public_key, "the checkpoint")
    try:
        r = proof["reading"]
        meter, quantity, value = str(r["meter"]), str(r["quantity"]), float(r["value"])
        time_us = parse_time_us(str(r["time"]))
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"malformed inclusion proof: {exc}") from None
    if quantity not in QUANTITIES:
        raise ProofError(f"unknown quantity {quantity!r}")
    if size != cp.tree_size:
        raise ProofError(f"the proof is for a tree of size {size}, the checkpoint is of size {cp.tree_size}: "
                         f"ask for a proof against it (prove --size {cp.tree_size})")
    verify_inclusion(leaf_of(meter, time_us, quantity, value), index, size, _hashes(proof, "inclusion_path"),
                     bytes.fromhex(cp.root_hash))
    return (f"{reading_label(meter, time_us, quantity)} = {value!r} is reading #{index} of the ledger "
            f"{cp.origin} as signed at {cp.time} (size {cp.tree_size})")


def _check_consistency(proof: dict, public_key: Ed25519PublicKey, published: Checkpoint | None) -> str:
    first = Checkpoint.from_dict(proof.get("first"), "the proof's first checkpoint")
    second = Checkpoint.from_dict(proof.get("second"), "the proof's second checkpoint")
    if published is not None and published.as_dict() not in (first.as_dict(), second.as_dict()):
        raise ProofError("the published checkpoint is neither of the proof's two checkpoints")
    _signed(first, public_key, "the first checkpoint")
    _signed(second, public_key, "the second checkpoint")
    if first.origin != second.origin:
        raise ProofError("the two checkpoints belong to different ledgers")
    verify_consistency(first.tree_size, second.tree_size, bytes.fromhex(first.root_hash),
                       bytes.fromhex(second.root_hash), _hashes(proof, "consistency_path"))
    return (f"the ledger {first.origin} at size {second.tree_size} ({second.time}) extends its state at size "
            f"{first.tree_size} ({first.time}): nothing signed then has changed")
