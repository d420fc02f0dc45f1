"""OPTIONS follows the roles of the route's GET (refused where a route has no GET), never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["releases", "rollouts", "backups", "rollback/history", "rollouts/woocommerce"]
)
def test_options_on_a_readable_route_answers_for_those_who_may_read_it(cast, path):
    assert cast.viewer.client.options(f"/api/plugins/{path}").status_code == 200
    assert cast.anonymous.client.options(f"/api/plugins/{path}").status_code == 401


@pytest.mark.parametrize("path", ["backup", "upgrades", "rollouts/auto-check", "rollback/initiate"])
def test_options_on_a_write_only_route_is_refused(cast, path):
    response = cast.ops.client.options(f"/api/plugins/{path}")
    assert response.status_code == 403 and response.json()["ok"] is False
