"""Schemathesis against the live server: for every operation of ``/api/schema/`` and every role,
generated requests get no 5xx, only documented status codes and content types, bodies that match
the documented response schema, and input the schema calls invalid is refused (negative data).

Bounded on purpose (a few derandomized examples per operation and mode) so the module runs in
a minute or two; the point is that schema and validation agree, not load."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
import requests
import schemathesis
import yaml
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from molam_upgrades.credentials import create_api_client

pytestmark = pytest.mark.django_db(transaction=True)

MERCHANT_A = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
MERCHANT_B = uuid.UUID("9b2f7a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2b")

# Examples per operation and generation mode: enough to reach every parameter once or twice.
# The roles that are refused most operations (403 before any validation) need fewer.
MAX_EXAMPLES = 5
MAX_EXAMPLES_REFUSED = 3

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Role:
    name: str
    role: str
    merchant_id: uuid.UUID | None = None
    # pay_admin may call every operation, so its documented-valid reads must also be accepted.
    checks_valid_input: bool = False
    max_examples: int = MAX_EXAMPLES_REFUSED


ROLES = [
    Role("admin", "pay_admin", checks_valid_input=True, max_examples=MAX_EXAMPLES),
    Role("viewer", "ops_viewer"),
    Role("sira", "sira"),
    Role("shop-a", "plugin", MERCHANT_A),
]


def _token(role: Role) -> str:
    _, token = create_api_client(
        name=f"fuzz-{role.name}", role=role.role, merchant_id=role.merchant_id, actor="test"
    )
    return token


def _load_schema(base_url: str, token: str):
    response = requests.get(
        f"{base_url}/api/schema/", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text[:500]
    document = yaml.safe_load(response.text)  # /api/schema/ answers YAML
    document["servers"] = [{"url": base_url}]
    return schemathesis.openapi.from_dict(document)


def _run(
    operation, mode: GenerationMode, *, base_url: str, token: str, checks, max_examples: int
) -> list[str]:
    """Run ``max_examples`` derandomized cases of one operation; return one line per failure."""
    failures: list[str] = []
    seen: set[str] = set()
    session = requests.Session()

    @settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def probe(case):
        response = case.call(base_url=base_url, session=session, headers={"Authorization": f"Bearer {token}"})
        applied = checks
        if case.query and "before" in case.query:
            # A keyset cursor is a value the server handed out (and "not with offset"): a string
            # of the documented shape is not necessarily a row that exists.
            applied = [check for check in checks if check is not positive_data_acceptance]
        try:
            case.validate_response(response, checks=applied)
        except (AssertionError, FailureGroup) as exc:
            for failure in exc.exceptions if isinstance(exc, FailureGroup) else [exc]:
                title = getattr(failure, "title", type(failure).__name__)
                key = f"{operation.label} [{mode.value}] {title}"
                if key in seen:
                    continue
                seen.add(key)
                message = " | ".join(
                    line for line in getattr(failure, "message", str(failure)).splitlines() if line
                )
                failures.append(
                    f"{key}\n    {message[:400]}\n    status {response.status_code}: "
                    f"{response.text[:200]!r}\n    {case.as_curl_command()[:500]}"
                )

    try:
        probe()
    except HypothesisException as exc:  # e.g. nothing negative can be generated for this operation
        if mode is GenerationMode.POSITIVE:
            failures.append(f"{operation.label} [{mode.value}] could not generate cases: {exc}")
    finally:
        session.close()
    return failures


def _seed_objects():
    """Something for the path parameters to find: a merchant, a release, a rollout."""
    from tests.factories import RolloutFactory

    RolloutFactory(plugin_name="woocommerce", version="2.1.0")


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_operation_conforms_to_the_schema(live_server, role):
    _seed_objects()
    token = _token(role)
    schema = _load_schema(live_server.url, token)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        checks = list(CHECKS)
        if role.checks_valid_input and operation.method.upper() == "GET":
            # Writes depend on state (a documented 409, a version not newer); reads do not.
            checks.append(positive_data_acceptance)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _run(
                operation,
                mode,
                base_url=live_server.url,
                token=token,
                checks=checks,
                max_examples=role.max_examples,
            )
    assert operations >= 40, f"only {operations} operations in /api/schema/"
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


# --- hostile input by hand, over real HTTP ------------------------------------------------------


class Http:
    """One credential against the live server."""

    def __init__(self, base_url: str, role: str, merchant_id: uuid.UUID | None = None):
        self.base_url = base_url
        self.token = _token(Role(f"{role}-{merchant_id or 'any'}", role, merchant_id))

    def __call__(self, method: str, path: str, body=None, raw: str | bytes | None = None, **headers):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return requests.request(
            method,
            f"{self.base_url}/api/plugins/{path}",
            data=data,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", **headers},
            timeout=30,
        )


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = response.json()
    assert body["ok"] is False and body["error"], body
    return body


@pytest.fixture
def http(live_server):
    return {
        "admin": Http(live_server.url, "pay_admin"),
        "ops": Http(live_server.url, "ops_plugins"),
        "sira": Http(live_server.url, "sira"),
        "a": Http(live_server.url, "plugin", MERCHANT_A),
        "b": Http(live_server.url, "plugin", MERCHANT_B),
    }


def _planned_rollout(http) -> int:
    created = http["ops"](
        "POST", "rollouts", {"plugin_name": "woocommerce", "version": "5.0.0", "percentage": 5}
    )
    assert created.status_code == 201, created.text
    rollout_id = created.json()["rollout"]["id"]
    stages = [{"percentage": 5}, {"percentage": 50}, {"percentage": 100}]
    attached = http["ops"]("PUT", f"rollouts/{rollout_id}/plan", {"stages": stages})
    assert attached.status_code == 200, attached.text
    return rollout_id


def test_a_write_to_an_unknown_api_path_is_a_json_404_even_with_a_session_cookie(http):
    response = http["ops"]("POST", "rollback/not-a-uuid/approve", {}, Cookie="sessionid=garbage")
    assert_json_error(response, 404)


@pytest.mark.parametrize(
    "path",
    [
        "merchant-notices?merchant_id=",
        "merchants?high_value=0.5",
        "merchants?high_value=",
        "rollouts?include_metrics=",
        "rollouts?status=",
        "rollouts?limit=",
        "backups?status=",
        "rollback/history?offset=",
        "rollback/pending?plugin_name=",
        "payment-health?since=",
    ],
)
def test_an_empty_or_untyped_query_value_is_refused_as_the_schema_says(http, path):
    assert_json_error(http["admin"]("GET", path), 400)


def test_an_empty_text_filter_is_no_filter(http):
    assert http["admin"]("GET", "rollouts?plugin_name=").status_code == 200


@pytest.mark.parametrize("raw", ["[]", "null", '""', "0", "[1]"])
def test_a_body_that_is_not_an_object_changes_no_plan_and_no_rollout(http, raw):
    from plans.models import RolloutPlan
    from rollouts.models import Rollout

    rollout_id = _planned_rollout(http)
    before = RolloutPlan.objects.get(rollout_id=rollout_id)
    for action in ("hold", "skip", "back"):
        assert_json_error(http["ops"]("POST", f"rollouts/{rollout_id}/plan/{action}", raw=raw), 400)
    assert_json_error(http["ops"]("POST", f"rollouts/{rollout_id}/pause", raw=raw), 400)
    after = RolloutPlan.objects.get(rollout_id=rollout_id)
    assert (after.held, after.current_stage) == (before.held, before.current_stage)
    assert Rollout.objects.get(pk=rollout_id).status == "active"
    # No body at all is still "no reason".
    assert http["ops"]("POST", f"rollouts/{rollout_id}/plan/hold").status_code == 200


HOSTILE_BODIES = {
    "deep array": "[" * 100_000 + "]" * 100_000,
    "deep object": '{"a":' * 5000 + "1" + "}" * 5000,
    "NaN": '{"reason": NaN, "percentage": NaN, "attempted": NaN}',
    "Infinity": '{"reason": Infinity, "percentage": Infinity, "attempted": -Infinity}',
    "huge number": '{"reason": 1' + "0" * 5000 + "}",
    "NUL": '{"reason": "a\\u0000b", "name": "a\\u0000b", "plugin_name": "w\\u0000"}',
    "bad UTF-8": b'{"reason": "\xff\xfe"}',
    "wrong types": '{"reason": ["x"], "name": 5, "stages": "x", "percentage": true, "attempted": "10"}',
}


@pytest.mark.parametrize("label", list(HOSTILE_BODIES))
def test_hostile_bodies_on_the_newer_endpoints_are_400_and_write_nothing(http, label):
    from merchants.models import Merchant
    from payments.models import PaymentHealthReport
    from plans.models import PlanTemplate, RolloutPlan

    raw = HOSTILE_BODIES[label]
    rollout_id = _planned_rollout(http)
    plan = RolloutPlan.objects.get(rollout_id=rollout_id)
    counts = (PlanTemplate.objects.count(), PaymentHealthReport.objects.count(), Merchant.objects.count())
    for who, method, path in [
        ("ops", "POST", f"rollouts/{rollout_id}/plan/hold"),
        ("ops", "POST", f"rollouts/{rollout_id}/plan/skip"),
        ("ops", "POST", f"rollouts/{rollout_id}/plan/back"),
        ("ops", "PUT", f"rollouts/{rollout_id}/plan"),
        ("ops", "POST", "plan-templates"),
        ("ops", "POST", "rollouts/simulate"),
        ("a", "POST", "payment-health"),
        ("admin", "POST", "merchants"),
    ]:
        assert_json_error(http[who](method, path, raw=raw), 400)
    assert (
        PlanTemplate.objects.count(),
        PaymentHealthReport.objects.count(),
        Merchant.objects.count(),
    ) == counts
    after = RolloutPlan.objects.get(rollout_id=rollout_id)
    assert (after.held, after.current_stage) == (plan.held, plan.current_stage)


def test_another_merchants_credential_is_403_and_writes_nothing(http):
    from payments.models import PaymentHealthReport
    from rollbacks.models import RollbackHistory

    hour = timezone.now().replace(minute=0, second=0, microsecond=0).isoformat()
    report = {
        "merchant_id": str(MERCHANT_A),
        "plugin_name": "woocommerce",
        "installed_version": "4.0.0",
        "hour": hour,
        "attempted": 10,
        "succeeded": 9,
    }
    assert_json_error(http["b"]("POST", "payment-health", report), 403)
    assert not PaymentHealthReport.objects.exists()
    assert_json_error(http["b"]("GET", f"payment-health?merchant_id={MERCHANT_A}"), 403)

    rollback_id = forced_rollback_of_merchant_a(http)
    done = {"success": True, "duration_ms": 5, "files_restored": 1, "db_restored": True}
    assert_json_error(http["b"]("POST", f"rollback/{rollback_id}/complete", done), 403)
    assert RollbackHistory.objects.get(pk=rollback_id).completed_at is None
    for who in ("a", "b", "sira"):
        assert_json_error(http[who]("POST", f"rollback/{rollback_id}/approve", {}), 403)
    # Unknown merchant or rollback: a 404, not a 500.
    assert_json_error(http["admin"]("GET", f"merchants/{uuid.uuid4()}"), 404)
    assert_json_error(http["admin"]("PATCH", f"merchants/{uuid.uuid4()}", {"name": "x"}), 404)
    assert_json_error(http["admin"]("POST", f"rollback/{uuid.uuid4()}/approve", {}), 404)


def forced_rollback_of_merchant_a(http) -> str:
    """An operator-forced rollback of merchant A's woocommerce 4.0.0, through the API; its id."""
    initiated = http["ops"](
        "POST",
        "rollback/initiate",
        {
            "merchant_id": str(MERCHANT_A),
            "plugin_name": "woocommerce",
            "from_version": "4.0.0",
            "to_version": "3.9.0",
            "trigger": "operator_forced",
            "reason": "checkout errors",
        },
    )
    assert initiated.status_code == 201, initiated.text
    return initiated.json()["rollback_id"]


