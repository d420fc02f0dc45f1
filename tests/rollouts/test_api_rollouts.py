from __future__ import annotations

import pytest

from molam_upgrades.models import AuditEntry
from rollouts.models import Rollout
from tests.conftest import MERCHANT_A, assert_error
from tests.factories import RolloutFactory, UpgradeLogFactory

pytestmark = pytest.mark.django_db

SEED = {
    "plugin_name": "woocommerce",
    "version": "4.0.0",
    "percentage": 5,
    "strategy": "random",
    "error_threshold": 0.03,
}


def test_create_rollout_with_the_seed_request(cast):
    response = cast.ops.post("rollouts", SEED)
    assert response.status_code == 201
    body = response.json()
    assert body["ok"] is True
    rollout = body["rollout"]
    assert {
        k: rollout[k] for k in ("plugin_name", "version", "rollout_percentage", "status", "rollout_strategy")
    } == {
        "plugin_name": "woocommerce",
        "version": "4.0.0",
        "rollout_percentage": 5,
        "status": "active",
        "rollout_strategy": "random",
    }
    saved = Rollout.objects.get(pk=rollout["id"])
    assert saved.created_by == "client:ops" and saved.min_sample_size == 10 and saved.sira_monitoring is True
    entry = AuditEntry.objects.get(action="rollout.created")
    assert (
        entry.actor == "client:ops"
        and entry.object_id == str(saved.pk)
        and entry.after["rollout_percentage"] == "5.00"
    )


def test_a_second_open_rollout_for_the_plugin_is_a_conflict(cast):
    cast.ops.post("rollouts", SEED)
    assert_error(cast.ops.post("rollouts", {**SEED, "version": "4.1.0"}), 409)
    assert Rollout.objects.count() == 1


def test_after_completion_a_new_rollout_can_start(cast):
    rollout_id = cast.ops.post("rollouts", SEED).json()["rollout"]["id"]
    cast.ops.patch(f"rollouts/{rollout_id}", {"status": "completed"})
    assert cast.ops.post("rollouts", {**SEED, "version": "4.1.0"}).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"percentage": 101}, "percentage"),
        ({"percentage": -1}, "percentage"),
        ({"percentage": "25"}, "percentage"),
        ({"percentage": 12.345}, "percentage"),
        ({"strategy": "everyone"}, "strategy"),
        ({"strategy": "geo"}, "target_countries"),
        ({"strategy": "geo", "target_countries": []}, "target_countries"),
        ({"strategy": "geo", "target_countries": ["usa"]}, "target_countries"),
        ({"strategy": "geo", "target_countries": ["us"]}, "target_countries"),
        ({"strategy": "merchant_tier"}, "target_tiers"),
        ({"target_countries": ["US"]}, "target_countries"),
        ({"error_threshold": 0}, "error_threshold"),
        ({"error_threshold": 1.5}, "error_threshold"),
        ({"version": "four"}, "version"),
        ({"plugin_name": "Woo Commerce"}, "plugin_name"),
        ({"min_sample_size": 0}, "min_sample_size"),
        ({"sira_monitoring": "yes"}, "sira_monitoring"),
    ],
)
def test_bad_rollouts_are_rejected(cast, change, field):
    body = assert_error(cast.ops.post("rollouts", {**SEED, **change}), 400)
    assert field in body["details"], body
    assert not Rollout.objects.exists()


def test_half_percent_canary_is_accepted(cast):
    response = cast.ops.post("rollouts", {**SEED, "percentage": 0.5})
    assert response.status_code == 201
    assert response.json()["rollout"]["rollout_percentage"] == 0.5


