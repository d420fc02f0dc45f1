"""API credentials: create, revoke, rotate (each audited), and what every process must forget.

Resolving a token is cached in each process (``auth.resolve_token``); a revocation or rotation
bumps a *generation* counter in the shared cache (Redis in production), which every process
compares on every request: a revoked token stops working everywhere at once, not after the
in-process cache expires.
"""

from __future__ import annotations

import time
from uuid import UUID

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import IntegrityError, transaction

from .choices import Role
from .exceptions import Conflict, NotFound, ValidationError
from .models import ApiClient, AuditEntry

GENERATION_KEY = "api-clients:generation"


_seen: tuple[float, int | None] = (0.0, None)  # (re-read after, generation) in this process


def credentials_generation() -> int | None:
    """The shared revocation counter; None when the shared cache cannot be read.

    Read on every API request (``API_REVOCATION_CHECK_SECONDS`` = 0, the default: a revocation
    is refused everywhere at once), so on Redis it is one plain ``GET`` through a per-process
    client. A deployment that prefers throughput may let each process reuse what it read for
    a few seconds; a revocation then takes at most that long to bite elsewhere.
    """
    global _seen
    window = float(getattr(settings, "API_REVOCATION_CHECK_SECONDS", 0) or 0)
    now = time.monotonic()
    if window > 0 and _seen[0] > now:
        return _seen[1]
    generation = _read_generation()
    if window > 0 and generation is not None:
        _seen = (now + window, generation)
    return generation


def _read_generation() -> int | None:
    try:
        raw = _redis_get(GENERATION_KEY)
        if raw is _NOT_REDIS:
            return int(cache.get_or_set(GENERATION_KEY, 1, timeout=None))
        if raw is None:
            cache.add(GENERATION_KEY, 1, timeout=None)
            return int(cache.get(GENERATION_KEY, 1))
        return int(raw)
    except Exception:  # noqa: BLE001 - an unreadable cache means "cannot trust the local copy"
        return None


_NOT_REDIS = object()


_redis_client = None


def _redis_get(key: str):
    # Django builds a new redis.Redis object on every call (costly); one per process is enough:
    # it only wraps the backend's thread-safe connection pool.
    global _redis_client
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return _NOT_REDIS
    full_key = backend.make_and_validate_key(key)
    if _redis_client is None:
        _redis_client = backend._cache.get_client(full_key)
    return _redis_client.get(full_key)


def _forget_everywhere() -> None:
    """Bump the generation after commit: every process drops its cached tokens on its next request."""

    def bump() -> None:
        global _seen
        _seen = (0.0, None)  # this process sees its own revocation at once, whatever the window
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # not set yet (or evicted): any new value differs from what processes hold
            cache.set(GENERATION_KEY, 2, timeout=None)

    transaction.on_commit(bump)


def create_api_client(*, name: str, role: str, merchant_id: UUID | None, actor: str) -> tuple[ApiClient, str]:
    """Create a credential; returns it with its clear token (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("NAME must be 1–100 characters.")
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    if role == Role.PLUGIN and merchant_id is None:
        raise ValidationError("The plugin role requires --merchant-id.")
    if role != Role.PLUGIN and merchant_id is not None:
        raise ValidationError("Only plugin credentials are bound to a merchant; drop --merchant-id.")
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
        raise Conflict(f"An API client named {name!r} already exists.") from exc
    return client, token


def get_api_client(name: str) -> ApiClient:
    client = ApiClient.objects.filter(name=name).first()
    if client is None:
        raise NotFound(f"No API client named {name!r}.")
    return client


def revoke_api_client(client: ApiClient, *, actor: str, reason: str = "") -> ApiClient:
    """Deactivate a credential; every process refuses its token from the next request (401)."""
    with transaction.atomic():
        locked = ApiClient.objects.select_for_update().get(pk=client.pk)
        if not locked.is_active:
            raise Conflict(f"API client {locked.name!r} is already revoked.")
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        AuditEntry.record(
            actor=actor,
            action="credential.revoked",
            obj=locked,
            before={"is_active": True},
            after={"is_active": False, "reason": reason or None},
        )
        _forget_everywhere()
    return locked


def rotate_api_client(client: ApiClient, *, actor: str) -> tuple[ApiClient, str]:
    """Give a credential a new token (shown once); the old token stops working everywhere at once."""
    with transaction.atomic():
        locked = ApiClient.objects.select_for_update().get(pk=client.pk)
        if not locked.is_active:
            raise Conflict(f"API client {locked.name!r} is revoked; create a new credential instead.")
        old_hint = locked.token_hint
        token = locked.set_new_token()
        locked.save(update_fields=["token_hash", "token_hint"])
        AuditEntry.record(
            actor=actor,
            action="credential.rotated",
            obj=locked,
            before={"token_hint": old_hint},
            after={"token_hint": locked.token_hint},
        )
        _forget_everywhere()
    return locked, token
