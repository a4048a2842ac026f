"""Routes: a park's meter readings (the ledger), its verification and the reconciliation of the twin with them.

Each park has one ledger, `<data dir>/ledgers/<park id>.ledger`, signed with the server's key for that
park (`<park id>.ledger.key`, created on the first readings; its public half is in every verify answer
so that a client can keep it and check proofs without the server). Readings are the same CSV as
`parktwin meters ingest` takes and pass the same checks, with the park's declared meters.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from parktwin.api.server.errors import ApiError, error_responses

router = APIRouter()
CSV_TYPES = ("text/csv", "application/octet-stream")


class IngestAnswer(BaseModel):
    added: int = Field(description="readings appended to the ledger")
    already_present: int = Field(description="readings of the file the ledger already held (same value)")
    tree_size: int = Field(description="readings in the ledger after this file")
    root_hash: str = Field(description="Merkle root (hex) of the checkpoint signed at the end of the ingest")
    checkpoints_signed: int


class VerifyAnswer(BaseModel):
    ok: bool = Field(description="true when every reading matches what the park's key signed")
    readings: int
    checkpoints: int
    signed_size: int = Field(description="readings covered by the last checkpoint signed by the key")
    problems: list[str] = Field(description="the first names the first altered, missing or reordered reading")
    public_key_pem: str = Field(description="the park ledger's Ed25519 public key, to check proofs with")


def ledger_paths(request: Request, park_id: str) -> tuple[Path, Path]:
    """(ledger, key) of a park that exists (404 otherwise)."""
    request.app.state.registry.park_dir(park_id)
    folder = request.app.state.settings.data_dir / "ledgers"
    folder.mkdir(parents=True, exist_ok=True)
    ledger = folder / f"{park_id}.ledger"
    return ledger, ledger.with_name(ledger.name + ".key")


@router.post("/parks/{park_id}/readings", status_code=201, response_model=IngestAnswer, tags=["meters"],
             responses=error_responses(401, 404, 413, 415, 422),
             openapi_extra={"requestBody": {"required": True, "description": "CSV meter,time,quantity,value",
                                            "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                        for t in CSV_TYPES}}})
async def post_readings(park_id: str, request: Request):
    """Append a CSV of readings of the park's declared meters to its ledger (all or nothing) and sign a
    checkpoint. A file already ingested adds nothing (`added` 0)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in CSV_TYPES:
        raise ApiError(415, f"content type {ctype or 'none'!r} not accepted (send {', '.join(CSV_TYPES)})",
                       "Content-Type")
    data = await request.body()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "the readings are not UTF-8 text", "file") from None
    return await run_in_threadpool(_ingest, request, park_id, text)


def _ingest(request: Request, park_id: str, text: str) -> dict:
    from parktwin.twin.ledger import ingest
    from parktwin.twin.ledger_keys import load_or_create_private_key
    meters = {mt.id: mt.quantity for mt in request.app.state.registry.park(park_id).meters}
    ledger, key_path = ledger_paths(request, park_id)
    key, _ = load_or_create_private_key(key_path)
    try:
        summary = ingest(ledger, text, "readings.csv", key, meters)
    except ValueError as exc:          # ReadingsError, LedgerError: the line and the reason
        raise ApiError(422, str(exc), "file") from None
    return {"added": summary.added, "already_present": summary.already_present, "tree_size": summary.tree_size,
            "root_hash": summary.root_hash, "checkpoints_signed": summary.checkpoints_signed}


@router.get("/parks/{park_id}/ledger/verify", response_model=VerifyAnswer, tags=["meters"],
            responses=error_responses(401, 404, 409))
def verify_ledger(park_id: str, request: Request):
    """Recompute every reading's hash, every signed root and every signature of the park's ledger."""
    from parktwin.twin.ledger import verify
    from parktwin.twin.ledger_keys import load_or_create_private_key, public_pem
    ledger, key_path = ledger_paths(request, park_id)
    if not ledger.is_file() or not key_path.is_file():
        raise ApiError(409, f"park {park_id!r} has no readings yet (POST /parks/{park_id}/readings)", "park_id")
    public_key = load_or_create_private_key(key_path)[0].public_key()
    report = verify(ledger, public_key)
    return {"ok": report.ok, "readings": report.readings, "checkpoints": report.checkpoints,
            "signed_size": report.signed_size, "problems": list(report.problems),
            "public_key_pem": public_pem(public_key).decode()}


@router.get("/parks/{park_id}/reconcile", tags=["meters"], responses=error_responses(401, 404, 409, 422))
def reconcile_park(park_id: str, request: Request,
                   start: str = Query(..., alias="from", description="ISO 8601 with offset: the model's midnight"),
                   end: str = Query(..., alias="to", description="ISO 8601 with offset, whole days after `from`")) -> dict:
    """The twin against its meters over whole days (as `parktwin park reconcile`): per meter measured
    against modelled, the metered boundary against the books, the unexplained volume per network. The
    ledger is verified first; tampered data is refused (422)."""
    from parktwin.twin.ledger_keys import load_or_create_private_key
    from parktwin.twin.meter_readings import parse_time_us
    from parktwin.twin.reconcile import reconcile
    ledger, key_path = ledger_paths(request, park_id)
    if not ledger.is_file() or not key_path.is_file():
        raise ApiError(409, f"park {park_id!r} has no readings yet (POST /parks/{park_id}/readings)", "park_id")
    times = {}
    for field, text in (("from", start), ("to", end)):
        try:
            times[field] = parse_time_us(text)
        except ValueError as exc:
            raise ApiError(422, str(exc), field) from None
    park = request.app.state.registry.park(park_id)
    try:
        rec = reconcile(park, ledger, times["from"], times["to"], load_or_create_private_key(key_path)[0].public_key())
    except ValueError as exc:          # a partial day, no readings, a tampered ledger
        raise ApiError(422, str(exc), "from") from None
    for meter in rec["meters"]:
        meter.pop("series")            # the time series stay in the CLI's reconcile.json
    rec["ledger"].pop("path")          # never a server path
    return rec
