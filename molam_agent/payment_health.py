"""Hourly payment figures from the shop's own orders table, sent to ``POST payment-health``.

The control plane compares shops on a new plugin version with shops still on the old one
(the canary analysis); this module is the shop's side of it. The query comes from the
config, so it fits any schema (``docs/agent.md`` gives the one for WooCommerce's tables)::

    [payment_health]
    query = "SELECT created_at, outcome, latency_ms FROM … WHERE created_at >= :since AND created_at < :until"
    hours = 3        # complete hours re-sent on each run (the latest figures for an hour win)

The query returns one row per payment attempt in ``[:since, :until)`` (UTC, as
``YYYY-MM-DD HH:MM:SS``): its time, an ``outcome`` (``succeeded`` or a failure class:
``declined``, ``fraud``, ``gateway_error``, ``timeout``, ``validation``, ``other``; ``pending``
or NULL = not decided yet, left out) and the payment call's ``latency_ms`` (NULL if unknown).
The agent buckets rows per UTC hour, counts, and takes p50/p95 by nearest rank. Only complete
hours are sent, each once per run with a stable idempotency key, through the durable outbox.

Python 3.9 compatible, no Django.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

FAILURE_CLASSES = ("declined", "fraud", "gateway_error", "timeout", "validation", "other")
UNDECIDED = ("pending", "")
REPORT_PATH = "payment-health"
_PARAM_RE = re.compile(r":(since|until)\b")


class PaymentQueryError(Exception):
    """The configured query could not be run or returned rows of the wrong shape."""


def bind(query: str, placeholder: str, since: str, until: str) -> tuple[str, list[str]]:
    """Replace ``:since`` / ``:until`` by the driver's placeholder, in order of appearance."""
    params: list[str] = []

    def sub(match: re.Match[str]) -> str:
        params.append(since if match.group(1) == "since" else until)
        return placeholder

    sql = _PARAM_RE.sub(sub, query)
    if not params:
        raise PaymentQueryError("payment_health.query must use :since and :until to bound the hours it reads")
    return sql, params


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return (
            value.replace(tzinfo=dt.timezone.utc)
            if value.tzinfo is None
            else value.astimezone(dt.timezone.utc)
        )
    if isinstance(value, str):
        text = value.strip().replace("T", " ")
        if text.endswith("Z"):
            text = text[:-1]
        parsed = dt.datetime.fromisoformat(text)
        return (
            parsed.replace(tzinfo=dt.timezone.utc)
            if parsed.tzinfo is None
            else parsed.astimezone(dt.timezone.utc)
        )
    raise PaymentQueryError(f"created_at must be a date-time, got {value!r}")


def nearest_rank(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted values by nearest rank (what a shop's own monitoring shows)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])


def aggregate(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Per UTC hour: attempted, succeeded, failed by class, latency count/p50/p95."""
    hours: dict[dt.datetime, dict[str, Any]] = {}
    for row in rows:
        if len(row) < 3:
            raise PaymentQueryError("payment_health.query must return created_at, outcome, latency_ms")
        created_at, outcome, latency = row[0], row[1], row[2]
        outcome = str(outcome).strip().lower() if outcome is not None else ""
        if outcome in UNDECIDED:
            continue
        if outcome != "succeeded" and outcome not in FAILURE_CLASSES:
            outcome = "other"
        hour = _utc(created_at).replace(minute=0, second=0, microsecond=0)
        bucket = hours.setdefault(hour, {"attempted": 0, "succeeded": 0, "failed": {}, "latencies": []})
        bucket["attempted"] += 1
        if outcome == "succeeded":
            bucket["succeeded"] += 1
        else:
            bucket["failed"][outcome] = bucket["failed"].get(outcome, 0) + 1
        if latency is not None:
            try:
                value = float(latency)
            except (TypeError, ValueError):
                value = -1.0
            if value >= 0:
                bucket["latencies"].append(value)
    out = []
    for hour in sorted(hours):
        bucket = hours[hour]
        ordered = sorted(bucket["latencies"])
        out.append(
            {
                "hour": hour.strftime("%Y-%m-%dT%H:00:00Z"),
                "attempted": bucket["attempted"],
                "succeeded": bucket["succeeded"],
                "failed_by_reason": dict(sorted(bucket["failed"].items())),
                "latency_ms": {
                    "count": len(ordered),
                    "p50": nearest_rank(ordered, 0.50),
                    "p95": nearest_rank(ordered, 0.95),
                },
            }
        )
    return out


def complete_hours(now: dt.datetime, hours: int) -> tuple[dt.datetime, dt.datetime]:
    """``[since, until)``: the last ``hours`` complete UTC hours before ``now``."""
    until = now.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    return until - dt.timedelta(hours=hours), until


def read_hours(db: Any, query: str, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """Run the configured query on the shop's database and aggregate it per hour."""
    fmt = "%Y-%m-%d %H:%M:%S"
    sql, params = bind(query, db.ph, since.strftime(fmt), until.strftime(fmt))
    try:
        rows = db.query(sql, params)
    except Exception as exc:  # any driver error: the shop's schema is not what the query expects
        raise PaymentQueryError(f"payment_health.query failed: {exc}") from exc
    return aggregate(rows)


def report_body(
    merchant_id: str, plugin_name: str, installed_version: str, hour: dict[str, Any]
) -> dict[str, Any]:
    body = {"merchant_id": merchant_id, "plugin_name": plugin_name, "installed_version": installed_version}
    body.update(hour)
    if not hour["latency_ms"]["count"]:
        body["latency_ms"] = {"count": 0}
    return body


def idempotency_key(body: dict[str, Any]) -> str:
    """Same hour and same figures → same key: a re-run sends nothing new."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    return f"payment-health-{digest}"


def report(agent: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """Read the last complete hours and queue one report per hour; flush the outbox.

    ``agent`` is an ``engine.Agent`` (config, outbox, client, installed version). Returns the
    CLI result object.
    """
    from .base import result
    from .db import connect

    cfg = agent.cfg
    if not cfg.payment_health_query:
        return result("skipped", reason="no [payment_health] query configured")
    if not cfg.db_url:
        return result("failed", error="[payment_health] needs [database] url to read the orders table")
    since, until = complete_hours(now or dt.datetime.now(dt.timezone.utc), cfg.payment_health_hours)
    version = agent.installed_version()
    try:
        with connect(cfg.db_url, lock_timeout_s=cfg.db_lock_timeout_s) as db:
            hours = read_hours(db, cfg.payment_health_query, since, until)
    except PaymentQueryError as exc:
        return result("failed", error=str(exc))
    for hour in hours:
        body = report_body(cfg.merchant_id, cfg.plugin_name, version, hour)
        agent._report(REPORT_PATH, body, key=idempotency_key(body))
    sent = agent.outbox.flush(agent.client)
    return result(
        "success",
        reason=f"{len(hours)} hour(s) of payment figures queued for {version}",
        hours=[h["hour"] for h in hours],
        outbox=sent,
    )
