"""Merkle trees as RFC 9162 (Certificate Transparency 2.0) section 2.1 defines them, over SHA-256.

Leaf hash H(0x00 || data), interior node H(0x01 || left || right); a tree of n leaves splits at the
largest power of two below n. The prefixes keep a leaf from ever passing for a node (second-preimage
attacks), and the split makes every tree of size m a prefix structure of every larger tree, which is
what lets a consistency proof show that a later checkpoint only appended to an earlier one.

Hashes are 32-byte `bytes`; a level of the tree is one `bytes` of 32·k bytes (compact: a million
leaves take 32 MB instead of a million Python objects).
"""
from __future__ import annotations

import hashlib

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF, _NODE = b"\x00", b"\x01"


class ProofError(ValueError):
    """A proof is malformed or does not check out."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleLevels:
    """Every level of the tree over a list of leaf hashes, bottom first.

    Built bottom up, an unpaired last node is carried up unchanged; that gives exactly RFC 9162's tree,
    and every complete, aligned block of 2^j leaves is stored once, so the root of any prefix (an older
    checkpoint) and any proof cost O(log² n) look-ups after one O(n) build.
    """

    def __init__(self, leaf_hashes: bytes):
        if len(leaf_hashes) % HASH_BYTES:
            raise ValueError("leaf hashes must be a multiple of 32 bytes")
        self.size = len(leaf_hashes) // HASH_BYTES
        levels = [bytes(leaf_hashes)]
        sha, node = hashlib.sha256, _NODE
        while len(levels[-1]) > HASH_BYTES:
            below = levels[-1]
            pairs = len(below) // (2 * HASH_BYTES)
            up = b"".join([sha(node + below[i:i + 2 * HASH_BYTES]).digest()
                           for i in range(0, pairs * 2 * HASH_BYTES, 2 * HASH_BYTES)])
            if len(below) % (2 * HASH_BYTES):
                up += below[-HASH_BYTES:]
            levels.append(up)
        self._levels = levels

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index * HASH_BYTES:(index + 1) * HASH_BYTES]

    def subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for 0 <= lo < hi <= size."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            j = n.bit_length() - 1
            i = lo >> j
            return self._levels[j][i * HASH_BYTES:(i + 1) * HASH_BYTES]
        k = _largest_power_of_two_below(n)
        return node_hash(self.subtree(lo, lo + k), self.subtree(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """Root of the first `size` leaves (default: all)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} outside 0..{self.size}")
        return EMPTY_ROOT if size == 0 else self.subtree(0, size)

    def inclusion_path(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 2.1.3.1."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        path: list[bytes] = []
        lo, hi, m = 0, size, index
        while hi - lo > 1:
            k = _largest_power_of_two_below(hi - lo)
            if m < k:
                path.append(self.subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self.subtree(lo, lo + k))
                lo, m = lo + k, m - k
        return path[::-1]         # the recursion appends from the top; the proof lists from the leaf

    def consistency_path(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[0:second]) of RFC 9162 2.1.4.1."""
        second = self.size if second is None else second
        if not 0 <= first <= second <= self.size:
            raise ValueError(f"no consistency proof from size {first} to size {second}")
        if first in (0, second):
            return []
        out: list[bytes] = []
        lo, hi, m, complete = 0, second, first, True
        while True:
            n = hi - lo
            if m == n:
                if not complete:
                    out.append(self.subtree(lo, hi))
                break
            k = _largest_power_of_two_below(n)
            if m <= k:
                out.append(self.subtree(lo + k, hi))
                hi = lo + k
            else:
                out.append(self.subtree(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        return out[::-1]


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2; raises ProofError unless `leaf` is leaf `index` of the tree `root` of `size`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("the inclusion path is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion path is shorter than the tree is high")
    if r != root:
        raise ProofError("the inclusion path does not lead to the checkpoint's root hash")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       path: list[bytes]) -> None:
    """RFC 9162 2.1.4.2; raises ProofError unless tree `second_root` extends tree `first_root`."""
    if not 0 <= first <= second:
        raise ProofError(f"a tree of size {first} cannot extend to size {second}")
    if first == second:
        if path or first_root != second_root:
            raise ProofError("two checkpoints of the same size must have the same root and an empty proof")
        return
    if first == 0:
        if path or first_root != EMPTY_ROOT:
            raise ProofError("the empty tree's proof is empty and its root is SHA-256 of nothing")
        return
    if not path:
        raise ProofError("the consistency path is empty")
    if first & (first - 1) == 0:
        path = [first_root] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency path is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ProofError(f"the tree of size {second} does not extend the tree of size {first}")


class Frontier:
    """The compact range of a growing tree: the roots of its complete subtrees, largest first.

    O(log n) hashes are all an append needs, so an ingest costs O(new readings), whatever the ledger
    already holds; the root folds them right to left.
    """

    def __init__(self, size: int = 0, hashes: bytes = b""):
        if len(hashes) != HASH_BYTES * bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} has {bin(size).count('1')} hashes")
        self.size = size
        self._stack = [hashes[i:i + HASH_BYTES] for i in range(0, len(hashes), HASH_BYTES)]

    def append(self, leaf: bytes) -> None:
        stack = self._stack
        stack.append(leaf)
        n = self.size
        while n & 1:                 # each trailing one bit of the old size is a subtree to merge
            right = stack.pop()
            stack[-1] = node_hash(stack[-1], right)
            n >>= 1
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            r = node_hash(h, r)
        return r

    def hashes(self) -> bytes:
        return b"".join(self._stack)
