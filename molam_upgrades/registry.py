"""What each app contributes to the core: API routes, metrics, readiness checks, demo data.

The core (``molam_upgrades``) imports no app. Each app fills this registry from its
``AppConfig.ready()``; ``/metrics``, ``/readyz``, ``seed_demo`` and the API URLconf read it::

    # rollouts/apps.py
    def ready(self):
        from molam_upgrades import registry
        from . import monitoring, demo

        registry.register_api_urls("rollouts.api.urls")      # mounted under /api/plugins/
        registry.register_page_urls("rollouts.urls")         # mounted under /ops/
        registry.register_metrics("rollouts", read=monitoring.read, collect=monitoring.collect)
        registry.register_readiness_check("sira", monitoring.sira_check)
        registry.register_demo_data("rollouts", demo.seed, order=20)
        registry.register_kpi("rollout_velocity_days", metrics.rollout_velocity_days)

Registering the same name twice replaces the entry (``ready()`` may run more than once in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import Metric


@dataclass(frozen=True)
class MetricsSource:
    """One app's metrics.

    ``read(now)`` runs the app's aggregate queries and returns plain, picklable data (it is
    cached in the shared cache between scrapes); ``collect(data)`` turns that data into
    Prometheus metric families, without touching the database.
    """

    name: str
    read: Callable[[datetime], Any]
    collect: Callable[[Any], list[Metric]]


@dataclass(frozen=True)
class ReadinessResult:
    """``message`` is ``"ok"`` when ready; ``body`` (optional) is published under ``body_key``."""

    message: str
    body: dict | None = None

    @property
    def ok(self) -> bool:
        return self.message == "ok"


@dataclass(frozen=True)
class ReadinessCheck:
    """A check ``/readyz`` runs after the database answered. ``check()`` returns a ReadinessResult."""

    name: str
    check: Callable[[], ReadinessResult]
    body_key: str | None = None


@dataclass(frozen=True)
class DemoData:
    """``seed(stdout)`` writes the app's demo rows, idempotently; lower ``order`` runs first."""

    name: str
    seed: Callable[[Any], None]
    order: int = 50


_api_urls: dict[str, str] = {}
_page_urls: dict[str, str] = {}
_metrics: dict[str, MetricsSource] = {}
_readiness: dict[str, ReadinessCheck] = {}
_demo: dict[str, DemoData] = {}
_kpis: dict[str, Callable[[], Any]] = {}
_sira_checks: dict[str, Callable[..., list]] = {}


def register_api_urls(module: str) -> None:
    """An URLconf module mounted under ``/api/plugins/`` (its router's ``urlpatterns``)."""
    _api_urls[module] = module


def register_page_urls(module: str) -> None:
    """An URLconf module of server-rendered pages, mounted under ``/ops/``."""
    _page_urls[module] = module


def register_metrics(
    name: str, *, read: Callable[[datetime], Any], collect: Callable[[Any], list[Metric]]
) -> None:
    _metrics[name] = MetricsSource(name, read, collect)


def register_readiness_check(
    name: str, check: Callable[[], ReadinessResult], *, body_key: str | None = None
) -> None:
    _readiness[name] = ReadinessCheck(name, check, body_key)


def register_demo_data(name: str, seed: Callable[[Any], None], *, order: int = 50) -> None:
    _demo[name] = DemoData(name, seed, order)


def register_kpi(name: str, value: Callable[[], Any]) -> None:
    """A KPI another app shows (e.g. rollout velocity on the rollback stats), without importing its owner."""
    _kpis[name] = value


def kpi_value(name: str) -> Any:
    """The registered KPI's current value; None when no app provides it."""
    value = _kpis.get(name)
    return value() if value is not None else None


def register_sira_check(name: str, check: Callable[..., list]) -> None:
    """An extra rule Sira runs in every auto-check, after the error-rate rule.

    ``check(actor=...)`` pauses what it must through the rollouts pause service and returns the
    rollouts it paused (objects with ``as_dict()``).
    """
    _sira_checks[name] = check


def sira_checks() -> list[Callable[..., list]]:
    return list(_sira_checks.values())


def api_url_modules() -> list[str]:
    return list(_api_urls)


def page_url_modules() -> list[str]:
    return list(_page_urls)


def metrics_sources() -> list[MetricsSource]:
    return list(_metrics.values())


def readiness_checks() -> list[ReadinessCheck]:
    return list(_readiness.values())


def demo_data() -> list[DemoData]:
    return sorted(_demo.values(), key=lambda item: (item.order, item.name))
