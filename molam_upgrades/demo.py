"""The demo catalogue every app's demo data shares: merchants, plugins and releases, words.

``manage.py seed_demo`` creates the demo users, then runs each app's demo data (registered in
``molam_upgrades.registry`` by its ``AppConfig.ready()``), in order.
"""

from __future__ import annotations

import random
import uuid

from .choices import Role

DEMO_PASSWORD = "molam-demo"
DEMO_USERS = [
    # username, role, is_staff (admin site access), description
    ("admin", Role.PAY_ADMIN, True, "payments admin: everything, plus the Django admin"),
    ("ops", Role.OPS_PLUGINS, False, "plugin operations: runs rollouts"),
    ("viewer", Role.OPS_VIEWER, False, "operations viewer: read-only dashboards"),
]
ACTOR = "user:ops"
SEED_MARK = "seed_demo"  # initiated_by of the demo rollback history


def merchant(n: int) -> uuid.UUID:
    """Stable demo merchant ids, so a second run recognises its own data."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://demo.molam.example/merchants/{n}")


DEMO_MERCHANTS = [merchant(n) for n in range(400)]

RELEASES = [
    ("woocommerce", "3.9.0"),
    ("woocommerce", "4.0.0"),
    ("prestashop", "1.7.9"),
    ("prestashop", "1.8.0"),
    ("shopify", "2.2.0"),
    ("shopify", "2.3.0"),
    ("magento", "2.4.7"),
    ("opencart", "3.1.0"),
    ("wix", "1.2.0"),
]


ERRORS = [
    "Database restore failed: table wp_molam_orders is locked",
    "Backup archive checksum mismatch",
    "Smoke test timed out after 10 s",
    "Permission denied writing to plugin directory",
]
REASONS = [
    "Upgrade verification failed",
    "Migration 004_add_currency.sql failed",
    "Smoke test returned HTTP 500",
    "Payment webhook signature check failed after upgrade",
]


def demo_random() -> random.Random:
    """The same pseudo-random demo on every fresh database."""
    return random.Random(115)


def previous_version(plugin_name: str, version: str) -> str:
    known = [v for p, v in RELEASES if p == plugin_name]
    index = known.index(version) if version in known else 0
    return known[index - 1] if index > 0 else "1.0.0"


def versions_for(plugin_name: str) -> tuple[str, str]:
    """(version rolled back to, version rolled back from) for a demo rollback."""
    known = [v for p, v in RELEASES if p == plugin_name]
    if len(known) >= 2:
        return known[-2], known[-1]
    return "2.4.6", known[0]