def test_rollback_approval_refuses_bad_bodies_and_stays_pending(http):
    from rollbacks.models import RollbackHistory

    created = http["admin"](
        "POST", "merchants", {"merchant_id": str(MERCHANT_A), "name": "Shop A", "high_value": True}
    )
    assert created.status_code == 201, created.text
    rollback_id = forced_rollback_of_merchant_a(http)
    status_before = RollbackHistory.objects.get(pk=rollback_id).approval_status
    for raw in [
        "[]",
        "null",
        '{"reason": 5}',
        '{"reason": "a\\u0000"}',
        '{"reason": NaN}',
        '{"reason": "' + "x" * 3000 + '"}',
    ]:
        for action in ("approve", "reject"):
            assert_json_error(http["admin"]("POST", f"rollback/{rollback_id}/{action}", raw=raw), 400)
    assert RollbackHistory.objects.get(pk=rollback_id).approval_status == status_before == "awaiting_approval"


@pytest.mark.parametrize(
    "override",
    [
        {"version": "\u0664.0.0"},  # Arabic-Indic digit four: not the ASCII digits the schema publishes
        {"strategy": "geo", "target_countries": ["SN"] * 251},  # maxItems counts what is sent
        {"strategy": "geo", "target_countries": ["sn"]},  # the published item pattern
        {"sample_size": "5"},  # bodies take JSON integers only
        {"percentage": "1e2"},
    ],
)
def test_simulate_refuses_what_its_schema_refuses(http, override):
    body = {"plugin_name": "woocommerce", "version": "5.0.0", "percentage": 10, **override}
    assert_json_error(http["ops"]("POST", "rollouts/simulate", body), 400)


