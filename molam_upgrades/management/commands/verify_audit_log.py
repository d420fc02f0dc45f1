"""``verify_audit_log``: walk the audit hash chain and report the first broken link."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from molam_upgrades.models import AuditEntry


class Command(BaseCommand):
    help = "Verify the tamper-evident audit log; exits non-zero at the first broken link."

    def handle(self, *args, **options):
        checked, broken = AuditEntry.verify_chain()
        if broken is not None:
            entry = AuditEntry.objects.filter(pk=broken).first()
            what = f" ({entry})" if entry else ""
            raise CommandError(
                f"Audit log chain broken at entry {broken}{what}: "
                f"{checked} entries before it verify; this entry or the one before it was altered or removed."
            )
        self.stdout.write(f"Audit log intact: {checked} entries verified.")
