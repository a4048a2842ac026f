"""The meter routes over HTTP (issue 15): POST /parks/{id}/readings, GET /parks/{id}/ledger/verify, under
the API key and the upload cap, against a real server."""
from __future__ import annotations

import sqlite3

import pytest

from test_api_whatif import EXAMPLE, PARK_FILES, ApiServer, no_path_in, park_zip

KEY = "meters-test-key"


def readings(n_minutes: int, start: int = 0) -> bytes:
    lines = ["meter,time,quantity,value"]
    for minute in range(start, start + n_minutes):
        t = f"2026-03-01T{minute // 60:02d}:{minute % 60:02d}:00+08:00"
        lines += [f"intake_1,{t},flow_m3s,{0.2 + 1e-4 * minute!r}", f"steelworks_pressure,{t},pressure_m,{30 + 0.01 * minute!r}"]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api-meters") / "data", "--max-upload-bytes", "400000",
                    env={"PARKTWIN_API_KEY": KEY}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def park_id(server):
    files = {n: (EXAMPLE / n).read_bytes() for n in PARK_FILES}
    with server.client(**{"X-API-Key": KEY}) as c:
        answer = c.post("/parks", content=park_zip(files), headers={"Content-Type": "application/zip"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_readings_are_ingested_verified_and_tampering_is_reported(server, park_id):
    with server.client(**{"X-API-Key": KEY}) as c:
        csv = {"Content-Type": "text/csv"}
        missing = c.get(f"/parks/{park_id}/ledger/verify")
        # the park exists, its ledger is empty: 409 (a 404 would say the park just created is not there)
        assert missing.status_code == 409 and "no readings yet" in missing.json()["detail"]
        first = c.post(f"/parks/{park_id}/readings", content=readings(600), headers=csv)
        assert first.status_code == 201, first.text
        assert first.json()["added"] == 1200 and first.json()["tree_size"] == 1200
        again = c.post(f"/parks/{park_id}/readings", content=readings(600), headers=csv)
        assert again.status_code == 201 and again.json()["added"] == 0 and again.json()["already_present"] == 1200
        ok = c.get(f"/parks/{park_id}/ledger/verify").json()
        assert ok["ok"] and ok["readings"] == 1200 and ok["problems"] == []
        assert ok["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")

        bad = readings(3, start=700).replace(b"steelworks_pressure,", b"p_other,", 1)
        refused = c.post(f"/parks/{park_id}/readings", content=bad, headers=csv)
        assert refused.status_code == 422 and refused.json()["field"] == "file"
        assert "line 3: meter 'p_other' is not declared in park.toml" in refused.json()["detail"]
        no_path_in(refused.json(), server)
        nan = readings(3, start=700) + b"steelworks_pressure,2026-03-01T12:00:00+08:00,pressure_m,nan\n"
        refused = c.post(f"/parks/{park_id}/readings", content=nan, headers=csv)
        assert refused.status_code == 422 and "line 8: value 'nan' is not finite" in refused.json()["detail"]
        assert c.post(f"/parks/{park_id}/readings", content=readings(3), headers={"Content-Type": "text/plain"}
                      ).status_code == 415
        assert c.post(f"/parks/{park_id}/readings", content=readings(5000), headers=csv).status_code == 413
        assert c.post("/parks/nope/readings", content=readings(3), headers=csv).status_code == 404
        assert c.get(f"/parks/{park_id}/ledger/verify").json()["readings"] == 1200   # nothing half written

    with server.client() as anonymous:
        assert anonymous.post(f"/parks/{park_id}/readings", content=readings(3),
                              headers={"Content-Type": "text/csv"}).status_code == 401
        assert anonymous.get(f"/parks/{park_id}/ledger/verify").status_code == 401

    con = sqlite3.connect(server.data_dir / "ledgers" / f"{park_id}.ledger")
    con.execute("UPDATE readings SET value = 0.25 WHERE seq = 600")
    con.commit()
    con.close()
    with server.client(**{"X-API-Key": KEY}) as c:
        report = c.get(f"/parks/{park_id}/ledger/verify").json()
    assert not report["ok"]
    assert report["problems"][0].startswith("reading #600 (meter 'intake_1' flow_m3s at 2026-02-28T21:00:00Z, "
                                            "value 0.25) was altered after it was signed")


def test_reconcile_over_http_finds_the_hidden_leak(server):
    from parktwin.twin.meter_synthesis import SynthesisOptions, leak, synthesize_day
    from parktwin.twin.park import load_park
    day = synthesize_day(load_park(EXAMPLE), (leak("supply", "S0505", 5e-4),), SynthesisOptions(seed=3))
    period = {"from": "2026-03-01T00:00:00+08:00", "to": "2026-03-02T00:00:00+08:00"}
    with server.client(**{"X-API-Key": KEY}) as c:
        assert c.get("/parks/example/reconcile", params=period).status_code == 409      # no readings yet
        posted = c.post("/parks/example/readings", content=day.csv.encode(), headers={"Content-Type": "text/csv"})
        assert posted.status_code == 201 and posted.json()["added"] == len(day.csv.splitlines()) - 1
        answer = c.get("/parks/example/reconcile", params=period)
        assert answer.status_code == 200, answer.text
        partial = c.get("/parks/example/reconcile", params={**period, "to": "2026-03-01T06:00:00+08:00"})
        assert partial.status_code == 422 and "whole days" in partial.json()["detail"]
        assert c.get("/parks/example/reconcile", params={**period, "from": "soon"}).status_code == 422
    rec = answer.json()
    hidden = day.leak_m3["supply"]
    assert abs(rec["networks"]["supply"]["unexplained_m3"] - hidden) <= 0.10 * hidden
    assert rec["ledger"] == {"verified": True, "readings": len(day.csv.splitlines()) - 1}
    assert "series" not in rec["meters"][0]
    no_path_in(rec, server)
