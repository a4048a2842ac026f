"""schemathesis against the live server: every registered check, a bounded number of examples per operation,
then the stateful phase, which follows the document's links from what POST /jobs, POST /parks and
POST /networks create to the operations on it. Any finding fails the test.

Positive data (valid by the schema) must be accepted: schemathesis' default answers for it (2xx, 401, 403,
404 for ids that do not exist, 409 for a job not in the state asked, 429) and nothing else, except where
acceptance depends on what no schema can state, listed in CONTENT_DEPENDENT with the reason; there 413
and 422 are allowed too, and the message must name the field. 501 is allowed only on a server that cannot
draw pictures (no off-screen VTK).

Positive cases are steered half of the time (by a hash of the case) to what exists: the example park's
id, a valid study, a real park zip or network; in the stateful phase every creation is, so that the links
lead somewhere. Negative cases are never changed. The server's study cap is 20 scenarios, so jobs stay small.
"""
from __future__ import annotations

import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from test_api_whatif import EXAMPLE, ApiServer, park_zip

EXAMPLES_PER_OPERATION = 15
STATEFUL_EXAMPLES = 12
STATEFUL_STEPS = 6
POSITIVE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429"]
CONTENT_DEPENDENT = {
    "POST /parks": "the zip must hold a park the park loader accepts, within the upload limits",
    "POST /networks": "the body must be an EPANET network within the upload limits",
    "POST /parks/{park_id}/whatif": "names must exist in the park (enterprises, units, junctions, pumps)",
    "POST /parks/{park_id}/readings": "the CSV must name the park's meters with readings in order",
    "GET /parks/{park_id}/reconcile": "from and to must be whole days, in order, that the ledger covers",
    "POST /jobs": "ids must exist in the network, the distributions' fields agree, the job fits the caps",
    "GET /jobs/{job_id}/picture": "the quantity must be one the job's store holds (result or statistics)",
}
VALID_STUDY = {"target": {"park_id": "example", "network": "supply"}, "scenarios": 8, "sampler": "mc",
               "leaks": {"count": 1, "area": {"distribution": "lognormal", "median_m2": 1e-4, "sigma": 1.0}}}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("schema") / "data", "--max-study-scenarios", "20").start()
    yield srv
    srv.stop()


def _pictures_unavailable() -> bool:
    from parktwin import viz
    return bool(viz.offscreen_problem())


@pytest.fixture(scope="module")
def api_schema(live):
    server_errors = ["2xx", "3xx", "4xx"] + (["501"] if _pictures_unavailable() else [])
    config = schemathesis.Config.from_dict({
        "generation": {"max-examples": EXAMPLES_PER_OPERATION},
        "request-timeout": 120,          # a picture or a base run on a loaded CI machine: not 10 s
        "checks": {"not_a_server_error": {"expected-statuses": server_errors},
                   "positive_data_acceptance": {"expected-statuses": POSITIVE_DEFAULT}},
        "operations": [{"include-name": name,
                        "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_DEFAULT + ["413", "422"]}}}
                       for name in CONTENT_DEPENDENT],
    })
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json", config=config)

    @schema.hook
    def map_case(context, case):
        if zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode()) % 2 == 0:
            steer(case)
        return case

    return schema


SUPPLY_INP = (EXAMPLE / "supply.inp").read_bytes()
PARK_ZIP = park_zip()


def steer(case, stateful: bool = False) -> None:
    """Point a positive case at what exists: the example park, a valid study, a real network or park.
    The stateful phase generates positive cases only."""
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    if not (positive or stateful):
        return
    label = case.operation.label
    if case.path_parameters and "park_id" in case.path_parameters:
        case.path_parameters["park_id"] = "example"
    if label == "POST /jobs" and isinstance(case.body, dict):
        case.body = {**VALID_STUDY, "seed": case.body.get("seed", 1), "store": case.body.get("store", "summary")}
    elif label == "POST /networks":
        case.body = SUPPLY_INP
    elif label == "POST /parks":
        case.body = PARK_ZIP


def all_checks():
    from schemathesis.checks import CHECKS, load_all_checks
    load_all_checks()
    return CHECKS.get_all()


def describe(exc: BaseException) -> str:
    """The failure and, for a group (schemathesis' checks, Hypothesis' flaky reports), each one inside."""
    inner = getattr(exc, "exceptions", ())
    return f"{exc}" + "".join(f"\n  - {type(e).__name__}: {describe(e)}" for e in inner)


HYPOTHESIS = dict(deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])


