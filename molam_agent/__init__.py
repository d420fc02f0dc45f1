"""Molam safe-upgrade agent.

Runs on a merchant's host next to the plugin it upgrades: backup, download and verify,
apply, smoke test, then commit or roll back -- crash-safe, with every outcome reported to
the control plane's REST API. Imports nothing of Django.
"""

from __future__ import annotations

__version__ = "1.0.0"
