"""The park's Ed25519 key and the signed checkpoints of its meter ledger.

A checkpoint says "the ledger `origin` had `tree_size` readings with Merkle root `root_hash` at `time`";
its signature covers exactly the text `checkpoint_body` writes, so anyone holding the public key and a
published checkpoint can check an inclusion or consistency proof without the ledger. `origin` is the
ledger's random id: a checkpoint of one ledger never passes for another signed by the same key.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHECKPOINT_FORMAT = "parktwin-ledger-checkpoint/v1"


class KeyFileError(ValueError):
    """A key file is missing or is not an Ed25519 key."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: str        # hex
    time: str             # ISO 8601 UTC
    signature: str        # base64 of the Ed25519 signature over checkpoint_body()

    def body(self) -> bytes:
        return checkpoint_body(self.origin, self.tree_size, bytes.fromhex(self.root_hash), self.time)

    def as_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "Checkpoint":
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{source}: not a checkpoint (expected \"format\": \"{CHECKPOINT_FORMAT}\")")
        try:
            cp = cls(origin=str(data["origin"]), tree_size=int(data["tree_size"]), root_hash=str(data["root_hash"]),
                     time=str(data["time"]), signature=str(data["signature"]))
            bytes.fromhex(cp.root_hash)
            base64.b64decode(cp.signature, validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: malformed checkpoint: {exc}") from None
        return cp


def checkpoint_body(origin: str, tree_size: int, root: bytes, time: str) -> bytes:
    return f"{CHECKPOINT_FORMAT}\norigin {origin}\nsize {tree_size}\nroot {root.hex()}\ntime {time}\n".encode()


def sign_checkpoint(key: Ed25519PrivateKey, origin: str, tree_size: int, root: bytes, time: str) -> Checkpoint:
    signature = key.sign(checkpoint_body(origin, tree_size, root, time))
    return Checkpoint(origin, tree_size, root.hex(), time, base64.b64encode(signature).decode())


def signature_ok(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    try:
        public_key.verify(base64.b64decode(checkpoint.signature), checkpoint.body())
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_path(private_path: Path) -> Path:
    """The public key beside a private one: park.key -> park.pub."""
    return private_path.with_suffix(".pub")


def load_or_create_private_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key in `path`, or a new one written there (owner-only) with its public half beside it."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path}: not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: is a {type(key).__name__}, the ledger signs with Ed25519")
        return key, False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_key_path(path).write_bytes(public_pem(key.public_key()))
    return key, True


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> Ed25519PublicKey:
    if not path.is_file():
        raise KeyFileError(f"{path}: public key not found")
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: is a {type(key).__name__}, the ledger signs with Ed25519")
    return key
