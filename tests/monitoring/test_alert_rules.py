"""deploy/prometheus/alerts.yml: valid, unit-tested, and written against names /metrics serves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

RULES_DIR = Path(settings.BASE_DIR) / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts_test.yml"
METRIC_NAME = re.compile(r"\bmolam_[a-z0-9_]+\b")

SEED_ALERTS = {"HighRollbackFailureRate", "HighRolloutErrorRate", "RolloutStuckAtLowPercentage"}


def _rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _exposed_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_promtool_checks_the_rules(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULES_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_seed_rules_and_the_failed_rollbacks_rule_are_shipped():
    rules = {rule["alert"]: rule for rule in _rules()}
    assert SEED_ALERTS <= set(rules)
    assert (
        rules["HighRollbackFailureRate"]["for"] == "1h"
        and "> 0.05" in rules["HighRollbackFailureRate"]["expr"]
    )
    assert rules["HighRolloutErrorRate"]["for"] == "15m"
    assert "86400" in rules["RolloutStuckAtLowPercentage"]["expr"]
    assert "> 5" in rules["TooManyFailedRollbacks"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_rule_has_a_firing_and_a_silent_case():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing, silent = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _rules()}
    assert firing == names and silent == names


@pytest.mark.django_db
def test_rules_and_their_tests_only_use_metrics_that_metrics_exposes(client, fleet):
    exposed = _exposed_names(client.get("/metrics").content.decode())
    in_expressions = {name for rule in _rules() for name in METRIC_NAME.findall(rule["expr"])}
    in_annotations = {
        name
        for rule in _rules()
        for text in rule["annotations"].values()
        for name in METRIC_NAME.findall(text)
        if name != "molam_upgrades"  # the Celery app name in the runbook hint
    }
    in_tests = {
        series["series"].split("{", 1)[0]
        for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for series in case["input_series"]
    }
    assert len(in_expressions) >= 8
    assert (in_expressions | in_annotations | in_tests) - exposed == set()
