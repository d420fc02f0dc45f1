"""Creating and revoking API credentials (audited)."""

from __future__ import annotations

from uuid import UUID

from django.db import IntegrityError, transaction

from .choices import Role
from .models import ApiClient, AuditEntry


def create_api_client(*, name: str, role: str, merchant_id: UUID | None, actor: str) -> tuple[ApiClient, str]:
    """Create a credential; returns it with its clear token (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("NAME must be 1–100 characters.")
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    if role == Role.PLUGIN and merchant_id is None:
        raise ValueError("The plugin role requires --merchant-id.")
    if role != Role.PLUGIN and merchant_id is not None:
        raise ValueError("Only plugin credentials are bound to a merchant; drop --merchant-id.")
    client = ApiClient(name=name, role=role, merchant_id=merchant_id, created_by=actor)
    token = client.set_new_token()
    try:
        with transaction.atomic():
            client.save()
            AuditEntry.record(
                actor=actor,
                action="credential.created",
                obj=client,
                after={
                    "name": name,
                    "role": role,
                    "merchant_id": str(merchant_id) if merchant_id else None,
                },
            )
    except IntegrityError as exc:
        raise ValueError(f"An API client named {name!r} already exists.") from exc
    return client, token
