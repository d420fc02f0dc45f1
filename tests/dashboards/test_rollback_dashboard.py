"""The rollback dashboard: totals, targets, success by plugin, chart, filtered history, live refresh."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import unquote

import time_machine
from django.utils import timezone

from tests.conftest import MERCHANT_A, MERCHANT_B
from tests.factories import PendingRollbackFactory, RollbackFactory

from .conftest import make_auto_paused_rollout

PAGE = "/ops/rollback-dashboard"
LIVE = "/ops/rollback-dashboard/live"


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def history_rows(html: str) -> list[str]:
    body = html[html.index("<tbody>") : html.index("</tbody>")]
    return re.findall(r"<tr.*?</tr>", body, flags=re.S)


def test_an_empty_dashboard_says_what_happens_next(viewer):
    html = viewer.get(PAGE).content.decode()
    assert "No rollback recorded yet" in html and "agent reports one" in html
    assert "No completed rollback yet" in html
    assert "No rollback in the last 14 days." in html


def test_cards_show_the_last_day_the_last_week_and_the_success_rate(viewer):
    RollbackFactory(created_at=ago(hours=2))
    RollbackFactory(created_at=ago(hours=30), success=False, error_message="Backup checksum mismatch")
    RollbackFactory(created_at=ago(days=10))
    RollbackFactory(created_at=ago(days=12))
    html = viewer.get(PAGE).content.decode()
    assert re.search(r'data-stat="last-24h">1<', html)
    assert re.search(r'data-stat="failed-7d">1<', html)
    assert re.search(r'data-stat="success-rate">75.0 %<', html)


def test_each_target_is_shown_with_its_verdict(viewer):
    for _ in range(19):
        RollbackFactory(created_at=ago(days=1), duration_ms=1500)
    RollbackFactory(created_at=ago(days=1), success=False, duration_ms=9000)
    response = viewer.get(PAGE)
    kpis = {k["label"]: k for k in response.context["kpis"]}
    assert kpis["Rollback success rate"]["value"] == "95.0 %"
    assert kpis["Rollback success rate"]["target"] == "target > 95 %"
    assert kpis["Rollback success rate"]["ok"] is False  # 95 is not above 95
    assert kpis["Average rollback duration"]["value"] == "1.9 s"
    assert (
        kpis["Average rollback duration"]["target"] == "target < 3 s"
        and kpis["Average rollback duration"]["ok"]
    )
    assert (
        kpis["Failed rollbacks, 7 days"]["target"] == "target ≤ 5" and kpis["Failed rollbacks, 7 days"]["ok"]
    )
    assert kpis["Rollout velocity (to 100 %)"]["ok"] is None  # no rollout reached 100 % yet
    assert kpis["Rollbacks per day, 14 days"]["value"] == "1.43"
    html = response.content.decode()
    assert "kpi--bad" in html and "✗ missed" in html and "✓ met" in html


def test_success_rate_by_plugin_has_bars_durations_and_totals(viewer):
    RollbackFactory.create_batch(3, plugin_name="woocommerce", duration_ms=1000)
    RollbackFactory(plugin_name="woocommerce", success=False, duration_ms=5000)
    RollbackFactory(plugin_name="shopify", duration_ms=800)
    html = viewer.get(PAGE).content.decode()
    section = html[html.index('id="plugins-heading"') : html.index('id="chart-heading"')]
    assert 'aria-valuenow="75.0"' in section and 'width="75.0%"' in section and "bar--bad" in section
    assert "3 of 4 succeeded · avg 2.0 s" in section
    assert "1 of 1 succeeded · avg 800 ms" in section


def test_the_chart_draws_fourteen_days_split_by_outcome(viewer):
    RollbackFactory.create_batch(2, created_at=ago(days=1))
    RollbackFactory(created_at=ago(days=1), success=False)
    RollbackFactory(created_at=ago(days=20))  # outside the window
    response = viewer.get(PAGE)
    bars = response.context["chart"]["bars"]
    assert len(bars) == 14
    assert sum(b["successful"] for b in bars) == 2 and sum(b["failed"] for b in bars) == 1
    html = response.content.decode()
    start = html.index("<svg viewBox")  # the chart, not a percentage bar
    svg = html[start : html.index("</svg>", start)]
    assert svg.count('class="chart__ok"') == 1 and svg.count('class="chart__fail"') == 1
    assert "2 successful, 1 failed" in svg and 'role="img"' in svg


def test_the_history_table_shows_every_column_newest_first(viewer):
    RollbackFactory(merchant_id=MERCHANT_A, created_at=ago(hours=5), rollback_trigger="manual")
    RollbackFactory(
        merchant_id=MERCHANT_B,
        plugin_name="prestashop",
        from_version="1.8.0",
        to_version="1.7.9",
        created_at=ago(hours=1),
        success=False,
        duration_ms=4200,
        error_message="Database restore failed",
    )
    PendingRollbackFactory(created_at=ago(minutes=1))
    rows = history_rows(viewer.get(PAGE).content.decode())
    assert len(rows) == 3
    assert "In progress" in rows[0] and "Operator forced" in rows[0]
    newest = rows[1]
    for text in (
        "9b2f7a1e…",
        "prestashop",
        "1.8.0 → 1.7.9",
        "Automatic",
        "Failed",
        "4.2 s",
        "Database restore failed",
    ):
        assert text in newest, text
    assert 'datetime="' in newest and 'data-time="relative"' in newest
    assert "123e4567…" in rows[2] and "Manual" in rows[2] and "Success" in rows[2] and "1.5 s" in rows[2]


def test_sira_pauses_are_highlighted_in_the_history(viewer):
    make_auto_paused_rollout()
    RollbackFactory()
    rows = history_rows(viewer.get(PAGE).content.decode())
    sira = [r for r in rows if "row--sira" in r]
    assert len(sira) == 1
    assert "Fleet · Sira" in sira[0] and "Error rate 33.33 %" in sira[0]


def test_history_is_filtered_by_plugin_and_merchant_with_the_api_filterset(viewer):
    RollbackFactory(merchant_id=MERCHANT_A, plugin_name="woocommerce")
    RollbackFactory(merchant_id=MERCHANT_A, plugin_name="shopify")
    RollbackFactory(merchant_id=MERCHANT_B, plugin_name="shopify")
    html = viewer.get(PAGE, {"plugin_name": "shopify"}).content.decode()
    rows = history_rows(html)
    assert len(rows) == 2 and all('data-plugin="shopify"' in r for r in rows)
    assert '<option value="shopify" selected>' in html and "matching the filters" in html
    rows = history_rows(
        viewer.get(PAGE, {"plugin_name": "shopify", "merchant_id": str(MERCHANT_A)}).content.decode()
    )
    assert len(rows) == 1 and "123e4567…" in rows[0]


def test_the_plugin_filter_lists_every_plugin_escaped(viewer):
    RollbackFactory(plugin_name="shopify")
    RollbackFactory(plugin_name='odd"<plugin>&')
    PendingRollbackFactory(plugin_name="prestashop")  # started, not completed: still a plugin to filter by
    html = viewer.get(PAGE, {"plugin_name": "shopify"}).content.decode()
    select = html[html.index('<select id="filter-plugin"') : html.index("</select>")]
    assert re.findall(r"<option[^>]*>[^<]*</option>", select) == [
        '<option value="">All plugins</option>',
        '<option value="odd&quot;&lt;plugin&gt;&amp;">odd&quot;&lt;plugin&gt;&amp;</option>',
        '<option value="prestashop">prestashop</option>',
        '<option value="shopify" selected>shopify</option>',
    ]


def test_a_filter_matching_nothing_offers_to_clear_it(viewer):
    RollbackFactory()
    html = viewer.get(PAGE, {"merchant_id": str(uuid.uuid4())}).content.decode()
    assert "No rollback matches these filters" in html and "clear the filters" in html


def test_a_malformed_merchant_id_is_explained_not_a_500(viewer):
    RollbackFactory()
    response = viewer.get(PAGE, {"merchant_id": "not-a-uuid"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="filter-merchant-error"' in html and "Enter a valid UUID." in html


def test_history_pages_by_keyset_and_pages_keep_the_filters(viewer):
    RollbackFactory.create_batch(30, plugin_name="shopify")
    RollbackFactory(plugin_name="woocommerce")
    html = viewer.get(PAGE, {"plugin_name": "shopify"}).content.decode()
    assert len(history_rows(html)) == 25 and 'rel="first"' not in html
    older = re.search(r'href="\?plugin_name=shopify&amp;before=([^"]+)" rel="next"', html)
    assert older, "an Older link that keeps the filter"
    html = viewer.get(PAGE, {"plugin_name": "shopify", "before": unquote(older.group(1))}).content.decode()
    assert len(history_rows(html)) == 5 and 'rel="first"' in html and 'rel="next"' not in html
    assert viewer.get(PAGE, {"before": "not-a-cursor"}).status_code == 200  # a mangled link: the newest page


def test_the_page_polls_its_live_fragment_only_while_visible(viewer):
    html = viewer.get(PAGE, {"plugin_name": "shopify"}).content.decode()
    assert "vendor/htmx/htmx.min.js" in html
    match = re.search(r'hx-get="([^"]+)"\s+hx-trigger="([^"]+)"', html)
    assert match
    url, trigger = match.groups()
    assert url.startswith(f"{LIVE}?plugin_name=shopify&amp;since=")
    # The "only while visible" check is in static/js/app.js (data-poll-while-visible): an
    # hx-trigger filter would need eval, which the Content-Security-Policy forbids.
    assert trigger.startswith("every 5s") and "visibilitychange from:document" in trigger
    assert "data-poll-while-visible" in html


@time_machine.travel(timezone.now(), tick=False)  # the fingerprint also turns over each minute
def test_the_live_fragment_answers_204_until_something_changes(viewer):
    RollbackFactory()
    first = viewer.get(LIVE)
    assert first.status_code == 200 and first["Cache-Control"] == "no-store"
    html = first.content.decode()
    assert "<html" not in html and 'id="rollback-live"' in html and "data-stat" in html and "<tbody>" in html
    since = first.context["since"]
    assert viewer.get(LIVE, {"since": since}).status_code == 204
    RollbackFactory(created_at=timezone.now())
    again = viewer.get(LIVE, {"since": since})
    assert again.status_code == 200 and len(history_rows(again.content.decode())) == 2


@time_machine.travel(timezone.now(), tick=False)
def test_the_dashboard_costs_a_bounded_number_of_queries(viewer, django_assert_max_num_queries):
    RollbackFactory.create_batch(40)
    RollbackFactory.create_batch(10, plugin_name="shopify", success=False)
    make_auto_paused_rollout()
    viewer.get(PAGE)
    with django_assert_max_num_queries(13):
        assert viewer.get(PAGE).status_code == 200
    with django_assert_max_num_queries(12):
        assert viewer.get(LIVE).status_code == 200
    since = viewer.get(LIVE).context["since"]
    with django_assert_max_num_queries(4):  # session, user, roles, fingerprint
        assert viewer.get(LIVE, {"since": since}).status_code == 204
