"""API credentials: create, revoke, rotate (each audited), and what every process must forget.

Resolving a token is cached in each process (``auth.resolve_token``); a revocation or rotation
bumps a *generation* counter in the shared cache (Redis in production), which every process
compares on every request, from a copy Redis invalidates (``_GenerationWatch``): a revoked token
stops working everywhere at once, not after the in-process cache expires.
"""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID

import redis
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

    Consulted on every API request. On Redis it costs no round trip: each process reads the
    counter once over its own connection with ``CLIENT TRACKING`` on (``_GenerationWatch``);
    Redis then pushes an invalidation on that connection when the counter changes, and every
    request first polls the socket (one non-blocking syscall) and re-reads if anything
    arrived. With ``API_REVOCATION_CHECK_SECONDS`` > 0 a process reuses what it read for that
    long instead (a revocation then takes at most that long to bite elsewhere).
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
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            return _watch.read(backend)
        return int(cache.get_or_set(GENERATION_KEY, 1, timeout=None))
    except Exception:  # noqa: BLE001 - an unreadable cache means "cannot trust the local copy"
        _watch.forget()
        return None


_TRACK_TIMEOUT_S = 2  # (re)reading the counter never waits longer; then the request checks the database


class _GenerationWatch:
    """This process's copy of the counter, kept true by Redis's server-assisted invalidation.

    One RESP3 connection per process, ``CLIENT TRACKING ON``, ``GET`` of the counter: from then
    on Redis sends an invalidation push on this connection whenever the key changes (INCR,
    SET, eviction, FLUSHDB), written in the same event-loop turn as the change, before Redis
    answers any later command. ``read`` polls the socket without blocking; any byte there (an
    invalidation, or a closed connection) means "re-read": the connection is dropped and a new
    one tracks the key again. redis-py's own client-side cache would do the same but refuses
    servers older than Redis 7.4; CLIENT TRACKING itself exists since Redis 6.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn = None
        self._pid = 0
        self._value: int | None = None

    def read(self, backend: RedisCache) -> int:
        with self._lock:
            conn = self._conn
            if conn is not None and self._pid == os.getpid():
                try:
                    if not conn.can_read(timeout=0):
                        return self._value
                except Exception:  # noqa: BLE001 - a broken connection: track afresh below
                    pass
            return self._track(backend)

    def _track(self, backend: RedisCache) -> int:
        self._drop()
        full_key = backend.make_and_validate_key(GENERATION_KEY)
        pool = redis.ConnectionPool.from_url(
            backend._servers[0],
            protocol=3,
            socket_timeout=_TRACK_TIMEOUT_S,
            socket_connect_timeout=_TRACK_TIMEOUT_S,
        )
        conn = pool.make_connection()
        conn.connect()
        conn.send_command("CLIENT", "TRACKING", "ON")
        conn.read_response()
        conn.send_command("GET", full_key)
        raw = conn.read_response()
        if raw is None:  # not set yet (or evicted): set it, then track it on the next request
            conn.disconnect()
            cache.add(GENERATION_KEY, 1, timeout=None)
            return int(cache.get(GENERATION_KEY, 1))
        self._conn, self._pid, self._value = conn, os.getpid(), int(raw)
        return self._value

    def _drop(self) -> None:
        conn, self._conn, self._value = self._conn, None, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.disconnect()
            except Exception:  # noqa: BLE001 - already gone
                pass

    def forget(self) -> None:
        """Re-read on the next request (this process's own revocation, or a read that failed)."""
        with self._lock:
            self._drop()


_watch = _GenerationWatch()


def _forget_everywhere() -> None:
    """Bump the generation after commit: every process drops its cached tokens on its next request.

    Redis queues the invalidation for every tracking process while executing the INCR; the
    PING after it returns only once Redis has run a later event-loop turn, so by the time the
    revoking call returns, every other process's invalidation has been written to its socket.
    """

    def bump() -> None:
        global _seen
        _seen = (0.0, None)  # this process sees its own revocation at once, whatever the window
        _watch.forget()
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # not set yet (or evicted): any new value differs from what processes hold
            cache.set(GENERATION_KEY, 2, timeout=None)
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            try:
                backend._cache.get_client(None, write=True).ping()
            except Exception:  # noqa: BLE001 - the revocation is committed and counted; only the wait is lost
                pass

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
