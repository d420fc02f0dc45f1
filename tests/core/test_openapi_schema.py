"""``/api/schema/``: valid, no generator warning, every response typed, every error code declared."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

WRITES = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        # --fail-on-warn: any warning of drf-spectacular (an untyped field, an enum collision…) fails.
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def test_the_error_envelope_is_a_component(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"ok", "error", "details"}
    assert (
        error["properties"]["ok"]["type"] == "boolean" and error["properties"]["details"]["type"] == "object"
    )


def test_every_operation_has_a_typed_success_response(schema):
    for path, method, operation in _operations(schema):
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert success, (method, path)
        for code in success:
            body = operation["responses"][code]["content"]["application/json"]["schema"]
            ref = body["$ref"]  # a named component, never a bare object
            component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
            assert component.get("properties"), (method, path, code, ref)


def test_every_operation_declares_its_error_codes_with_the_envelope(schema):
    for path, method, operation in _operations(schema):
        codes = set(operation["responses"])
        expected = {"401", "403", "429"}
        if method in WRITES:
            expected |= {"400", "409", "413"}
        if "{" in path:
            expected.add("404")
        assert expected <= codes, (method, path, sorted(expected - codes))
        for code in codes - {c for c in codes if c.startswith("2")}:
            error = operation["responses"][code]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}, (method, path, code)


def test_writes_document_the_idempotency_key(schema):
    for path, method, operation in _operations(schema):
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in headers) == (method in WRITES), (method, path)


def test_seed_list_shapes_are_what_the_schema_says(schema):
    shapes = {
        "/api/plugins/backups": "backups",
        "/api/plugins/releases": "releases",
        "/api/plugins/rollouts": "rollouts",
        "/api/plugins/rollback/history": "rollbacks",
    }
    for path, key in shapes.items():
        ref = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"
        ]
        page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(page["required"]) == {key, "total"} and page["properties"][key]["type"] == "array"
        params = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert {"limit", "offset"} <= params
