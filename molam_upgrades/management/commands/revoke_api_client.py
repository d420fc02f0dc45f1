"""``revoke_api_client NAME [--reason TEXT]``: the token stops working in every process at once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from molam_upgrades.credentials import get_api_client, revoke_api_client
from molam_upgrades.exceptions import DomainError


class Command(BaseCommand):
    help = "Revoke an API credential (audited). Every process refuses its token from the next request."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--reason", default="")

    def handle(self, *args, name: str, reason: str, **options):
        try:
            client = revoke_api_client(get_api_client(name), actor="cli", reason=reason)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Revoked API client '{client.name}' ({client.role}).")
