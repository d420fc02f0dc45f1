"""Cohort decisions: which merchant gets which version, deterministically.

``bucket = int(sha256("<plugin>:<version>:<merchant uuid lower-case>")[:8], 16) % 10000`` and a
merchant is in the cohort iff ``bucket < percentage * 100`` (0.01 % granularity). The bucket
does not depend on the percentage, so raising it keeps every merchant already selected
(monotonic), and the version is part of the hash, so each version gets a fresh cohort. The
PostgreSQL function ``should_merchant_upgrade()`` computes the same thing.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from uuid import UUID

from django.core.cache import cache
from django.utils import timezone

from molam_upgrades.versions import Version

from .choices import OPEN_STATES, RolloutStatus, RolloutStrategy
from .models import Release, Rollout

BUCKETS = 10_000
# Two cache levels keep the hot path free of queries: a shared entry in Redis, invalidated on
# every change, and a per-process copy kept LOCAL_TTL_S so most requests touch neither Redis nor
# PostgreSQL. A change is visible at once in the process that made it and within LOCAL_TTL_S
# everywhere else; SHARED_TTL_S bounds staleness for changes made outside the app (psql).
SHARED_TTL_S = 15
LOCAL_TTL_S = 1.0
_NONE = "none"
_local: dict[str, tuple[float, OpenRollout | None]] = {}
# Apps built on rollouts add conditions to a decision (plans: upgrade windows). A loader maps a
# rollout id to None or an object with ``closed_answer(now) -> (reason, retry_after) | None``;
# it runs on a cache miss only and its result travels in the cached decision data, so the warm
# path stays free of queries.
_gate_loaders: list = []


def register_gate_loader(loader) -> None:
    if loader not in _gate_loaders:
        _gate_loaders.append(loader)


def cache_key(plugin_name: str) -> str:
    return f"rollout:open:{plugin_name}"


def bucket_for(plugin_name: str, version: str, merchant_id: UUID | str) -> int:
    key = f"{plugin_name}:{version}:{str(merchant_id).lower()}".encode()
    return int(hashlib.sha256(key).hexdigest()[:8], 16) % BUCKETS


def selected(bucket: int, percentage: Decimal) -> bool:
    return bucket < percentage * 100


def as_number(value: Decimal) -> int | float:
    """A percentage for JSON: 25 rather than 25.0, 0.5 stays 0.5."""
    return int(value) if value == value.to_integral_value() else float(value)


def format_percentage(value: Decimal) -> str:
    """25.00 → '25', 0.50 → '0.5'."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class OpenRollout:
    """What a decision needs to know about a plugin's active or paused rollout."""

    id: int
    plugin_name: str
    version: str
    percentage: Decimal
    strategy: str
    status: str
    target_countries: frozenset[str]
    target_tiers: frozenset[str]
    release: dict | None
    gates: tuple = ()  # from the registered gate loaders (e.g. a plan's windows)

    @classmethod
    def from_model(cls, rollout: Rollout, release: Release | None) -> OpenRollout:
        return cls(
            id=rollout.pk,
            plugin_name=rollout.plugin_name,
            version=rollout.version,
            percentage=Decimal(rollout.rollout_percentage),
            strategy=rollout.rollout_strategy,
            status=rollout.status,
            target_countries=frozenset(rollout.target_countries or ()),
            target_tiers=frozenset(rollout.target_tiers or ()),
            release=(
                {
                    "download_url": release.download_url,
                    "sha256": release.sha256,
                    "signature": release.signature or None,
                }
                if release
                else None
            ),
        )


def load_open_rollout(plugin_name: str) -> OpenRollout | None:
    """The plugin's active or paused rollout with its release (2 queries on a full miss)."""
    now = time.monotonic()
    local = _local.get(plugin_name)
    if local is not None and local[0] > now:
        return local[1]
    snapshot = _load_shared(plugin_name)
    if len(_local) > 1000:
        _local.clear()
    _local[plugin_name] = (now + LOCAL_TTL_S, snapshot)
    return snapshot


def _load_shared(plugin_name: str) -> OpenRollout | None:
    key = cache_key(plugin_name)
    cached = cache.get(key)
    if cached is not None:
        return None if cached == _NONE else cached
    rollout = Rollout.objects.filter(plugin_name=plugin_name, status__in=OPEN_STATES).first()
    snapshot = None
    if rollout is not None:
        release = Release.objects.filter(plugin_name=plugin_name, version=rollout.version).first()
        snapshot = OpenRollout.from_model(rollout, release)
        gates = tuple(gate for gate in (load(rollout.pk) for load in _gate_loaders) if gate is not None)
        if gates:
            snapshot = replace(snapshot, gates=gates)
    cache.set(key, snapshot if snapshot is not None else _NONE, SHARED_TTL_S)
    return snapshot