def test_seed_rollout_flow_with_audit_trail(cast):
    """5 % → 25 % → 50 % → 100 % → completed, each step audited."""
    rollout_id = cast.ops.post("rollouts", SEED).json()["rollout"]["id"]
    for pct in (25, 50, 100):
        response = cast.ops.patch(f"rollouts/{rollout_id}", {"percentage": pct})
        assert response.status_code == 200 and response.json()["rollout"]["rollout_percentage"] == pct
    done = cast.admin.patch(f"rollouts/{rollout_id}", {"status": "completed"})
    assert done.json()["rollout"]["status"] == "completed"
    rollout = Rollout.objects.get(pk=rollout_id)
    assert rollout.completed_at is not None
    actions = list(
        AuditEntry.objects.filter(object_id=str(rollout_id)).order_by("id").values_list("action", "actor")
    )
    assert actions == [
        ("rollout.created", "client:ops"),
        ("rollout.percentage_changed", "client:ops"),
        ("rollout.percentage_changed", "client:ops"),
        ("rollout.percentage_changed", "client:ops"),
        ("rollout.completed", "client:admin"),
    ]
    changed = AuditEntry.objects.filter(action="rollout.percentage_changed").order_by("id").first()
    assert (changed.before, changed.after) == (
        {"rollout_percentage": "5.00"},
        {"rollout_percentage": "25.00"},
    )


@pytest.mark.parametrize(
    ("start", "move", "allowed"),
    [
        ("active", "paused", True),
        ("paused", "active", True),
        ("active", "completed", True),
        ("paused", "rolled_back", True),
        ("active", "active", False),
        ("completed", "active", False),
        ("completed", "paused", False),
        ("rolled_back", "active", False),
        ("rolled_back", "completed", False),
    ],
)
def test_status_moves(cast, start, move, allowed):
    rollout = RolloutFactory(status=start)
    response = cast.ops.patch(f"rollouts/{rollout.pk}", {"status": move})
    if allowed:
        assert response.status_code == 200
        assert Rollout.objects.get(pk=rollout.pk).status == move
    else:
        assert_error(response, 409)
        assert Rollout.objects.get(pk=rollout.pk).status == start


def test_percentage_of_a_finished_rollout_cannot_change(cast):
    rollout = RolloutFactory(status="completed")
    assert_error(cast.ops.patch(f"rollouts/{rollout.pk}", {"percentage": 50}), 409)


def test_patch_needs_percentage_or_status(cast):
    rollout = RolloutFactory()
    assert_error(cast.ops.patch(f"rollouts/{rollout.pk}", {}), 400)
    assert_error(cast.ops.patch(f"rollouts/{rollout.pk}", {"status": "exploded"}), 400)


def test_patch_unknown_rollout_is_404(cast):
    assert_error(cast.ops.patch("rollouts/999999", {"percentage": 5}), 404)


def test_pause_with_reason_and_resume(cast):
    rollout = RolloutFactory()
    paused = cast.ops.post(f"rollouts/{rollout.pk}/pause", {"reason": "Checkout latency up"})
    assert paused.status_code == 200
    data = paused.json()["rollout"]
    assert (
        data["status"] == "paused"
        and data["paused_reason"] == "Checkout latency up"
        and data["paused_by"] == "client:ops"
    )
    assert data["auto_paused"] is False
    assert_error(cast.ops.post(f"rollouts/{rollout.pk}/pause", {}), 409)
    resumed = cast.ops.post(f"rollouts/{rollout.pk}/resume")
    assert (
        resumed.json()["rollout"]["status"] == "active" and resumed.json()["rollout"]["paused_reason"] is None
    )
    assert_error(cast.ops.post(f"rollouts/{rollout.pk}/resume"), 409)
    assert list(
        AuditEntry.objects.filter(object_id=str(rollout.pk)).order_by("id").values_list("action", flat=True)
    ) == [
        "rollout.paused",
        "rollout.resumed",
    ]


def test_pause_without_body(cast):
    rollout = RolloutFactory()
    response = cast.ops.client.post(f"/api/plugins/rollouts/{rollout.pk}/pause")
    assert response.status_code == 200


