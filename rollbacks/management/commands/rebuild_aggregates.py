"""``manage.py rebuild_aggregates [--verify]``: recompute the aggregates from the raw tables.

For restores and for anyone who edited report or rollback rows in psql. ``--verify`` changes
nothing: it recounts, lists every disagreement and exits 1 when there is one.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from rollbacks.aggregates import rebuild_aggregates, verify_aggregates


class Command(BaseCommand):
    help = "Recompute the rollout and rollback aggregates from the raw tables (--verify: only compare)."

    def add_arguments(self, parser):
        parser.add_argument("--verify", action="store_true", help="Compare with a recount; change nothing.")

    def handle(self, *args, verify: bool = False, **options):
        started = time.perf_counter()
        try:
            if verify:
                differences = verify_aggregates()
            else:
                written = rebuild_aggregates()
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from exc
        elapsed = time.perf_counter() - started
        if not verify:
            rows = ", ".join(f"{table} {count}" for table, count in written.items())
            self.stdout.write(f"aggregates rebuilt in {elapsed:.1f} s ({rows})")
            return
        for difference in differences[:50]:
            self.stdout.write(str(difference))
        if differences:
            more = " (first 50 shown)" if len(differences) > 50 else ""
            raise CommandError(
                f"{len(differences)} aggregate rows differ from a recount{more}; run rebuild_aggregates to fix them."
            )
        self.stdout.write(f"aggregates agree with a recount of the raw tables ({elapsed:.1f} s)")
