"""Prepares the report-ingestion benchmark: one rollout and ``CREDENTIALS`` plugin credentials.

Writes ``<token> <merchant_id>`` per line to the file named on the command line. Run on a fresh
database (``benchmarks/ingest.sh`` recreates it).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")

import django  # noqa: E402

django.setup()

from molam_upgrades.credentials import create_api_client  # noqa: E402
from rollouts.services import create_rollout  # noqa: E402

CREDENTIALS = int(os.environ.get("CREDENTIALS", 200))

# 100 %: every merchant is in the cohort, so every report counts towards the rollout.
rollout = create_rollout(
    actor="bench",
    plugin_name="woocommerce",
    version="4.0.0",
    rollout_percentage=100,
    rollout_strategy="random",
)
lines = []
for i in range(CREDENTIALS):
    merchant_id = uuid.uuid4()
    _, token = create_api_client(
        name=f"bench-plugin-{i}", role="plugin", merchant_id=merchant_id, actor="bench"
    )
    lines.append(f"{token} {merchant_id}")
Path(sys.argv[1]).write_text("\n".join(lines) + "\n")
print(rollout.pk)
