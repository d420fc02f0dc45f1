"""``retry_alerts``: deliver alerts nobody is sending (the ``retry_unsent_alerts`` beat job)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from molam_upgrades.housekeeping import deliver_inline, queue_delivery, retry_unsent_alerts


class Command(BaseCommand):
    help = (
        "Deliver alerts that are unsent: never attempted, stuck pending after a lost retry, or failed "
        "less than a day ago (with backoff). Safe to run while the beat job runs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--queue",
            action="store_true",
            help="queue Celery tasks instead of delivering here (the default works with no worker)",
        )

    def handle(self, *args, **options):
        dispatch = queue_delivery if options["queue"] else deliver_inline
        count = retry_unsent_alerts(dispatch=dispatch)
        verb = "Queued" if options["queue"] else "Attempted"
        self.stdout.write(f"{verb} delivery of {count} unsent alert(s).")
