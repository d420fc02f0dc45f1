"""``purge_idempotency_records``: drop Idempotency-Key records older than 7 days."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from molam_upgrades.housekeeping import purge_idempotency_records


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than 7 days. Safe to run at any time."

    def handle(self, *args, **options):
        self.stdout.write(f"Deleted {purge_idempotency_records()} idempotency record(s).")