def test_every_operation_conforms_to_its_schema(api_schema):
    # One pytest test drives every operation itself: schemathesis' lazy pytest loader (from_fixture)
    # does not run under this pytest, and the schema only exists once the fixture's server is up.
    checks = all_checks()
    failures, operations, statuses = [], [], {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(mode))
            @settings(max_examples=EXAMPLES_PER_OPERATION, **HYPOTHESIS)
            def run(case):
                response = case.call_and_validate(checks=checks)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if 400 <= response.status_code < 500 and response.status_code not in (401, 404, 405):
                    assert response.json().get("detail"), response.text

            try:
                run()
            except Unsatisfiable:
                # a negative run of an operation with nothing to make invalid (GET /health, GET /parks)
                assert mode == GenerationMode.NEGATIVE, f"{operation.label}: no positive example could be generated"
            except (AssertionError, BaseExceptionGroup) as exc:   # collected: one report lists every failure
                failures.append(f"{operation.label} ({mode.value}): {describe(exc)}")
    assert len(operations) >= 16, operations
    print("schemathesis: status codes", dict(sorted(statuses.items())))
    # the run exercised both sides: accepted requests, created resources and rejected ones
    assert statuses.get(200, 0) >= 10 and statuses.get(201, 0) >= 2 and statuses.get(202, 0) >= 1, statuses
    assert statuses.get(422, 0) >= 50, statuses
    assert not failures, "\n\n".join(failures)


def test_the_links_lead_the_stateful_phase_to_every_created_resource(api_schema):
    checks = all_checks()
    reached: dict[str, set[int]] = {}

    class Machine(api_schema.as_state_machine()):
        def before_call(self, case):
            # every creation succeeds here (the first test covers the refused ones), so links lead on
            if case.operation.label in ("POST /jobs", "POST /networks", "POST /parks"):
                steer(case, stateful=True)
            super().before_call(case)

        def after_call(self, response, case):
            super().after_call(response, case)
            reached.setdefault(case.operation.label, set()).add(response.status_code)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=checks, additional_checks=additional_checks,
                                   transport_kwargs=kwargs or None, recorder=getattr(self, "recorder", None))

    Machine.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, **HYPOTHESIS))
    print("stateful:", {k: sorted(v) for k, v in sorted(reached.items())})
    # the links were followed: created jobs and parks were found by the operations on them (an id that
    # did not flow would only ever be a 404); which linked operations a run picks is random
    created = {"/jobs/{job_id}": 202 in reached.get("POST /jobs", set()),
               "/parks/{park_id}": 201 in reached.get("POST /parks", set())}
    assert any(created.values()), reached
    for prefix, made in created.items():
        if not made:      # hypothesis did not pick this creation in this run
            continue
        found = {s for label, codes in reached.items() if label.split(" ", 1)[1].startswith(prefix) for s in codes}
        assert found - {404}, (prefix, reached)
    assert 200 in reached.get("GET /networks/{network_id}", {200}), reached    # if it was picked, it found one


def test_the_document_links_creations_to_their_resources(live):
    import httpx
    doc = httpx.get(live.url + "/openapi.json", timeout=30).json()
    links = doc["paths"]["/jobs"]["post"]["responses"]["202"]["links"]
    targets = {link["operationId"] for link in links.values()}
    by_id = {op["operationId"]: f"{method.upper()} {path}" for path, ops in doc["paths"].items()
             for method, op in ops.items()}
    assert {by_id[t] for t in targets} == {"GET /jobs/{job_id}", "POST /jobs/{job_id}/cancel",
                                           "POST /jobs/{job_id}/resume", "GET /jobs/{job_id}/summary",
                                           "GET /jobs/{job_id}/result", "GET /jobs/{job_id}/picture",
                                           "DELETE /jobs/{job_id}"}
    assert all(link["parameters"] == {"job_id": "$response.body#/id"} for link in links.values())
    assert doc["paths"]["/networks"]["post"]["responses"]["201"]["links"]
    assert doc["paths"]["/parks"]["post"]["responses"]["201"]["links"]
    target = doc["components"]["schemas"]["StudyRequest"]["properties"]["target"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in target["oneOf"]] == ["ParkTarget", "NetworkTarget"]
    quantity = next(p for p in doc["paths"]["/parks/{park_id}/picture"]["get"]["parameters"] if p["name"] == "quantity")
    assert "$ref" in quantity["schema"] or "enum" in quantity["schema"]
    assert list(doc["paths"]["/networks"]["post"]["requestBody"]["content"]) == ["application/octet-stream"]
