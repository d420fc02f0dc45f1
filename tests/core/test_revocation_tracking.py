"""The revocation counter: read from Redis once per process, kept true by Redis's invalidations."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from molam_upgrades import credentials


@pytest.fixture
def tracked(settings):
    settings.API_REVOCATION_CHECK_SECONDS = 0
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        pytest.fail("needs REDIS_URL: the revocation counter lives in Redis")
    credentials._watch.forget()
    yield backend
    credentials._watch.forget()


@pytest.fixture
def commands_sent(monkeypatch):
    """Counts the commands this process sends to Redis (any connection)."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


def _incr_in_another_process(full_key: str) -> None:
    code = f"import redis; redis.Redis.from_url({settings.REDIS_URL!r}).incr({full_key!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_a_change_in_another_process_is_seen_on_the_next_read_without_a_round_trip_per_read(
    tracked, commands_sent
):
    credentials.credentials_generation()  # sets the counter when absent, then tracks it
    first = credentials.credentials_generation()
    assert first is not None
    commands_sent.clear()
    assert {credentials.credentials_generation() for _ in range(500)} == {first}
    assert commands_sent == []  # 500 checks, no command sent to Redis

    _incr_in_another_process(tracked.make_and_validate_key(credentials.GENERATION_KEY))
    # The other process has exited: Redis pushed the invalidation before answering its INCR.
    assert credentials.credentials_generation() == first + 1


def test_a_lost_tracking_connection_means_reading_again_not_trusting_the_old_value(tracked):
    credentials.credentials_generation()
    first = credentials.credentials_generation()
    conn = credentials._watch._conn
    host, port = conn._sock.getsockname()[:2]
    admin = redis.Redis.from_url(settings.REDIS_URL)
    admin.client_kill(f"{host}:{port}")
    # Killed, the connection can no longer deliver an invalidation: the counter is read anew.
    admin.incr(tracked.make_and_validate_key(credentials.GENERATION_KEY))
    assert credentials.credentials_generation() == first + 1


def test_a_flushed_cache_is_not_read_as_the_old_counter(tracked):
    tracked.set(credentials.GENERATION_KEY, 5, timeout=None)
    assert credentials.credentials_generation() == 5
    tracked.clear()  # FLUSHDB: Redis invalidates every tracked key
    # Redis writes the invalidation in the turn that ran FLUSHDB, the FLUSHDB answer possibly
    # first: a later command's answer is what proves it was written (as after a revocation).
    redis.Redis.from_url(settings.REDIS_URL).ping()
    assert credentials.credentials_generation() == 1  # set afresh, not the 5 held before