# The rollout a new upgrade report belongs to, and whether its merchant is in the cohort: one row
# (rollout_id, in_cohort), or none when the plugin's newest open rollout (``Meta.ordering``) is of
# another version or started after the report (the report then counts nowhere).
#
# Read from the database, not the decision cache: a report must be judged against the rollout as
# it is now. Only the bucket is checked (``percentage * 100 > bucket`` is :func:`selected`): a
# report carries no country or tier, so a geo or tier rollout counts every merchant of its
# percentage that reports. SQL rather than the ORM, built once: it runs for every report.
#
# A template: ``{bucket}``, ``{plugin_name}``, ``{version}`` and ``{reported_at}`` are filled with
# placeholders for one report or with columns for many (``rollbacks.aggregates``); the open
# states are parameters (``OPEN_STATES``).
REPORT_COHORT_TEMPLATE = (
    "SELECT r.id AS rollout_id, r.rollout_percentage * 100 > {bucket} AS in_cohort FROM ("
    f"SELECT id, version, rollout_percentage, created_at FROM {Rollout._meta.db_table} "
    f"WHERE plugin_name = {{plugin_name}} AND status IN ({', '.join(['%s'] * len(OPEN_STATES))}) "
    "ORDER BY created_at DESC, id DESC LIMIT 1) r WHERE r.version = {version} AND r.created_at <= {reported_at}"
)


def invalidate(plugin_name: str) -> None:
    """Drop both cache levels for a plugin (called after a change commits)."""
    _local.pop(plugin_name, None)
    cache.delete(cache_key(plugin_name))


def clear_local_cache() -> None:
    _local.clear()


def in_cohort(
    rollout: OpenRollout, merchant_id: UUID, country: str | None, tier: str | None
) -> tuple[bool, str, int]:
    """Targeting first (geo / tier), then the percentage. Returns (selected, reason, bucket)."""
    bucket = bucket_for(rollout.plugin_name, rollout.version, merchant_id)
    pct = format_percentage(rollout.percentage)
    if rollout.strategy == RolloutStrategy.GEO and (country or "") not in rollout.target_countries:
        targets = ", ".join(sorted(rollout.target_countries))
        return (
            False,
            f"Country {country or '(none given)'} is not targeted by this rollout ({targets})",
            bucket,
        )
    if rollout.strategy == RolloutStrategy.MERCHANT_TIER and (tier or "") not in rollout.target_tiers:
        targets = ", ".join(sorted(rollout.target_tiers))
        return (
            False,
            f"Merchant tier {tier or '(none given)'} is not targeted by this rollout ({targets})",
            bucket,
        )
    if not selected(bucket, rollout.percentage):
        return False, f"Merchant not in the {pct}% rollout cohort (bucket {bucket})", bucket
    return True, f"Merchant selected for {pct}% rollout ({rollout.strategy} strategy)", bucket


def decide(
    *,
    plugin_name: str,
    merchant_id: UUID,
    current_version: str | None,
    country: str | None,
    tier: str | None,
) -> dict:
    """The should-upgrade answer for one merchant (seed keys)."""
    rollout = load_open_rollout(plugin_name)
    answer = {
        "should_upgrade": False,
        "reason": "",
        "rollout_id": None,
        "rollout_percentage": None,
        "rollout_strategy": None,
        "version": None,
        "bucket": None,
        "release": None,
    }
    if rollout is None:
        answer["reason"] = f"No active rollout for {plugin_name}"
        return answer
    answer.update(
        rollout_id=rollout.id,
        rollout_percentage=as_number(rollout.percentage),
        rollout_strategy=rollout.strategy,
        version=rollout.version,
    )
    if rollout.status == RolloutStatus.PAUSED:
        answer["reason"] = f"Rollout of {plugin_name} {rollout.version} is paused"
        return answer
    if current_version is not None and Version(current_version) >= Version(rollout.version):
        answer["reason"] = f"Already on {current_version}, which is {rollout.version} or newer"
        return answer
    for gate in getattr(rollout, "gates", ()):  # getattr: entries cached before gates existed
        closed = gate.closed_answer(timezone.now())
        if closed is not None:  # the seed's keys, plus when to ask again
            answer["reason"], answer["retry_after"] = closed
            return answer
    chosen, reason, bucket = in_cohort(rollout, merchant_id, country, tier)
    answer["bucket"] = bucket
    answer["reason"] = reason
    if chosen and rollout.release is None:
        # Never send a merchant to a version we cannot verify (no checksum to check against).
        answer["reason"] = f"{reason}, but release {plugin_name} {rollout.version} is not registered yet"
        return answer
    if chosen:
        answer["should_upgrade"] = True
        answer["release"] = rollout.release
    return answer