def test_get_rollout_by_plugin_with_metrics(cast):
    rollout = RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=100)
    for status in ["success"] * 8 + ["failed", "rolled_back"]:
        UpgradeLogFactory(plugin_name="woocommerce", to_version="4.0.0", status=status)
    UpgradeLogFactory(plugin_name="woocommerce", to_version="4.0.0", status="success", merchant_id=MERCHANT_A)
    UpgradeLogFactory(plugin_name="woocommerce", to_version="4.0.0", status="success", merchant_id=MERCHANT_A)
    UpgradeLogFactory(plugin_name="woocommerce", to_version="3.9.0", status="failed")  # other version
    body = cast.viewer.get("rollouts/woocommerce").json()["rollout"]
    assert body["id"] == rollout.pk
    assert body["merchants_upgraded"] == 9  # merchant A counted once
    assert body["merchants_reporting"] == 11
    assert body["merchants_failed"] == 2
    assert body["upgrades_total"] == 12  # reports, merchant A's twice
    assert body["reports_outside_cohort"] == 0
    assert body["error_rate"] == round(2 / 11, 4)  # merchants, not requests
    assert body["wilson_gate"] is False
    assert 0 < body["error_rate_lower_bound"] < body["error_rate"]


def test_get_rollout_of_plugin_without_one_is_404(cast):
    RolloutFactory(plugin_name="woocommerce", status="completed")
    assert_error(cast.viewer.get("rollouts/woocommerce"), 404)


def test_list_rollouts_with_filters_and_metrics(cast, django_assert_max_num_queries):
    RolloutFactory(plugin_name="woocommerce", status="completed")
    RolloutFactory(plugin_name="woocommerce", status="active", version="4.1.0")
    RolloutFactory(plugin_name="prestashop", status="paused")
    assert cast.viewer.get("rollouts").json()["total"] == 3
    assert cast.viewer.get("rollouts", {"status": "active"}).json()["total"] == 1
    assert cast.viewer.get("rollouts", {"plugin_name": "woocommerce"}).json()["total"] == 2
    cast.sira.get("rollouts")  # resolve the token once
    for _ in range(10):
        RolloutFactory(status="completed")
    with django_assert_max_num_queries(3):  # count, the page, its error rates: whatever the history
        body = cast.sira.get("rollouts", {"include_metrics": "true"}).json()
    assert all("error_rate" in r and "merchants_upgraded" in r for r in body["rollouts"])
    assert "error_rate" not in cast.viewer.get("rollouts").json()["rollouts"][0]
    assert_error(cast.viewer.get("rollouts", {"status": "sleeping"}), 400)
    assert_error(cast.viewer.get("rollouts", {"include_metrics": "perhaps"}), 400)


ROLE_CASES = [
    ("create", "post", "rollouts", SEED, {"pay_admin", "ops_plugins"}),
    ("list", "get", "rollouts", None, {"pay_admin", "ops_plugins", "ops_viewer", "sira"}),
    ("read", "get", "rollouts/existing", None, {"pay_admin", "ops_plugins", "ops_viewer", "sira"}),
    ("patch", "patch", "rollouts/{id}", {"percentage": 20}, {"pay_admin", "ops_plugins"}),
    ("pause", "post", "rollouts/{id}/pause", {}, {"pay_admin", "ops_plugins"}),
    ("auto-check", "post", "rollouts/auto-check", {}, {"pay_admin", "ops_plugins", "sira"}),
    ("releases", "get", "releases", None, {"pay_admin", "ops_plugins", "ops_viewer"}),
    (
        "register release",
        "post",
        "releases",
        {
            "plugin_name": "woocommerce",
            "version": "9.9.9",
            "download_url": "https://r.example/w.zip",
            "sha256": "c" * 64,
        },
        {"pay_admin", "ops_plugins"},
    ),
]


@pytest.mark.parametrize("case", ROLE_CASES, ids=[c[0] for c in ROLE_CASES])
@pytest.mark.parametrize("actor", ["pay_admin", "ops_plugins", "ops_viewer", "sira", "plugin_a", "anonymous"])
def test_rollout_role_matrix(cast, case, actor):
    _, method, path, body, allowed = case
    rollout = RolloutFactory(plugin_name="existing")
    url = path.format(id=rollout.pk)
    api = cast.all()[actor]
    response = getattr(api, method)(url, body) if body is not None else getattr(api, method)(url)
    if actor in allowed:
        assert response.status_code in (200, 201), (actor, response.content[:300])
    else:
        assert response.status_code == (401 if actor == "anonymous" else 403), (actor, response.status_code)
