from __future__ import annotations

from django.core.management.base import BaseCommand

from backups.services import expire_backups


class Command(BaseCommand):
    help = "Mark backups past their retention (expires_at) as expired. Safe to run at any time."

    def handle(self, *args, **options):
        self.stdout.write(f"Expired {expire_backups()} backup(s).")
