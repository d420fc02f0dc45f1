"""``auto_check``: run the Sira auto-pause check once (same rule as beat, HTTP and SQL)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from rollouts.services import auto_pause_failing_rollouts


class Command(BaseCommand):
    help = "Pause every monitored active rollout whose error rate exceeds its threshold."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        paused = auto_pause_failing_rollouts(source="command", actor="sira")
        result = {"ok": True, "paused_count": len(paused), "paused_rollouts": [p.as_dict() for p in paused]}
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        if not paused:
            self.stdout.write("No rollout exceeds its error threshold.")
        for p in paused:
            self.stdout.write(
                f"Paused rollout {p.rollout_id} ({p.plugin_name} {p.version}): "
                f"error rate {p.error_rate:.4f} > threshold {p.threshold:.4f}"
            )
