"""Bearer-token authentication and role resolution for API clients and dashboard users."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from .choices import Role
from .models import ApiClient, hash_token

# token hash -> (expires_at monotonic, credentials generation, ApiClient). The should-upgrade
# endpoint is called by every merchant's plugin; resolving a token must not cost a query on each
# call. An entry is trusted only while the shared credentials generation is unchanged (a
# revocation or rotation bumps it: ``credentials._forget_everywhere``).
_token_cache: dict[str, tuple[float, int | None, ApiClient]] = {}
_token_cache_lock = threading.Lock()
_LAST_USED_RESOLUTION_S = 300


def clear_token_cache() -> None:
    with _token_cache_lock:
        _token_cache.clear()


def resolve_token(token: str) -> ApiClient | None:
    """Return the active client for a clear token, or None."""
    from .credentials import credentials_generation

    digest = hash_token(token)
    now = time.monotonic()
    generation = credentials_generation()
    cached = _token_cache.get(digest)
    if cached and cached[0] > now and generation is not None and cached[1] == generation:
        return cached[2]
    client = ApiClient.objects.active().filter(token_hash=digest).first()
    if client is None:
        _token_cache.pop(digest, None)
        return None
    # last_used_at is informative: refresh it at most every few minutes, in one UPDATE.
    if (
        client.last_used_at is None
        or (timezone.now() - client.last_used_at).total_seconds() > _LAST_USED_RESOLUTION_S
    ):
        ApiClient.objects.filter(pk=client.pk).update(last_used_at=timezone.now())
    ttl = settings.API_TOKEN_CACHE_SECONDS
    if ttl > 0:
        with _token_cache_lock:
            if len(_token_cache) > 10_000:
                _token_cache.clear()
            _token_cache[digest] = (now + ttl, generation, client)
    return client


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>``; a bad or revoked token is a 401."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
        try:
            token = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        client = resolve_token(token)
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        return (client, client)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API client or a logged-in person, with their roles."""

    actor: str
    roles: frozenset[str]
    merchant_id: UUID | None = None
    key: str = ""

    @property
    def is_plugin(self) -> bool:
        return Role.PLUGIN in self.roles

    def has_any(self, roles) -> bool:
        return bool(self.roles & set(roles))


def user_roles(user) -> frozenset[str]:
    """Roles of a Django user: its groups named after roles; a superuser is a pay_admin."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    if isinstance(user, ApiClient):
        return frozenset({user.role})
    cached = getattr(user, "_molam_roles", None)
    if cached is None:
        names = set(user.groups.filter(name__in=Role.values).values_list("name", flat=True))
        names.discard(Role.PLUGIN)  # a person is never a merchant plugin
        if user.is_superuser:
            names.add(Role.PAY_ADMIN)
        cached = frozenset(names)
        user._molam_roles = cached
    return cached


def principal_for(request) -> Principal | None:
    user = getattr(request, "user", None)
    if isinstance(user, ApiClient):
        return Principal(
            actor=user.actor,
            roles=frozenset({user.role}),
            merchant_id=user.merchant_id,
            key=f"client:{user.pk}",
        )
    if user is not None and getattr(user, "is_authenticated", False):
        return Principal(actor=f"user:{user.get_username()}", roles=user_roles(user), key=f"user:{user.pk}")
    return None
