"""``create_api_client NAME --role ROLE [--merchant-id UUID]``: prints the token last, alone."""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError

from molam_upgrades.choices import Role
from molam_upgrades.credentials import create_api_client
from molam_upgrades.exceptions import DomainError


class Command(BaseCommand):
    help = "Create an API credential. The token is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--merchant-id", dest="merchant_id")

    def handle(self, *args, name: str, role: str, merchant_id: str | None, **options):
        merchant = None
        if merchant_id:
            try:
                merchant = uuid.UUID(merchant_id)
            except ValueError as exc:
                raise CommandError(f"--merchant-id must be a UUID, got {merchant_id!r}") from exc
        try:
            client, token = create_api_client(name=name, role=role, merchant_id=merchant, actor="cli")
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        scope = f" for merchant {client.merchant_id}" if client.merchant_id else ""
        self.stdout.write(f"Created API client '{client.name}' with role {client.role}{scope}.")
        self.stdout.write("Store this token now; it cannot be shown again:")
        self.stdout.write(token)
