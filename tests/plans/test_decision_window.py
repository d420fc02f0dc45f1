"""should-upgrade outside a rollout's windows: false, with a reason and retry_after; no SQL when warm."""

from __future__ import annotations

from datetime import timedelta

import pytest

from plans import services
from rollouts.cohort import decide
from tests.conftest import MERCHANT_A
from tests.factories import ReleaseFactory

from .conftest import start_rollout

pytestmark = pytest.mark.django_db

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NIGHTS = [{"days": EVERY_DAY, "start": "22:00", "end": "06:00"}]


def ask(**extra) -> dict:
    return decide(
        plugin_name="woocommerce",
        merchant_id=MERCHANT_A,
        current_version="3.9.0",
        country=None,
        tier=None,
        **extra,
    )


@pytest.fixture
def night_rollout(clock):
    ReleaseFactory(plugin_name="woocommerce", version="4.0.0")
    rollout = start_rollout(percentage="100")
    services.attach_plan(
        rollout.pk,
        actor="user:olivia",
        stages=[{"percentage": 100}],
        timezone_name="Africa/Dakar",
        windows=NIGHTS,
    )
    return rollout


def test_outside_the_window_the_answer_is_no_with_a_reason_and_when_to_ask_again(night_rollout, clock, cast):
    answer = ask()  # Monday 10:00 in Dakar
    assert answer["should_upgrade"] is False
    assert answer["retry_after"] == 12 * 3600
    assert "Outside this rollout's upgrade windows" in answer["reason"]
    assert "22:00 Africa/Dakar" in answer["reason"]
    assert answer["rollout_id"] == night_rollout.pk and answer["release"] is None

    response = cast.plugin_a.get(
        "rollouts/woocommerce/should-upgrade", {"merchant_id": str(MERCHANT_A), "current_version": "3.9.0"}
    )
    assert response.status_code == 200
    assert response.json()["should_upgrade"] is False and response.json()["retry_after"] == 12 * 3600

    clock.shift(timedelta(hours=12))  # 22:00: the window opens
    from rollouts.cohort import clear_local_cache

    clear_local_cache()
    answer = ask()
    assert answer["should_upgrade"] is True and "retry_after" not in answer
    assert answer["release"]["sha256"] == "b" * 64


def test_a_warm_decision_runs_no_sql_even_with_a_window(night_rollout, django_assert_num_queries):
    ask()  # fills the caches
    with django_assert_num_queries(0):
        for _ in range(5):
            assert ask()["retry_after"] == 12 * 3600


def test_changing_the_window_is_seen_at_once(night_rollout, clock, django_capture_on_commit_callbacks):
    assert ask()["should_upgrade"] is False
    # The cached decision data is dropped when the change commits.
    with django_capture_on_commit_callbacks(execute=True):
        services.attach_plan(night_rollout.pk, actor="user:olivia", stages=[{"percentage": 100}], windows=[])
    assert ask()["should_upgrade"] is True
    with django_capture_on_commit_callbacks(execute=True):
        services.attach_plan(
            night_rollout.pk,
            actor="user:olivia",
            stages=[{"percentage": 100}],
            timezone_name="Africa/Dakar",
            windows=NIGHTS,
        )
    assert ask()["should_upgrade"] is False
    with django_capture_on_commit_callbacks(execute=True):
        services.detach_plan(night_rollout.pk, actor="user:olivia")
    assert ask()["should_upgrade"] is True


def test_a_rollout_without_a_plan_answers_as_before(clock):
    ReleaseFactory(plugin_name="woocommerce", version="4.0.0")
    start_rollout(percentage="100")
    answer = ask()
    assert answer["should_upgrade"] is True and "retry_after" not in answer