def test_a_payment_health_hour_without_its_offset_is_refused(http):
    from payments.models import PaymentHealthReport

    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    report = {
        "merchant_id": str(MERCHANT_A),
        "plugin_name": "woocommerce",
        "installed_version": "4.0.0",
        "attempted": 10,
        "succeeded": 9,
    }
    body = assert_json_error(
        http["a"]("POST", "payment-health", {**report, "hour": hour.strftime("%Y-%m-%dT%H:%M:%S")}), 400
    )
    assert "hour" in body["details"]
    assert not PaymentHealthReport.objects.exists()
    assert (
        http["a"](
            "POST", "payment-health", {**report, "hour": hour.strftime("%Y-%m-%dT%H:00:00Z")}
        ).status_code
        == 201
    )


def test_rollout_percentages_are_documented_as_the_json_numbers_the_api_takes(http, live_server):
    document = yaml.safe_load(
        requests.get(
            f"{live_server.url}/api/schema/",
            headers={"Authorization": f"Bearer {http['ops'].token}"},
            timeout=30,
        ).text
    )
    for name in ("RolloutCreate", "PatchedRolloutPatch", "Simulate"):
        assert document["components"]["schemas"][name]["properties"]["percentage"]["type"] == "number", name
    body = {"plugin_name": "woocommerce", "version": "5.0.0", "percentage": "10"}
    assert_json_error(http["ops"]("POST", "rollouts", body), 400)
    assert http["ops"]("POST", "rollouts", {**body, "percentage": 10}).status_code == 201


