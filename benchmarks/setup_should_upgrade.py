"""Prepares the should-upgrade benchmark: a 10 % rollout with a release and an ops_viewer token.

Prints the token on the last line. Idempotent: each run replaces the benchmark rollout and token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")

import django  # noqa: E402

django.setup()

from molam_upgrades.credentials import create_api_client  # noqa: E402
from molam_upgrades.models import ApiClient  # noqa: E402
from rollouts.choices import OPEN_STATES  # noqa: E402
from rollouts.models import Release, Rollout  # noqa: E402
from rollouts.services import complete_rollout, create_rollout, register_release  # noqa: E402

for rollout in Rollout.objects.filter(plugin_name="woocommerce", status__in=OPEN_STATES):
    complete_rollout(rollout.pk, actor="bench")
if not Release.objects.filter(plugin_name="woocommerce", version="4.0.0").exists():
    register_release(
        actor="bench",
        plugin_name="woocommerce",
        version="4.0.0",
        download_url="https://releases.molam.example/woocommerce-4.0.0.zip",
        sha256="ab" * 32,
    )
create_rollout(
    actor="bench",
    plugin_name="woocommerce",
    version="4.0.0",
    rollout_percentage=10,
    rollout_strategy="random",
)
ApiClient.objects.filter(name="bench-viewer").update(
    name=f"bench-viewer-retired-{ApiClient.objects.count()}", is_active=False
)
_, token = create_api_client(name="bench-viewer", role="ops_viewer", merchant_id=None, actor="bench")
print(token)
