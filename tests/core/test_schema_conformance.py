"""Schemathesis against the live server: for every operation of ``/api/schema/`` and every role,
generated requests get no 5xx, only documented status codes and content types, bodies that match
the documented response schema, and input the schema calls invalid is refused (negative data).

Bounded on purpose (a few derandomized examples per operation and mode) so the module runs in
a minute or two; the point is that schema and validation agree, not load."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import requests
import schemathesis
import yaml
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
MAX_EXAMPLES = 5

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


ROLES = [
    Role("admin", "pay_admin", checks_valid_input=True),
    Role("viewer", "ops_viewer"),
    Role("sira", "sira"),
    Role("shop-a", "plugin", MERCHANT_A),
]


def _token(role: Role) -> str:
    _, token = create_api_client(name=f"fuzz-{role.name}", role=role.role, merchant_id=role.merchant_id, actor="test")
    return token


def _load_schema(base_url: str, token: str):
    response = requests.get(f"{base_url}/api/schema/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text[:500]
    document = yaml.safe_load(response.text)  # /api/schema/ answers YAML
    document["servers"] = [{"url": base_url}]
    return schemathesis.openapi.from_dict(document)


def _run(operation, mode: GenerationMode, *, base_url: str, token: str, checks) -> list[str]:
    """Run ``MAX_EXAMPLES`` derandomized cases of one operation; return one line per failure."""
    failures: list[str] = []
    seen: set[str] = set()
    session = requests.Session()

    @settings(
        max_examples=MAX_EXAMPLES,
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
                message = " | ".join(line for line in getattr(failure, "message", str(failure)).splitlines() if line)
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
            failures += _run(operation, mode, base_url=live_server.url, token=token, checks=checks)
    assert operations >= 40, f"only {operations} operations in /api/schema/"
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