def test_a_merchant_without_email_or_webhook_matches_its_documented_response(http, live_server):
    schema = _load_schema(live_server.url, http["admin"].token)
    operation = schema["/api/plugins/merchants"]["POST"]
    case = operation.Case(body={"merchant_id": str(uuid.uuid4()), "name": "Shop without contacts"})
    response = case.call(base_url=live_server.url, headers={"Authorization": f"Bearer {http['admin'].token}"})
    assert response.status_code == 201, response.text
    assert (
        response.json()["merchant"]["contact_email"] == ""
        and response.json()["merchant"]["webhook_url"] == ""
    )
    case.validate_response(response, checks=[response_schema_conformance])


@pytest.mark.parametrize(
    "path, status",
    [
        # ISO 8601 allows offsets to ±23:59 (PostgreSQL only to ±15:59): turned to UTC first.
        ("payment-health?since=2026-08-07T21%3A18%3A47-19%3A54", 200),
        ("payment-health?since=9999-12-31T23%3A18%3A47-05%3A00", 400),  # past year 9999 in UTC
        (f"rollback/history?before=2026-08-07T21%3A18%3A47-19%3A54%2C{uuid.UUID(int=1)}", 200),
        (f"rollback/history?before=9999-12-31T23%3A18%3A47-05%3A00%2C{uuid.UUID(int=1)}", 400),
    ],
)
def test_times_with_far_offsets_are_read_in_utc(http, path, status):
    response = http["admin"]("GET", path)
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        assert_json_error(response, status)
