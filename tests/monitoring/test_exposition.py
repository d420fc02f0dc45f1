"""The direct exposition writer (molam_upgrades/exposition.py) writes what prometheus_client writes."""

from __future__ import annotations

import math

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from molam_upgrades import prometheus
from molam_upgrades.exposition import CounterFamily, GaugeFamily, HistogramFamily, InfoFamily, render
from rollbacks import monitoring as rollback_monitoring
from rollbacks.aggregates import DURATION_BOUNDS_MS


class Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def assert_same_as_prometheus_client(families):
    """Both formats, byte for byte: ours against prometheus_client's encoders over the same families."""
    for encoder, openmetrics in ((generate_latest, False), (generate_openmetrics, True)):
        ours = render(families, encoder, openmetrics)
        theirs = encoder(Families(families))
        assert ours.decode() == theirs.decode()


def test_a_snapshot_renders_as_prometheus_client_renders_it(fleet):
    snapshot = prometheus.read_snapshot()
    families = [*prometheus.MolamCollector._meta(snapshot, True), *prometheus.snapshot_families(snapshot)]
    assert any(isinstance(f, HistogramFamily) for f in families)
    assert_same_as_prometheus_client(families)


def test_a_thousand_plugins_render_as_prometheus_client_renders_them():
    triggers = ("automatic", "manual", "operator_forced")
    plugins = [f"plugin-{n:04d}" for n in range(1000)]
    data = {
        "by_trigger": [(p, t, n * 7, n % 5, n % 4) for n, p in enumerate(plugins) for t in triggers],
        "by_plugin": [
            (
                p,
                n % 11,
                n % 3,
                n % 2,
                n * 7,
                n * 7 * 2345,
                *(min(n * 7, n * i) for i in range(len(DURATION_BOUNDS_MS))),
            )
            for n, p in enumerate(plugins)
        ],
    }
    families = rollback_monitoring.collect(data)
    assert sum(len(f.samples) for f in families) == 3 * 3000 + 3 * 1000 + 13 * 1000
    assert_same_as_prometheus_client(families)


def test_awkward_label_values_help_texts_and_numbers():
    gauge = GaugeFamily("x_ratio", 'Help with "quotes", a \\ backslash\nand a newline.', labels=["b", "a"])
    gauge.add_metric(['say "hi"', "back\\slash"], 0.1)
    gauge.add_metric(["new\nline", "{braces}"], -3)
    gauge.add_metric(["big", "int"], 12_345_678)
    gauge.add_metric(["big", "float"], 1.5e21)
    gauge.add_metric(["tiny", "float"], 1e-7)
    gauge.add_metric(["inf", "x"], math.inf)
    gauge.add_metric(["nan", "x"], math.nan)
    gauge.add_metric(["bool", "x"], True)
    gauge.add_metric(["edge", "x"], 999_999)
    gauge.add_metric(["edge", "y"], 1_000_000)
    counter = CounterFamily(
        "y_things_total", "Things.", labels=["kind"]
    )  # _total is dropped as prometheus_client does
    counter.add_metric(["é ü"], 3)
    unlabelled = GaugeFamily("z_value", "One value.", value=2.5)
    info = InfoFamily("w", "Descriptive labels.", labels=["id"])
    info.add_metric(["1"], {"strategy": "random", "a_first": "yes"})
    info_alone = InfoFamily("v", "An info without labels.", value={"version": "1.2"})
    histogram = HistogramFamily("h_seconds", "A histogram.", labels=["plugin"])
    histogram.add_metric(["p"], [("0.5", 1), ("1.0", 2), ("+Inf", 3)], sum_value=2.25)
    histogram.add_metric(["q"], [("0.5", 0), ("+Inf", 0)], sum_value=None)
    bare = HistogramFamily("b_seconds", "Without labels.")
    bare.add_metric([], [("1.0", 4), ("+Inf", 5)], sum_value=7)
    assert_same_as_prometheus_client([gauge, counter, unlabelled, info, info_alone, histogram, bare])


def test_families_are_still_read_as_samples():
    counter = CounterFamily("molam_things", "Things.", labels=["kind"])
    counter.add_metric(["a"], 2)
    ((name, labels, value, *_),) = counter.samples
    assert (counter.name, counter.type, name, labels, value) == (
        "molam_things",
        "counter",
        "molam_things_total",
        {"kind": "a"},
        2,
    )


def test_a_series_added_after_rendering_is_rendered_too():
    gauge = GaugeFamily("g", "G.", labels=["k"])
    gauge.add_metric(["a"], 1)
    first = gauge.exposition(False)
    gauge.add_metric(["b"], 2)
    assert gauge.exposition(False) == first + 'g{k="b"} 2.0\n'


def test_names_outside_the_legacy_character_set_are_refused():
    with pytest.raises(ValueError):
        GaugeFamily("g", "G.", labels=["bad-label"])
    with pytest.raises(ValueError):
        GaugeFamily("g", "G.", labels=["k"]).add_metric(["a", "b"], 1)
