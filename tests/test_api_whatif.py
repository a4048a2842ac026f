"""The HTTP API against a real uvicorn server on loopback: parks, what-ifs, uploads, errors, the API key.

`ApiServer` (also used by tests/test_api_jobs.py, tests/test_api_schema.py and tests/test_api_limits.py)
starts `python -m parktwin.api.cli serve` on a free port with its own data directory and waits for /health.
"""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "twin" / "example_park"
PARK_FILES = ("park.toml", "supply.inp", "reclaimed.inp", "discharge.inp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, data_dir: Path, *args: str, env: dict | None = None):
        self.data_dir, self.args = data_dir, args
        self.env = {**os.environ, **(env or {})}
        self.env.pop("PARKTWIN_API_KEY", None) if env is None or "PARKTWIN_API_KEY" not in env else None
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / f"{data_dir.name}-server.log"

    def start(self) -> "ApiServer":
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "parktwin.api.cli", "serve", "--port", str(self.port),
                                          "--data-dir", str(self.data_dir), *self.args],
                                         cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180       # a loaded 2-core CI machine needs more than a minute
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass                  # not listening yet
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer /health within 180 s:\n{self.log.read_text()[-3000:]}")

    def client(self, **headers) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def park_zip(files: dict[str, bytes] | None = None, folder: str = "mypark/") -> bytes:
    files = files if files is not None else {n: (EXAMPLE / n).read_bytes() for n in PARK_FILES}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(folder + name if not name.startswith(("/", "..")) else name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def no_path_in(body: dict, server: ApiServer) -> None:
    text = str(body)
    assert str(server.data_dir) not in text and str(REPO) not in text and "Traceback" not in text, text


# ---------------------------------------------------------------------- parks
def test_health_and_the_example_park_loaded(client):
    assert client.get("/health").json()["status"] == "ok"
    parks = client.get("/parks").json()
    assert [p["id"] for p in parks] == ["example"] and parks[0]["bundled"] and parks[0]["enterprises"] == 11
    park = client.get("/parks/example").json()
    assert {e["name"] for e in park["enterprises"]} >= {"steelworks", "paper_mill"}
    assert park["plants"]["reclaimed"]["capacity_m3d"] > 0
    assert park["networks"]["supply"]["junctions"] == 225 and park["networks"]["supply"]["links"] == 388
    assert "reclaimed_offer_m3d" in park["city"]


def test_indicators_and_balance_of_the_base_case(client):
    ind = client.get("/parks/example/indicators").json()
    assert ind["duration_s"] == 86400 and 0.9 < ind["indicators"]["reuse_rate"]["value"] < 1.0    # 24 h default
    snap = client.get("/parks/example/indicators", params={"duration_s": 0}).json()
    assert snap["duration_s"] == 0 and snap["indicators"]["reuse_rate"] == ind["indicators"]["reuse_rate"]
    bal = client.get("/parks/example/balance").json()["balance"]
    assert bal["park"]["residual"] == pytest.approx(0.0, abs=1e-6)
    assert set(bal["networks"]) == {"supply", "reclaimed", "discharge"}
    # The indicators of both runs agree by design (daily allocation), so they cannot show that
    # duration_s is honoured; the hydraulics can: the snapshot is another run than the day.
    snap_bal = client.get("/parks/example/balance", params={"duration_s": 0}).json()
    assert snap_bal["duration_s"] == 0
    assert snap_bal["balance"]["networks"]["supply"]["min_pressure_m"] != pytest.approx(
        bal["networks"]["supply"]["min_pressure_m"], abs=1e-3)
    assert client.get("/parks/p-000000000000/indicators").status_code == 404


# ---------------------------------------------------------------------- what-if
def test_whatif_round_trip(client):
    ops = [{"op": "expand_enterprise", "name": "paper_mill", "factor": 1.3},
           {"op": "city_reclaimed_offer", "m3d": 4000}]
    r = client.post("/parks/example/whatif", json={"operations": ops})
    assert r.status_code == 200, r.text
    body = r.json()
    reuse = body["indicators"]["reuse_rate"]
    assert reuse["change"] == pytest.approx(reuse["after"] - reuse["before"])
    base = client.get("/parks/example/indicators").json()["indicators"]
    assert reuse["before"] == pytest.approx(base["reuse_rate"]["value"])
    # the paper mill grew by 30 %: its row in the what-if balance is 1.3 x the base one
    assert body["balance"]["enterprises"]["paper_mill"]["total_use"] == pytest.approx(
        1.3 * body["base_balance"]["enterprises"]["paper_mill"]["total_use"])
    assert set(body["service"]) == {"supply", "reclaimed", "discharge"}
    for s in body["service"].values():
        assert set(s["new_low_pressure_junctions"]) <= set(s["low_pressure_junctions"])
    # the same request twice gives the same answer (no state leaks between what-ifs)
    again = client.post("/parks/example/whatif", json={"operations": ops}).json()
    assert again["indicators"] == body["indicators"]


def test_plant_outage_moves_the_indicators(client):
    body = client.post("/parks/example/whatif", json={"operations": [{"op": "plant_outage", "plant": "reclaimed"}]}).json()
    # the city's offer replaces part of the plant's water, fresh intake the rest
    assert body["indicators"]["substitution_rate"]["change"] < 0
    assert body["indicators"]["water_per_10k_yuan"]["change"] > 0
    assert body["balance"]["park"]["reclaimed_from_plant"] == pytest.approx(0.0, abs=1e-9)


def test_add_enterprise(client):
    ent = {"name": "new_plant", "sector": "crude_steel", "product": "crude steel (t)", "annual_output": 1000,
           "value_added_10k_yuan": 500, "needs": {"process_m3d": 50, "cooling_makeup_m3d": 20},
           "consumption_fraction": 0.3, "discharge_fraction": 0.6, "shift_hours": 24,
           "junctions": {"supply": "S0407", "reclaimed": "R0407", "discharge": "D0407"}}
    body = client.post("/parks/example/whatif", json={"operations": [{"op": "add_enterprise", "enterprise": ent}]})
    assert body.status_code == 200, body.text
    assert body.json()["indicators"]["reuse_rate[new_plant]"]["before"] is None
    ent["junctions"]["supply"] = "NOPE"
    bad = client.post("/parks/example/whatif", json={"operations": [{"op": "add_enterprise", "enterprise": ent}]})
    assert bad.status_code == 422 and bad.json()["field"] == "operations.0.enterprise.junctions"


@pytest.mark.parametrize("op, field, words", [
    ({"op": "expand_enterprise", "name": "no_such_mill", "factor": 1.2}, "operations.0.name", "unknown enterprise"),
    ({"op": "plant_capacity", "plant": "reclaimed", "capacity_m3d": -5}, "operations.0.capacity_m3d",
     "greater than or equal to 0"),
    ({"op": "plant_capacity", "plant": "moon", "capacity_m3d": 5}, "operations.0.plant", "wastewater"),
    ({"op": "plant_recovery", "unit": "no_unit", "recovery_fraction": 0.5}, "operations.0.unit", "unknown"),
    ({"op": "teleport"}, "operations.0", "tag"),
])
def test_bad_operations_are_422_naming_the_field(client, server, op, field, words):
    r = client.post("/parks/example/whatif", json={"operations": [op]})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field and words in body["detail"], body
    no_path_in(body, server)


def test_more_operations_than_the_cap_is_422_naming_the_field(client):
    one = {"op": "expand_enterprise", "name": "paper_mill", "factor": 1.0}
    r = client.post("/parks/example/whatif", json={"operations": [one] * 101})    # default cap: 100
    assert r.status_code == 422 and r.json()["field"] == "operations", r.text
    assert "101 operations" in r.json()["detail"] and "cap of 100" in r.json()["detail"]


def test_unknown_park_and_bad_duration(client):
    assert client.post("/parks/nope/whatif", json={"operations": []}).status_code == 404
    r = client.post("/parks/example/whatif", json={"operations": [], "duration_s": 3600})
    assert r.status_code == 422 and r.json()["field"] == "duration_s"
    assert client.get("/parks/example/indicators", params={"duration_s": 5}).status_code == 422


def test_a_24h_whatif(client):
    r = client.post("/parks/example/whatif", json={"duration_s": 86400, "operations": [
        {"op": "expand_enterprise", "name": "steelworks", "factor": 1.2}]})
    assert r.status_code == 200, r.text
    assert r.json()["duration_s"] == 86400
    base = client.get("/parks/example/indicators", params={"duration_s": 86400}).json()["indicators"]
    assert r.json()["indicators"]["reuse_rate"]["before"] == pytest.approx(base["reuse_rate"]["value"])
    # No operation, no change: the base case compared with is the run of the same duration.
    for duration_s in (0, 86400):
        same = client.post("/parks/example/whatif", json={"duration_s": duration_s, "operations": []}).json()
        for name, service in same["service"].items():
            assert service["min_pressure_change_m"] == pytest.approx(0.0, abs=1e-9), (duration_s, name)
            assert service["unserved_change_m3d"] == pytest.approx(0.0, abs=1e-9), (duration_s, name)


def test_leak_and_raw_perturbation_rows(client):
    """The park twin's hydraulic what-ifs: a leak on the supply network is water lost from it, and a raw
    perturbation row with the same leak gives the same answer."""
    leak = client.post("/parks/example/whatif", json={"operations": [
        {"op": "leak", "network": "supply", "junction": "S0407", "area_m2": 2e-3}]})
    assert leak.status_code == 200, leak.text
    supply = leak.json()["service"]["supply"]
    assert supply["leaks_m3d"] > 0
    assert leak.json()["indicators"]["leakage_rate"]["change"] > 0
    row = client.post("/parks/example/whatif", json={"operations": [
        {"op": "perturbation", "network": "supply", "element": "S0407", "attribute": "leak_area_m2", "value": 2e-3}]})
    assert row.status_code == 200, row.text
    assert row.json()["service"]["supply"]["leaks_m3d"] == pytest.approx(supply["leaks_m3d"], rel=1e-9)
    bad = client.post("/parks/example/whatif", json={"operations": [
        {"op": "leak", "network": "supply", "junction": "NOT_A_JUNCTION", "area_m2": 2e-3}]})
    assert bad.status_code == 422 and bad.json()["field"].startswith("operations.0")


# ---------------------------------------------------------------------- uploads
def test_upload_a_park_then_use_it(client, server):
    r = client.post("/parks", content=park_zip(), headers={"content-type": "application/zip"})
    assert r.status_code == 201, r.text
    park_id = r.json()["id"]
    assert park_id.startswith("p-") and (server.data_dir / "parks" / park_id / "park.toml").is_file()
    assert park_id in [p["id"] for p in client.get("/parks").json()]
    w = client.post(f"/parks/{park_id}/whatif", json={"operations": [{"op": "plant_outage", "plant": "wastewater"}]})
    assert w.status_code == 200, w.text


@pytest.mark.parametrize("files, field, words", [
    ({"../evil.toml": b"x", **{n: b"x" for n in PARK_FILES}}, "file", "climbs out"),
    ({"/etc/park.toml": b"x"}, "file", "absolute"),
    ({n: b"x" for n in PARK_FILES[1:]}, "park.toml", "lacks park.toml"),
])
def test_bad_park_zips(client, server, files, field, words):
    r = client.post("/parks", content=park_zip(files), headers={"content-type": "application/zip"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and words in r.json()["detail"], r.json()
    no_path_in(r.json(), server)


def test_park_zip_that_does_not_load(client, server):
    files = {n: (EXAMPLE / n).read_bytes() for n in PARK_FILES}
    files["park.toml"] = files["park.toml"].replace(b'supply = "S0407"', b'supply = "S9999"')
    r = client.post("/parks", content=park_zip(files), headers={"content-type": "application/zip"})
    assert r.status_code == 422 and r.json()["field"] == "enterprises.steelworks.junctions.supply", r.text
    files = {n: (EXAMPLE / n).read_bytes() for n in PARK_FILES}
    files["supply.inp"] = b"[JUNCTIONS]\nJ1 abc\n[END]\n"
    r = client.post("/parks", content=park_zip(files), headers={"content-type": "application/zip"})
    assert r.status_code == 422 and r.json()["field"] == "supply.inp", r.text
    no_path_in(r.json(), server)
    assert client.post("/parks", content=b"not a zip", headers={"content-type": "application/zip"}).status_code == 422
    assert not [p for p in (server.data_dir / "parks").iterdir() if p.name.startswith(".upload")]


def test_zip_bomb_is_refused(client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("park.toml", b"\0" * (200 * 2 ** 20))       # 200 MiB of zeros, ~200 KiB zipped
    r = client.post("/parks", content=buf.getvalue(), headers={"content-type": "application/zip"})
    assert r.status_code == 422 and "cap" in r.json()["detail"], r.text


def test_upload_a_network(client, server):
    # text/plain is refused: a web page can send it cross-site without a CORS preflight
    plain = client.post("/networks", content=(EXAMPLE / "supply.inp").read_bytes(), headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["field"] == "Content-Type", plain.text
    r = client.post("/networks", params={"filename": "supply copy.inp"}, content=(EXAMPLE / "supply.inp").read_bytes(),
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    net = r.json()
    assert net["id"].startswith("n-") and net["junctions"] == 225 and net["name"] == "supply_copy.inp"
    assert client.get(f"/networks/{net['id']}").json() == net
    assert net in client.get("/networks").json()
    bad = client.post("/networks", params={"filename": "broken.inp"},
                      content=b"[JUNCTIONS]\n;ID Elev Demand\nJ1 10 abc\n[PIPES]\nP1 J1 J9 100 200 100\n[END]\n",
                      headers={"content-type": "application/octet-stream"})
    assert bad.status_code == 422 and bad.json()["field"] == "file", bad.text
    assert bad.json()["detail"].startswith("broken.inp"), bad.json()
    no_path_in(bad.json(), server)
    assert client.get("/networks/%2E%2E").status_code == 404        # '..' as sent: httpx would fold a plain one
    assert client.get("/networks/n-zzzz").status_code == 404


def test_size_caps_and_content_types(client):
    big = {"operations": [{"op": "city_reclaimed_offer", "m3d": 1}] * 40000}
    r = client.post("/parks/example/whatif", json=big)
    assert r.status_code == 413 and r.json()["field"] == "body"
    many = {"operations": [{"op": "city_reclaimed_offer", "m3d": 1}] * 101}
    r = client.post("/parks/example/whatif", json=many)
    assert r.status_code == 422 and r.json()["field"] == "operations"
    r = client.post("/parks", content=b"abc", headers={"content-type": "application/json"})
    assert r.status_code == 415

    def chunks():       # no Content-Length: the cap must hold on the bytes received
        yield b'{"operations": ['
        for _ in range(40000):
            yield b'{"op": "city_reclaimed_offer", "m3d": 1},'
        yield b'{"op": "city_reclaimed_offer", "m3d": 1}]}'
    for path in ("/parks/example/whatif", "/jobs"):
        r = client.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        assert r.status_code == 413 and r.json()["field"] == "body", (path, r.status_code, r.text)


def test_ids_are_checked_before_they_touch_the_file_system(tmp_path):
    """Hostile ids never become paths, even where the path they would name exists."""
    from parktwin.api.server.errors import ApiError
    from parktwin.api.server.registry import Registry
    data = tmp_path / "data"
    registry = Registry(data, EXAMPLE, 2 ** 20, 64)
    (data / "park.toml").write_text("x")             # what parks/.. and networks/.. would reach
    (data / "network.inp").write_text("x")
    (data / "parks" / "p-0123456789ab\n").mkdir()
    (data / "parks" / "p-0123456789ab\n" / "park.toml").write_text("x")
    for bad in ("..", "../..", "p-0123456789ab\n", "example/..", "P-0123456789AB", "n-0123456789ab"):
        with pytest.raises(ApiError) as park:
            registry.park_dir(bad)
        assert park.value.status == 404, bad
    for bad in ("..", "n-0123456789ab\n", "p-0123456789ab", "n-0123456789ab/../.."):
        with pytest.raises(ApiError) as net:
            registry.network_path(bad)
        assert net.value.status == 404, bad
    assert registry.park_ids() == ["example"]


def test_a_zipped_folder_from_macos_is_a_park(tmp_path):
    from parktwin.api.server.registry import Registry
    files = {n: (EXAMPLE / n).read_bytes() for n in PARK_FILES}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr("mypark/" + name, data)
            z.writestr("__MACOSX/mypark/._" + name, b"resource fork")
    out = Registry(tmp_path / "data", EXAMPLE, 2 ** 27, 64)._read_park_zip(buf.getvalue())
    assert out == files


def test_park_picture(client, server):
    r = client.get("/parks/example/picture", params={"quantity": "pressure"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    bad = client.get("/parks/example/picture", params={"quantity": "nonsense"})
    assert bad.status_code == 422 and bad.json()["field"] == "quantity"
    no_path_in(bad.json(), server)


# ---------------------------------------------------------------------- the key
@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("keyed") / "data", env={"PARKTWIN_API_KEY": "s3cret-key"}).start()
    yield srv
    srv.stop()


def test_a_keyed_server_answers_401_to_everything_but_health(keyed):
    with keyed.client() as c:
        assert c.get("/health").status_code == 200
        for method, path in [("GET", "/parks"), ("GET", "/parks/example"), ("POST", "/parks/example/whatif"),
                             ("GET", "/openapi.json"), ("GET", "/docs"), ("POST", "/jobs"), ("GET", "/jobs/j-0"),
                             ("POST", "/parks"), ("GET", "/nothing-here")]:
            r = c.request(method, path, json={"operations": []})
            assert r.status_code == 401, (method, path, r.status_code)
        assert c.get("/parks", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/parks", headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert c.get("/parks", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        schema = c.get("/openapi.json", headers={"X-API-Key": "s3cret-key"}).json()
        assert "ApiKey" in schema["components"]["securitySchemes"]


def test_city_fresh_head(client):
    """The city's head on the municipal reservoir: 5 m less at the boundary, lower pressures in the park
    (less than 5 m: the park's tank holds its share of the heads)."""
    park = client.get("/parks/example").json()
    head = park["city"]["fresh_head_m"]
    assert park["city"]["fresh_reservoir"] == "MUNICIPAL"
    r = client.post("/parks/example/whatif", json={"operations": [{"op": "city_fresh_head", "head_m": head - 5.0}]})
    assert r.status_code == 200, r.text
    supply = r.json()["service"]["supply"]
    assert -5.0 <= supply["min_pressure_change_m"] < -0.1


def test_a_zip_that_cannot_be_unpacked_is_a_422(tmp_path):
    """Corrupt data, an encrypted entry, an unknown compression method: the client's file, not a 500/501."""
    from parktwin.api.server.errors import ApiError
    from parktwin.api.server.registry import Registry
    registry = Registry(tmp_path / "data", EXAMPLE, 2 ** 27, 64)
    good = park_zip(folder="")
    corrupt = bytearray(good)
    start = corrupt.find(b"PK\x03\x04") + 30 + len("park.toml")
    corrupt[start + 10: start + 60] = bytes(b ^ 0xFF for b in corrupt[start + 10: start + 60])
    encrypted, method = bytearray(good), bytearray(good)
    for signature, flags, compression in ((b"PK\x01\x02", 8, 10), (b"PK\x03\x04", 6, 8)):
        at = good.find(signature)
        encrypted[at + flags] |= 0x1
        method[at + compression] = 99
    for name, data in (("corrupt", corrupt), ("encrypted", encrypted), ("method", method)):
        with pytest.raises(ApiError) as refused:
            registry._read_park_zip(bytes(data))
        assert refused.value.status == 422 and refused.value.field == "file", (name, refused.value.detail)
        assert "park.toml" in refused.value.detail and "\n" not in refused.value.detail, name
