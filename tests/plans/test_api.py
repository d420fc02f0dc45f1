"""The plans API: templates, a rollout's plan, hold / release / skip / back, simulate; role checks."""

from __future__ import annotations

import uuid

import pytest
import yaml

from molam_upgrades.models import AuditEntry
from plans.models import PlanTemplate, RolloutPlan
from tests.conftest import assert_error
from tests.factories import UpgradeLogFactory

from .conftest import percentage_of, start_rollout

pytestmark = pytest.mark.django_db

STAGES = [
    {"percentage": 5, "min_soak_minutes": 60, "min_merchants": 3},
    {"percentage": 25},
    {"percentage": 100},
]


def test_templates_are_listed_for_readers_and_created_by_operators(cast):
    for reader in (cast.ops, cast.viewer, cast.sira, cast.admin):
        response = reader.get("plan-templates")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["total"] >= 2
        canary = next(t for t in body["templates"] if t["slug"] == "canary-5-25-50-100")
        assert [s["percentage"] for s in canary["stages"]] == [5, 25, 50, 100]
    assert (
        cast.viewer.get("plan-templates/cautious-1-5-25-100").json()["template"]["name"]
        == "Cautious 1 → 5 → 25 → 100"
    )
    assert_error(cast.viewer.get("plan-templates/nope"), 404)

    body = {
        "name": "Tiny 0.5 → 2.5 → 100",
        "stages": [{"percentage": 0.5}, {"percentage": 2.5}, {"percentage": 100}],
    }
    for outsider in (cast.viewer, cast.sira, cast.plugin_a):
        assert_error(outsider.post("plan-templates", body), 403)
    assert_error(cast.anonymous.post("plan-templates", body), 401)
    response = cast.ops.post("plan-templates", body)
    assert response.status_code == 201, response.content
    assert response.json()["template"]["stages"][0]["percentage"] == 0.5
    assert_error(cast.ops.post("plan-templates", body), 409)
    assert_error(
        cast.ops.post("plan-templates", {"name": "Down", "stages": [{"percentage": 50}, {"percentage": 5}]}),
        400,
    )
    assert PlanTemplate.objects.filter(slug="tiny-05-25-100").count() == 1


def test_an_operator_puts_a_rollout_on_a_plan_and_drives_it(cast):
    rollout = start_rollout(percentage="0")
    url = f"rollouts/{rollout.pk}/plan"
    assert_error(cast.viewer.get(url), 404)  # no plan yet

    body = {
        "template": "canary-5-25-50-100",
        "timezone": "Africa/Dakar",
        "windows": [{"days": ["sat", "sun"], "start": "22:00", "end": "06:00"}],
    }
    for outsider in (cast.viewer, cast.sira, cast.plugin_a):
        assert_error(outsider.client.put(f"/api/plugins/{url}", body, format="json"), 403)
    response = cast.ops.client.put(f"/api/plugins/{url}", body, format="json")
    assert response.status_code == 200, response.content
    plan = response.json()["plan"]
    assert plan["template"] == "canary-5-25-50-100"
    assert plan["current_stage"] == 1 and plan["stages"][0]["state"] == "current"
    assert plan["timezone"] == "Africa/Dakar" and plan["windows"][0]["days"] == ["sat", "sun"]
    assert percentage_of(rollout) == 5

    for reader in (cast.viewer, cast.sira):
        assert reader.get(url).json()["plan"]["state"] in ("waiting", "outside_window")

    assert cast.ops.post(f"{url}/hold", {"reason": "Tabaski"}).json()["plan"]["held"] is True
    assert_error(cast.ops.post(f"{url}/hold", {}), 409)
    assert cast.ops.post(f"{url}/release").json()["plan"]["held"] is False
    assert cast.ops.post(f"{url}/skip", {"reason": "hotfix"}).json()["plan"]["current_stage"] == 2
    assert percentage_of(rollout) == 25
    assert cast.ops.post(f"{url}/back").json()["plan"]["current_stage"] == 1
    assert percentage_of(rollout) == 5
    assert_error(cast.ops.post(f"{url}/back"), 409)
    for verb in ("hold", "release", "skip", "back"):
        assert_error(cast.viewer.post(f"{url}/{verb}"), 403)
        assert_error(cast.sira.post(f"{url}/{verb}"), 403)

    response = cast.ops.delete(url)
    assert response.status_code == 200 and response.json() == {"ok": True, "rollout_id": rollout.pk}
    assert not RolloutPlan.objects.exists()
    assert AuditEntry.objects.filter(action="plan.detached", object_id=str(rollout.pk)).count() == 1


