"""The apps depend one way: the core imports no app; backups, rollbacks and rollouts import the core
and nothing of each other, except rollouts → rollbacks, the one owner of upgrade reports and of
the error-rate queries over them (Sira pauses are recorded through its service)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
CORE = "molam_upgrades"
# What each of the three seed apps may import of the others.
ALLOWED = {"backups": set(), "rollbacks": set(), "rollouts": {"rollbacks"}}


def project_apps() -> set[str]:
    """Every Django app of this project (not third-party ones): a folder at the repository root."""
    return {config.name for config in apps.get_app_configs() if (ROOT / config.name).is_dir()} - {CORE}


def imported_top_levels(package: str) -> dict[str, set[str]]:
    """{top-level module imported: {files importing it}} over every module of ``package``, at any depth."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_three_apps_are_project_apps():
    assert {"backups", "rollbacks", "rollouts"} <= project_apps()


def test_the_core_imports_no_app():
    imported = imported_top_levels(CORE)
    offenders = {app: sorted(imported[app]) for app in project_apps() if app in imported}
    assert offenders == {}, offenders


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_backups_rollbacks_and_rollouts_import_each_other_only_through_the_owner(app):
    imported = imported_top_levels(app)
    others = set(ALLOWED) - {app}
    offenders = {other: sorted(imported[other]) for other in others - ALLOWED[app] if other in imported}
    assert offenders == {}, offenders


def test_the_owner_is_really_used_through_its_service_and_queries():
    imported = imported_top_levels("rollouts")
    assert "rollbacks" in imported  # error rates and the Sira pause record come from the owner
    rollouts_code = "\n".join(
        p.read_text() for p in (ROOT / "rollouts").rglob("*.py") if "migrations" not in p.parts
    )
    assert "RollbackHistory" not in rollouts_code and "UpgradeLog(" not in rollouts_code
