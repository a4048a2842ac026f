"""The ledger's audit: what `parktwin meters verify` finds, from the stored rows and the signatures alone.

Kept apart from the store (twin/ledger.py) because it is pure: rows and checkpoints in, problems out, so
the same audit can run over rows a server database hands back.
"""
from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from parktwin.twin.ledger_keys import Checkpoint, signature_ok
from parktwin.twin.merkle import HASH_BYTES, MerkleLevels
from parktwin.twin.meter_readings import format_time_us, leaf_of

Row = tuple[int, str, int, str, float]      # seq, meter, time_us, quantity, value


def _label(row: Row) -> str:
    return f"meter {row[1]!r} {row[3]} at {format_time_us(row[2])}"


def audit(rows: list[Row], stored_leaves: list[tuple[int, bytes]], checkpoints: list[tuple[int, Checkpoint, bytes]],
          public_key: Ed25519PublicKey, published: Checkpoint | None = None) -> tuple[list[str], int]:
    """(problems, size covered by the last good signature); the first problem names the first bad reading.

    `published`: a checkpoint held outside the ledger (the one the park published); it catches a ledger
    cut short together with its checkpoints, which the stored checkpoints alone cannot.
    """
    problems: list[str] = []
    valid: list[Checkpoint] = []
    for cid, cp, _frontier in checkpoints:
        if signature_ok(public_key, cp):
            valid.append(cp)
        else:
            problems.append(f"checkpoint {cid} (size {cp.tree_size}, {cp.time}) is not signed by the park's key: "
                            "it was forged or altered")
    if published is not None:
        if not signature_ok(public_key, published):
            raise ValueError("the published checkpoint is not signed by this key")
        if valid and published.origin != valid[0].origin:
            raise ValueError("the published checkpoint belongs to another ledger (its origin differs)")
        valid.append(published)
        valid.sort(key=lambda cp: cp.tree_size)
    for a, b in zip(valid, valid[1:]):
        if b.tree_size < a.tree_size:
            problems.append(f"signed checkpoints go backwards (size {a.tree_size} at {a.time}, then {b.tree_size})")
    if not valid:
        if not rows and not checkpoints:
            return [], 0           # an empty ledger (a file of only a header was ingested): nothing to doubt
        return ["no checkpoint is signed by this key: nothing in the ledger can be trusted"] + problems, 0
    signed_size = max(cp.tree_size for cp in valid)
    first = _first_bad_reading(rows, stored_leaves, valid)
    if first:
        problems.insert(0, first)
    elif len(rows) > signed_size:
        problems.insert(0, f"{len(rows) - signed_size} readings from #{signed_size} ({_label(rows[signed_size])}) "
                           "on are covered by no checkpoint signed by the key")
    return problems, signed_size


def _first_bad_reading(rows: list[Row], stored_leaves: list[tuple[int, bytes]], valid: list[Checkpoint]) -> str | None:
    for i, row in enumerate(rows):
        if row[0] != i:
            after = f"after {_label(rows[i - 1])} " if i else ""
            return (f"reading #{i} is missing: {after}the next stored reading is #{row[0]} ({_label(row)}); "
                    "it was deleted after it was signed")
    n_signed = max(cp.tree_size for cp in valid)
    if len(rows) < n_signed:
        last = f" (the last is #{len(rows) - 1}, {_label(rows[-1])})" if rows else ""
        return (f"readings #{len(rows)}..#{n_signed - 1} are missing: a checkpoint signed by the key covers "
                f"{n_signed}, the ledger holds {len(rows)}{last}")
    cache: dict[int, str] = {}
    computed = b"".join([leaf_of(m, t, q, v, cache) for _, m, t, q, v in rows])
    levels = MerkleLevels(computed)
    intact = 0
    failing = None
    for cp in valid:
        if levels.root(cp.tree_size).hex() == cp.root_hash:
            intact = max(intact, cp.tree_size)
        else:
            failing = cp
            break
    if failing is None:
        return None
    lo, hi = intact, failing.tree_size
    stored = _stored_bytes(stored_leaves, hi)
    if stored is not None and MerkleLevels(stored).root(hi).hex() == failing.root_hash:
        # The stored leaf hashes reproduce the signed root, so they are what was signed: compare one by one.
        where = {stored[j * HASH_BYTES:(j + 1) * HASH_BYTES]: j for j in range(lo, hi)}
        for i in range(lo, hi):
            leaf = computed[i * HASH_BYTES:(i + 1) * HASH_BYTES]
            if leaf != stored[i * HASH_BYTES:(i + 1) * HASH_BYTES]:
                j = where.get(leaf)
                if j is not None:
                    return f"reading #{i} ({_label(rows[i])}) is out of order: it was signed as reading #{j}"
                return (f"reading #{i} ({_label(rows[i])}, value {rows[i][4]!r}) was altered after it was signed "
                        f"(checkpoint of size {hi} signed at {failing.time})")
    return (f"readings #{lo}..#{hi - 1} do not match the checkpoint of size {hi} signed at {failing.time}, and their "
            f"stored hashes were rebuilt to match: the first altered reading is among them, from #{lo} "
            f"({_label(rows[lo])}) to #{hi - 1} ({_label(rows[hi - 1])}); readings before #{lo} are intact")


def _stored_bytes(stored_leaves: list[tuple[int, bytes]], size: int) -> bytes | None:
    if len(stored_leaves) < size:
        return None
    parts = []
    for i in range(size):
        seq, h = stored_leaves[i]
        if seq != i or len(h) != HASH_BYTES:
            return None
        parts.append(bytes(h))
    return b"".join(parts)
