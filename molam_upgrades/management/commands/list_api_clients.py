"""``list_api_clients [--role ROLE] [--revoked]``: credentials, never their tokens."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from molam_upgrades.choices import Role
from molam_upgrades.models import ApiClient


class Command(BaseCommand):
    help = "List API credentials: name, role, merchant, state, token hint, last use."

    def add_arguments(self, parser):
        parser.add_argument("--role", choices=Role.values)
        parser.add_argument("--revoked", action="store_true", help="Only revoked credentials.")

    def handle(self, *args, role: str | None, revoked: bool, **options):
        clients = ApiClient.objects.order_by("name")
        if role:
            clients = clients.filter(role=role)
        if revoked:
            clients = clients.filter(is_active=False)
        header = f"{'NAME':<24} {'ROLE':<12} {'MERCHANT':<36} {'STATE':<8} {'HINT':<10} LAST USED"
        self.stdout.write(header)
        for client in clients:
            last = client.last_used_at.strftime("%Y-%m-%d %H:%M") if client.last_used_at else "never"
            self.stdout.write(
                f"{client.name:<24} {client.role:<12} {str(client.merchant_id or '-'):<36} "
                f"{'active' if client.is_active else 'revoked':<8} {client.token_hint:<10} {last}"
            )
