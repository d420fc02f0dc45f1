"""``rotate_api_client NAME``: a new token, printed last and alone; the old one stops working at once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from molam_upgrades.credentials import get_api_client, rotate_api_client
from molam_upgrades.exceptions import DomainError


class Command(BaseCommand):
    help = "Give an API credential a new token (audited). The token is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        try:
            client, token = rotate_api_client(get_api_client(name), actor="cli")
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Rotated the token of API client '{client.name}'; the old token no longer works.")
        self.stdout.write("Store this token now; it cannot be shown again:")
        self.stdout.write(token)
