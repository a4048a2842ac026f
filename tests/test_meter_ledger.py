"""The meter ledger (issue 15): `parktwin meters ingest/verify/prove/consistency/check-proof` as a user runs
them, RFC 9162 proofs against the definition, and tampering of every kind caught by `verify`."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from numpy.testing import assert_allclose

from parktwin.twin import ledger as ledger_mod
from parktwin.twin.ledger import CHECKPOINT_EVERY_READINGS, LedgerError, ingest, verify
from parktwin.twin.ledger_keys import load_or_create_private_key, sign_checkpoint
from parktwin.twin.merkle import (EMPTY_ROOT, Frontier, MerkleLevels, ProofError, leaf_hash, node_hash,
                                  verify_consistency, verify_inclusion)
from parktwin.twin.meter_readings import ReadingsError, leaf_of, parse_readings, parse_time_us

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PARK = REPO / "twin" / "example_park"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "parktwin.api.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def value(meter: str, minute: int) -> float:
    """The value the helper files give a meter at a minute (so that overlapping files agree)."""
    return 0.02 + 1e-6 * minute if meter.startswith("F") else 30.0 + 0.001 * minute + int(meter[1:])


def readings_csv(n: int, start_minute: int = 0, meters=("P1", "P2", "F1")) -> str:
    """n readings, meters in turn every minute from 2026-03-01T00:00+08:00."""
    lines = ["meter,time,quantity,value"]
    for i in range(n):
        meter = meters[i % len(meters)]
        minute = start_minute + i // len(meters)
        quantity = "flow_m3s" if meter.startswith("F") else "pressure_m"
        lines.append(f"{meter},2026-03-01T{minute // 60:02d}:{minute % 60:02d}:00+08:00,{quantity},"
                     f"{value(meter, minute)}")
    return "\n".join(lines) + "\n"


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162's recursive definition, the reference the fast tree is checked against."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def test_merkle_tree_and_proofs_follow_rfc9162():
    # RFC 6962/9162 trees of 7 leaves: the published audit path for leaf 0 has three entries
    for n in range(0, 40):
        data = [f"leaf {i}".encode() for i in range(n)]
        levels = MerkleLevels(b"".join(leaf_hash(d) for d in data))
        frontier = Frontier()
        for d in data:
            frontier.append(leaf_hash(d))
        assert levels.root() == frontier.root() == _mth(data)
        for m in range(n):
            assert levels.root(m) == _mth(data[:m])
            path = levels.inclusion_path(m)
            verify_inclusion(leaf_hash(data[m]), m, n, path, _mth(data))
            with pytest.raises(ProofError):
                verify_inclusion(leaf_hash(b"forged"), m, n, path, _mth(data))
        for m in range(n + 1):
            verify_consistency(m, n, _mth(data[:m]), _mth(data), levels.consistency_path(m, n))
            if 0 < m < n:
                with pytest.raises(ProofError):   # an earlier tree that was changed is not extended
                    verify_consistency(m, n, _mth(data[:m - 1] + [b"x"]), _mth(data), levels.consistency_path(m, n))
    assert len(MerkleLevels(b"".join(leaf_hash(bytes([i])) for i in range(7))).inclusion_path(0)) == 3


def test_readings_are_canonical_and_bad_rows_name_their_line():
    same = parse_readings("meter,time,quantity,value\nM,2026-03-01T08:00:00+08:00,pressure_m,1.50\n", "a.csv")
    other = parse_readings("meter,time,quantity,value\nM,2026-03-01T00:00:00Z,pressure_m,1.5\n", "b.csv")
    assert same[0][1] == other[0][1]
    r = same[0][1]
    assert leaf_of(r.meter, r.time_us, r.quantity, r.value) == leaf_hash(b"M\t2026-03-01T00:00:00Z\tpressure_m\t1.5")
    header = "meter,time,quantity,value\nM,2026-03-01T00:00:00Z,pressure_m,1\n"
    for row, reason in [("M,2026-03-01 00:00,pressure_m,1", "no UTC offset"),
                        ("M,yesterday,pressure_m,1", "not ISO 8601"),
                        ("M,2026-03-01T00:00:00Z,speed_ms,1", "unknown quantity"),
                        ("M,2026-03-01T00:00:00Z,pressure_m,abc", "not a number"),
                        ("M,2026-03-01T00:00:00Z,pressure_m,nan", "not finite"),
                        ("M,2026-03-01T00:00:00Z,pressure_m,inf", "not finite"),
                        ("M,2026-03-01T00:00:00Z,pressure_m", "expected 4 fields")]:
        with pytest.raises(ReadingsError, match=f"x.csv: line 3: .*{reason}"):
            parse_readings(header + row + "\n", "x.csv")
    with pytest.raises(ReadingsError, match="line 2: meter 'Q' is not declared"):
        parse_readings(header.replace("M,", "Q,"), "x.csv", meters={"M": "pressure_m"})
    with pytest.raises(ReadingsError, match="declared to read flow_m3s"):
        parse_readings(header, "x.csv", meters={"M": "flow_m3s"})


def test_cli_ingest_verify_prove_and_check_with_the_checkpoint_alone(tmp_path):
    ledger = tmp_path / "park.ledger"
    day1, day2 = tmp_path / "day1.csv", tmp_path / "day2.csv"
    day1.write_text(readings_csv(1500))
    day2.write_text(readings_csv(600, start_minute=400))
    done = cli("meters", "ingest", ledger, day1)
    assert done.returncode == 0, done.stderr
    assert "1500 readings added" in done.stdout and "created signing key" in done.stdout
    assert (tmp_path / "park.ledger.key").is_file() and (tmp_path / "park.ledger.pub").is_file()
    assert (tmp_path / "park.ledger.key").stat().st_mode & 0o077 == 0
    con = sqlite3.connect(ledger)
    assert con.execute("SELECT COUNT(*), SUM(value) FROM readings").fetchone()[0] == 1500
    con.close()

    again = cli("meters", "ingest", ledger, day1)
    assert again.returncode == 0 and "nothing new (1500 readings already in the ledger)" in again.stdout
    assert cli("meters", "checkpoint", ledger, "--out", tmp_path / "cp1.json").returncode == 0
    done = cli("meters", "ingest", ledger, day2)        # 100 minutes overlap day1: those are already present
    assert done.returncode == 0 and "300 readings added, 300 already present" in done.stdout, done.stdout
    ok = cli("meters", "verify", ledger)
    assert ok.returncode == 0 and "intact: 1800 readings" in ok.stdout

    # The third party: only the public key and the published checkpoint, no ledger.
    outside = tmp_path / "auditor"
    outside.mkdir()
    shutil.copy(tmp_path / "park.ledger.pub", outside / "park.pub")
    assert cli("meters", "checkpoint", ledger, "--out", outside / "cp2.json").returncode == 0
    proof = outside / "proof.json"
    done = cli("meters", "prove", ledger, "--meter", "P2", "--time", "2026-03-01T02:00:00+08:00", "--out", proof)
    assert done.returncode == 0, done.stderr
    held = cli("meters", "check-proof", proof, "--public-key", "park.pub", "--checkpoint", "cp2.json", cwd=outside)
    assert held.returncode == 0 and "proof holds: meter 'P2' pressure_m at 2026-02-28T18:00:00Z" in held.stdout
    # the proof names the reading's value: changing it breaks the proof
    stated = f'"value": {value("P2", 120)!r}'
    assert stated in proof.read_text()
    proof.write_text(proof.read_text().replace(stated, f'"value": {value("P2", 120) + 0.1!r}'))
    fails = cli("meters", "check-proof", proof, "--public-key", "park.pub", "--checkpoint", "cp2.json", cwd=outside)
    assert fails.returncode == 1 and "PROOF FAILS" in fails.stderr

    cons = outside / "consistency.json"
    assert cli("meters", "consistency", ledger, "--from-size", 1500, "--out", cons).returncode == 0
    held = cli("meters", "check-proof", cons, "--public-key", outside / "park.pub", "--checkpoint", tmp_path / "cp1.json")
    assert held.returncode == 0 and "extends its state at size 1500" in held.stdout, held.stderr

    other_key = tmp_path / "other.key"
    load_or_create_private_key(other_key)
    wrong = cli("meters", "check-proof", cons, "--public-key", tmp_path / "other.pub")
    assert wrong.returncode == 1 and "not signed by this key" in wrong.stderr
    refused = cli("meters", "ingest", ledger, day2, "--key", other_key)
    assert refused.returncode == 2 and "use the ledger's own key" in refused.stderr


def test_a_bad_file_is_refused_whole_and_nothing_half_written_survives(tmp_path, monkeypatch):
    ledger = tmp_path / "l.db"
    good = tmp_path / "good.csv"
    good.write_text(readings_csv(30))
    assert cli("meters", "ingest", ledger, good).returncode == 0
    bad = tmp_path / "bad.csv"
    lines = readings_csv(40, start_minute=100).splitlines()
    lines[39] = lines[39].rsplit(",", 1)[0] + ",thirty"
    bad.write_text("\n".join(lines) + "\n")
    done = cli("meters", "ingest", ledger, bad)
    assert done.returncode == 2 and "bad.csv: line 40: value 'thirty' is not a number" in done.stderr
    changed = tmp_path / "changed.csv"
    changed.write_text(readings_csv(3).replace(",31.0\n", ",31.5\n"))
    done = cli("meters", "ingest", ledger, changed)
    assert done.returncode == 2 and "changed.csv: line 2: meter 'P1' pressure_m at 2026-02-28T16:00:00Z is " \
        "already in the ledger with value 31.0, not 31.5; a reading is never changed" in done.stderr, done.stderr

    # A crash after the rows are written but before the checkpoint: the transaction leaves nothing.
    key, _ = load_or_create_private_key(tmp_path / "l.db.key")

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(ledger_mod, "sign_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(ledger, readings_csv(50, start_minute=200), "late.csv", key)
    monkeypatch.undo()
    report = verify(ledger, key.public_key())
    assert report.ok and report.readings == 30, report.problems


def test_ingest_with_park_refuses_undeclared_meters(tmp_path):
    park = tmp_path / "park"
    shutil.copytree(EXAMPLE_PARK, park)
    csv = tmp_path / "r.csv"          # intake_1 and steelworks_pressure are meters of the example park
    csv.write_text("meter,time,quantity,value\nintake_1,2026-03-01T00:00:00Z,flow_m3s,0.21\n"
                   "steelworks_pressure,2026-03-01T00:00:00Z,pressure_m,31.2\nP9,2026-03-01T00:00:00Z,pressure_m,30\n")
    done = cli("meters", "ingest", tmp_path / "l.db", csv, "--park", park)
    assert done.returncode == 2 and "line 4: meter 'P9' is not declared in park.toml" in done.stderr
    csv.write_text("\n".join(csv.read_text().splitlines()[:3]) + "\n")
    done = cli("meters", "ingest", tmp_path / "l.db", csv, "--park", park)
    assert done.returncode == 0 and "2 readings added" in done.stdout, done.stderr
    with (park / "park.toml").open("a") as fh:
        fh.write('\n[meters.bad]\nnetwork = "supply"\nelement = "NOPE"\nquantity = "pressure_m"\n')
    done = cli("meters", "ingest", tmp_path / "l.db", csv, "--park", park)
    assert done.returncode == 2 and "park.toml: meters.bad.element: 'NOPE' is not a node of supply.inp" in done.stderr


@pytest.fixture
def signed_ledger(tmp_path):
    """A ledger of two ingests (3000 + 1000 readings) signed by its key."""
    ledger = tmp_path / "l.db"
    key, _ = load_or_create_private_key(tmp_path / "l.db.key")
    ingest(ledger, readings_csv(3000), "a.csv", key)
    ingest(ledger, readings_csv(1000, start_minute=1000), "b.csv", key)
    assert verify(ledger, key.public_key()).ok
    return ledger, key


def _tamper(ledger: Path, *sql: str | tuple):
    con = sqlite3.connect(ledger)
    for statement in sql:
        con.execute(*statement) if isinstance(statement, tuple) else con.execute(statement)
    con.commit()
    con.close()


def _verify_fails(ledger: Path) -> str:
    done = cli("meters", "verify", ledger)
    assert done.returncode == 1, done.stdout
    return done.stderr


def test_verify_names_an_altered_value(signed_ledger):
    ledger, _ = signed_ledger
    _tamper(ledger, "UPDATE readings SET value = value * 0.9 WHERE seq = 2500")
    out = _verify_fails(ledger)     # meters cycle P1, P2, F1 every minute from 2026-03-01T00:00+08:00
    assert out.startswith("TAMPERED: reading #2500 (meter 'P2' pressure_m at 2026-03-01T05:53:00Z, value "
                          f"{value('P2', 833) * 0.9!r}) was altered after it was signed"), out


def test_verify_names_a_deleted_row(signed_ledger):
    ledger, _ = signed_ledger
    _tamper(ledger, "DELETE FROM readings WHERE seq = 1234")
    out = _verify_fails(ledger)
    assert "reading #1234 is missing" in out and "the next stored reading is #1235" in out
    _tamper(ledger, "DELETE FROM readings WHERE seq >= 3900")
    assert "reading #1234 is missing" in _verify_fails(ledger)


def test_verify_names_two_reordered_rows(signed_ledger):
    ledger, _ = signed_ledger
    con = sqlite3.connect(ledger)
    a = con.execute("SELECT meter, time_us, quantity, value FROM readings WHERE seq = 100").fetchone()
    b = con.execute("SELECT meter, time_us, quantity, value FROM readings WHERE seq = 200").fetchone()
    con.close()
    _tamper(ledger, ("UPDATE readings SET meter=?, time_us=?, quantity=?, value=? WHERE seq = 100", b),
            ("UPDATE readings SET meter=?, time_us=?, quantity=?, value=? WHERE seq = 200", a))
    out = _verify_fails(ledger)
    assert "reading #100 (meter 'F1' flow_m3s at 2026-02-28T17:06:00Z) is out of order: it was signed as reading #200" in out


def _forge_tail(ledger: Path, start: int, key=None):
    """Replace the readings from `start` on with other values, rebuild their leaf hashes, and re-sign the
    checkpoints after `start` with `key` (None: leave the old, now wrong, checkpoints)."""
    con = sqlite3.connect(ledger)
    rows = con.execute("SELECT seq, meter, time_us, quantity, value FROM readings WHERE seq >= ?", (start,)).fetchall()
    for seq, meter, t, q, v in rows:
        con.execute("UPDATE readings SET value = ? WHERE seq = ?", (v * 0.97, seq))
        con.execute("UPDATE leaves SET hash = ? WHERE seq = ?", (leaf_of(meter, t, q, v * 0.97), seq))
    if key is not None:
        leaves = b"".join(bytes(h) for (h,) in con.execute("SELECT hash FROM leaves ORDER BY seq"))
        levels = MerkleLevels(leaves)
        origin = con.execute("SELECT value FROM meta WHERE key='origin'").fetchone()[0]
        for cid, size, time in con.execute("SELECT id, tree_size, time FROM checkpoints WHERE tree_size > ?",
                                           (start,)).fetchall():
            cp = sign_checkpoint(key, origin, size, levels.root(size), time)
            con.execute("UPDATE checkpoints SET root = ?, signature = ? WHERE id = ?",
                        (levels.root(size), cp.signature, cid))
    con.commit()
    con.close()


def test_verify_catches_a_self_consistent_forgery_of_the_tail(signed_ledger, tmp_path):
    ledger, key = signed_ledger
    published = tmp_path / "published.json"
    assert cli("meters", "checkpoint", ledger, "--out", published).returncode == 0
    _forge_tail(ledger, 3000)                  # the second ingest, leaf hashes rebuilt, checkpoints left
    out = _verify_fails(ledger)
    assert "readings #3000..#3071 do not match the checkpoint of size 3072" in out
    assert "from #3000 (meter 'P1' pressure_m at 2026-03-01T08:40:00Z) to #3071" in out, out
    assert "their stored hashes were rebuilt" in out and "readings before #3000 are intact" in out

    # The forger re-signs with a key of their own: every re-signed checkpoint is refused, and the
    # readings they covered are named as unsigned; the published checkpoint pins the first bad one.
    forger, _ = load_or_create_private_key(tmp_path / "forger.key")
    _forge_tail(ledger, 3000, key=forger)
    out = _verify_fails(ledger)
    assert "1000 readings from #3000 (meter 'P1'" in out and "covered by no checkpoint signed by the key" in out
    assert "is not signed by the park's key: it was forged or altered" in out
    out = cli("meters", "verify", ledger, "--checkpoint", published).stderr
    assert out.startswith("TAMPERED: readings #3000..#3999 do not match the checkpoint of size 4000"), out


def test_a_ledger_cut_short_is_caught_against_a_published_checkpoint(signed_ledger, tmp_path):
    ledger, _ = signed_ledger
    published = tmp_path / "published.json"
    assert cli("meters", "checkpoint", ledger, "--out", published).returncode == 0
    _tamper(ledger, "DELETE FROM readings WHERE seq >= 3500", "DELETE FROM leaves WHERE seq >= 3500",
            "DELETE FROM checkpoints WHERE tree_size > 3500")
    assert cli("meters", "verify", ledger).returncode == 1       # 3072..3499 lost their checkpoint
    out = cli("meters", "verify", ledger, "--checkpoint", published)
    assert out.returncode == 1 and "readings #3500..#3999 are missing" in out.stderr


def test_an_empty_file_makes_an_empty_ledger_that_verifies(tmp_path):
    key, _ = load_or_create_private_key(tmp_path / "k.key")
    summary = ingest(tmp_path / "l.db", "meter,time,quantity,value\n", "empty.csv", key)
    assert summary.added == 0 and summary.tree_size == 0
    report = verify(tmp_path / "l.db", key.public_key())
    assert report.ok and report.readings == 0
    ingest(tmp_path / "l.db", readings_csv(5), "five.csv", key)
    assert verify(tmp_path / "l.db", key.public_key()).signed_size == 5


def test_checkpoints_are_signed_every_so_many_readings(signed_ledger):
    ledger, key = signed_ledger
    con = sqlite3.connect(ledger)
    sizes = [s for (s,) in con.execute("SELECT tree_size FROM checkpoints ORDER BY id")]
    con.close()
    assert sizes == [1024, 2048, 3000, 3072, 4000]
    assert CHECKPOINT_EVERY_READINGS == 1024
    assert_allclose(verify(ledger, key.public_key()).signed_size, 4000)
    with pytest.raises(LedgerError, match="not a ParkTwin meter ledger"):
        bad = ledger.with_name("other.db")
        sqlite3.connect(bad).execute("CREATE TABLE x(a)").connection.commit()
        verify(bad, key.public_key())
    assert parse_time_us("1970-01-01T00:00:01Z") == 1_000_000