def test_bad_plan_requests_are_clear_400s_and_change_nothing(cast):
    rollout = start_rollout(percentage="5")
    url = f"/api/plugins/rollouts/{rollout.pk}/plan"
    for body in (
        {},
        {"template": "canary-5-25-50-100", "stages": STAGES},
        {"stages": [{"percentage": 5}, {"percentage": 5}]},
        {"stages": [{"percentage": "0.001"}]},
        {"stages": STAGES, "timezone": "Mars/Olympus"},
        {"stages": STAGES, "windows": [{"days": ["mon"], "start": "9", "end": "10:00"}]},
        {"stages": STAGES, "windows": "nights"},
        ["not", "an", "object"],
    ):
        assert_error(cast.ops.client.put(url, body, format="json"), 400)
    assert_error(cast.ops.client.put(url, {"template": "no-such"}, format="json"), 404)
    assert_error(
        cast.ops.client.put("/api/plugins/rollouts/999999/plan", {"stages": STAGES}, format="json"), 404
    )
    assert_error(cast.ops.post("rollouts/999999/plan/skip"), 404)
    assert not RolloutPlan.objects.exists()
    assert percentage_of(rollout) == 5


def test_simulate_resolves_before_rollouts_by_plugin_name_and_writes_nothing(cast):
    for i in range(50):
        UpgradeLogFactory(merchant_id=uuid.UUID(int=i + 1), plugin_name="woocommerce", to_version="3.9.0")
    audit_before = AuditEntry.objects.count()
    body = {"plugin_name": "woocommerce", "version": "4.0.0", "percentage": 50, "strategy": "random"}
    for caller in (cast.ops, cast.viewer, cast.admin):
        response = caller.post("rollouts/simulate", body)
        assert response.status_code == 200, response.content
        result = response.json()
        assert result["dry_run"] is True and result["known_merchants"] == 50
        assert 10 < result["selected_merchants"] < 40
        assert len(result["sample_merchant_ids"]) == min(20, result["selected_merchants"])
    for outsider in (cast.sira, cast.plugin_a):
        assert_error(outsider.post("rollouts/simulate", body), 403)
    assert_error(cast.ops.post("rollouts/simulate", {**body, "strategy": "geo"}), 400)
    assert_error(cast.ops.post("rollouts/simulate", {**body, "percentage": 100.001}), 400)
    assert AuditEntry.objects.count() == audit_before
    from rollouts.models import Rollout

    assert not Rollout.objects.exists()
    # Like rollouts/auto-check, the route is reserved: GET on it is a JSON 405.
    assert_error(cast.viewer.get("rollouts/simulate"), 405)


def test_the_plans_api_is_in_the_openapi_schema(cast):
    response = cast.anonymous.client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    for path in (
        "/api/plugins/plan-templates",
        "/api/plugins/plan-templates/{slug}",
        "/api/plugins/rollouts/simulate",
        "/api/plugins/rollouts/{rollout_id}/plan",
        "/api/plugins/rollouts/{rollout_id}/plan/hold",
        "/api/plugins/rollouts/{rollout_id}/plan/release",
        "/api/plugins/rollouts/{rollout_id}/plan/skip",
        "/api/plugins/rollouts/{rollout_id}/plan/back",
    ):
        assert path in paths, path
    simulate = paths["/api/plugins/rollouts/simulate"]["post"]["responses"]
    assert "RolloutSimulation" in simulate["200"]["content"]["application/json"]["schema"]["$ref"]
    assert {"400", "401", "403"} <= set(simulate)
    assert "409" in paths["/api/plugins/rollouts/{rollout_id}/plan/skip"]["post"]["responses"]
