"""Aggregates maintained on write: what Sira, the dashboards, the stats API and ``/metrics`` read.

Every ops read of rollout health and rollback figures reads these tables, so its cost is
O(active rollouts + rows shown), not O(history). Each is changed in the same transaction as the
report or rollback that changes it; ``manage.py rebuild_aggregates`` recomputes them from the raw
tables and ``--verify`` compares (for restores, and for anyone who edits rows in psql).

**Per rollout** (:class:`RolloutMerchantOutcome` + :class:`RolloutReportCounts`). A report is
stamped with the rollout it was made under (the plugin's open rollout, same version) and whether
its merchant was in the cohort (bucket below the percentage at that moment). A cohort merchant's
latest outcome is upserted in one row per (rollout, merchant); the change in the rollout's
merchant counts that this causes (:func:`molam_upgrades.sira_rules.merchant_change`) is then
added to a counter row.

Why striped counter rows, not one row per rollout, and not insert-only buckets: during a rollout
every report of the fleet lands on the *same* rollout. One counter row would be a hot row: each
report transaction holds its lock from the UPDATE until COMMIT (including the WAL flush), so
ingestion would be serialised on that one lock. Insert-only rows (one per report, or per minute)
avoid the lock but make reads sum a number of rows that grows with traffic, or need a
compaction job that itself contends. ``STRIPES`` counter rows per rollout, the stripe chosen by
the merchant id, give both: concurrent reports rarely touch the same row (50 connections over
16 stripes), each report costs one UPDATE of a narrow row, and a read sums at most 16 rows per
rollout. The per-merchant row is contended only by that merchant's own reports.

**Per plugin and rollback trigger** (:class:`RollbackTotals`, all-time counts, successes,
duration sums and the duration histogram) and **per plugin and UTC day** (:class:`RollbackDaily`,
for the 14-day chart): updated when a merchant rollback is initiated and when it completes. Their
rate is a few per plugin per minute at worst, so plain counter rows. Rolling windows ("last 24
hours", "failed in 7 days") are counted on the raw table through its ``created_at`` index: that
cost is bounded by the window, not by the history.
"""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from uuid import UUID

import psycopg
from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from molam_upgrades import idempotency
from molam_upgrades.models import IdempotencyRecord
from molam_upgrades.sira_rules import ERROR_STATUSES, SUCCESS, MerchantCounts, is_error, merchant_change

from .models import (
    RollbackDaily,
    RollbackHistory,
    RollbackTotals,
    RolloutMerchantOutcome,
    UpgradeLog,
)

STRIPES = 16
# Upper bounds (ms) of the rollback-duration histogram (the seed's target is an average under
# 3 s, so the buckets are finest around it). One column per bound in RollbackTotals.
DURATION_BOUNDS_MS: tuple[int, ...] = (500, 1000, 2000, 3000, 5000, 10000, 30000, 60000, 120000, 300000)
COUNTERS = (
    "reports",
    "reports_failed",
    "merchants",
    "merchants_failed",
    "merchants_upgraded",
    "reports_outside_cohort",
)


def duration_column(bound_ms: int) -> str:
    return f"duration_le_{bound_ms}"


def stripe_for(merchant_id: UUID) -> int:
    """A merchant always lands on the same stripe (its id's last 4 bits)."""
    return merchant_id.int % STRIPES


# --- per rollout: write --------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortQuery:
    """``SELECT rollout_id, in_cohort`` for a report: one row, or none when the plugin has no
    open rollout of the report's version started before it.

    ``template`` has the slots ``{bucket}``, ``{plugin_name}``, ``{version}``, ``{reported_at}``
    and takes ``states`` as parameters; ``bucket(plugin_name, version, merchant_id)`` is the
    merchant's bucket. Provided by ``rollouts`` from its AppConfig.ready(): rollouts own cohorts
    and depend on this app, never the other way round.
    """

    template: str
    states: tuple[str, ...]
    bucket: Callable[[str, str, UUID], int]


_cohort_query: CohortQuery | None = None


def set_cohort_query(query: CohortQuery) -> None:
    global _cohort_query
    _cohort_query = query
    _store_statement.cache_clear()


def stamp_report(report: UpgradeLog) -> None:
    """Record which rollout a new report belongs to, and whether its merchant was in the cohort."""
    row = None
    query = _cohort_query
    if query is not None:
        sql = query.template.format(bucket="%s", plugin_name="%s", version="%s", reported_at="%s")
        with connection.cursor() as cur:
            cur.execute(
                sql,
                [
                    query.bucket(report.plugin_name, report.to_version, report.merchant_id),
                    report.plugin_name,
                    *query.states,
                    report.to_version,
                    connection.ops.adapt_datetimefield_value(report.created_at),
                ],
            )
            row = cur.fetchone()
    report.rollout_id, report.in_cohort = (row[0], bool(row[1])) if row else (None, None)


def count_report(report: UpgradeLog) -> None:
    """Apply one stored, stamped report to its rollout's aggregates (call inside its transaction)."""
    if report.rollout_id is None:
        return  # no open rollout for this plugin and version: it counts nowhere
    if not report.in_cohort:
        _add(report.rollout_id, stripe_for(report.merchant_id), {"reports_outside_cohort": 1})
        return
    change = _record_latest_outcome(report)
    _add(
        report.rollout_id,
        stripe_for(report.merchant_id),
        {
            "reports": 1,
            "reports_failed": int(is_error(report.status)),
            "merchants": change.merchants,
            "merchants_failed": change.errors,
            "merchants_upgraded": change.upgraded,
        },
    )


def _record_latest_outcome(report: UpgradeLog) -> MerchantCounts:
    """Upsert the merchant's latest outcome; return how the rollout's merchant counts move.

    One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (PostgreSQL, SQLite ≥ 3.35): the row
    keeps the outcome it replaced (``previous_status``, read from the old row inside the same
    statement), and ``reports = 1`` after the statement means the merchant is new to the
    rollout. The conflict path locks the row, so a concurrent report of the same merchant waits
    for this transaction and then builds on its outcome. The latest report is the larger
    (``created_at``, ``id``), as the rebuild's ``DISTINCT ON`` orders them; an older report
    arriving late only adds to ``reports``.
    """
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO rollout_merchant_outcomes AS o "
            "(rollout_id, merchant_id, status, report_id, reported_at, reports) "
            f"VALUES (%s, %s, %s, %s, %s, 1) {_OUTCOME_UPSERT}",
            [report.rollout_id, *_outcome_params(report)],
        )
        reports, previous, latest = cur.fetchone()
    return merchant_change(None if reports == 1 else previous, latest)


# The newer report wins: (created_at, id) larger, as the rebuild's DISTINCT ON orders them.
_NEWER = "(excluded.reported_at, excluded.report_id) > (o.reported_at, o.report_id)"
_OUTCOME_UPSERT = (
    "ON CONFLICT (rollout_id, merchant_id) DO UPDATE SET "
    "reports = o.reports + 1, previous_status = o.status, "
    f"status = CASE WHEN {_NEWER} THEN excluded.status ELSE o.status END, "
    f"report_id = CASE WHEN {_NEWER} THEN excluded.report_id ELSE o.report_id END, "
    f"reported_at = CASE WHEN {_NEWER} THEN excluded.reported_at ELSE o.reported_at END "
    "RETURNING reports, previous_status, status"
)


def _outcome_params(report: UpgradeLog) -> list:
    return [
        _prep("merchant_id", report.merchant_id),
        report.status,
        _prep("report_id", report.pk),
        _prep("reported_at", report.created_at),
    ]


def _prep(field_name: str, value):
    """A value as its ``rollout_merchant_outcomes`` column takes it on this database (UUIDs are
    hex text and datetimes naive UTC text on SQLite)."""
    return RolloutMerchantOutcome._meta.get_field(field_name).get_db_prep_value(value, connection)


def _add(rollout_id: int, stripe: int, deltas: dict[str, int]) -> None:
    """Add ``deltas`` to one counter stripe. Last statement before commit: the row lock is held
    from here to COMMIT."""
    _upsert_add("rollout_report_counts", {"rollout_id": rollout_id, "stripe": stripe}, deltas)


def _upsert_add(table: str, key: dict, deltas: dict[str, int]) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET c = c + excluded.c``: one statement whether the
    row exists or not (PostgreSQL, and SQLite ≥ 3.24 for the embedded default)."""
    deltas = {k: v for k, v in deltas.items() if v}
    if not deltas:
        return
    columns = [*key, *deltas]
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in deltas)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}",
            [*key.values(), *deltas.values()],
        )


# --- per rollout: many reports in one statement (PostgreSQL) -------------------------------------


def store_batch(items: list[tuple[UpgradeLog, dict | None]], *, prepared: bool = False) -> list[bool]:
    """PostgreSQL: store, stamp and count one or several new reports in **one statement**, each
    claiming its Idempotency-Key (``key_record``, an ``api_idempotency_records`` row, or None);
    for each, False when its key was already recorded (that report is not written: the caller
    replays the first response).

    Same rows as :func:`stamp_report` + insert + :func:`count_report` per report (the portable
    path, which SQLite takes; ``tests/rollbacks/test_store_statement.py`` runs both on the same
    reports and compares every row). No merchant and no key may appear twice in one call: the
    outcome upsert can touch a row once per statement (``rollbacks.report_writer`` splits).

    Why one statement: a report is the control plane's hottest write (every merchant's plugin
    sends one per upgrade). As separate statements it took nine round trips (look-up of the key,
    BEGIN, cohort, insert, outcome, counters, key, COMMIT), each costing the database its
    per-statement overhead and the web worker a driver call. Data-modifying CTEs chain them in
    one statement, atomic on its own (autocommit), and many reports share it: the database's cost
    per statement and per commit is then paid once per batch. Rows are locked in one order
    (outcomes by rollout and merchant, then counter stripes), so two batches cannot deadlock.
    The merchant count rule of :func:`molam_upgrades.sira_rules.merchant_change` is written as
    SQL here (``_COUNT_DELTAS``), from the same status sets.

    ``prepared`` (autocommit only, the report writer's connection): run it as a prepared
    statement, planned once per connection. Planning it costs the database about twice what
    running it costs for one report (~0.7 of ~1 ms here).
    """
    sql, columns, fields = _store_statement()
    query = _cohort_query
    rows = []
    for n, (report, key_record) in enumerate(items):
        values = [
            n,
            *((key_record[c] for c in idempotency.COLUMNS) if key_record else _NO_KEY),
            query.bucket(report.plugin_name, report.to_version, report.merchant_id) if query else 0,
            stripe_for(report.merchant_id),
            *(f.get_db_prep_save(f.pre_save(report, True), connection) for f in fields),
        ]
        rows.append(dict(zip(columns, values, strict=True)))
    # The reports go in as one JSON parameter (json_to_recordset): one value to adapt, encoded in
    # C, whatever their number, and the statement's text stays the same. ``str`` writes the UUIDs
    # and datetimes as PostgreSQL reads them, microseconds kept (DjangoJSONEncoder cuts them to
    # milliseconds); the report has no JSON field, whose driver adapter str would misrepresent.
    params: list = [json.dumps(rows, default=str)]
    params += [*query.states] if query else []
    rows = _execute_prepared(sql, params) if prepared else _execute(sql, params)
    results = {n: (claimed, rollout_id, in_cohort) for n, claimed, rollout_id, in_cohort in rows}
    stored = []
    for n, (report, _) in enumerate(items):
        claimed, report.rollout_id, report.in_cohort = results[n]
        if claimed:
            report._state.adding = False
            report._state.db = connection.alias
        stored.append(claimed)
    return stored


def _execute(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


# The report writer's connections, set to plan their prepared statements once.
_planned_once: weakref.WeakSet = weakref.WeakSet()


def _execute_prepared(sql: str, params: list) -> list[tuple]:
    """``sql`` as a prepared statement of this connection, its parameters sent apart (Django's
    client-side cursor can do neither). Errors are Django's, as from its own cursor."""
    with connection.cursor(), connection.wrap_database_errors:  # health check, connection
        raw = connection.connection
        if raw not in _planned_once:
            # Else PostgreSQL re-plans this statement for each call (its parameters look like they
            # could change the plan): a custom plan every time costs as much as not preparing.
            raw.execute("SET plan_cache_mode = force_generic_plan")
            _planned_once.add(raw)
        # psycopg prepares only on a connection with a threshold; Django's has none (never
        # prepare), and keeps it for every other statement.
        threshold, raw.prepare_threshold = raw.prepare_threshold, 1 << 30
        try:
            with psycopg.Cursor(raw) as cur:
                cur.execute(sql, params, prepare=True)
                return cur.fetchall()
        except psycopg.errors.InvalidSqlStatementName:
            # The server forgot it (DISCARD ALL, a connection pooler): nothing ran. Run it plain,
            # and take a new connection next time (psycopg would still think it prepared).
            connection.close_at = 0
        finally:
            raw.prepare_threshold = threshold
    return _execute(sql, params)


_NO_KEY = [None] * len(idempotency.COLUMNS)


# The status sets of molam_upgrades.sira_rules as SQL literals, for this statement and the rebuild.
_ERR = "(" + ", ".join(f"'{status}'" for status in sorted(ERROR_STATUSES)) + ")"
_SUCCESS = f"'{SUCCESS}'"
# merchant_change(previous, latest) as SQL (previous_status is null when the outcome row is new,
# reports = 1); one sum per counter of COUNTERS, in its order. ``r`` is a stored report, ``o``
# its merchant's outcome after the upsert (no row outside the cohort).
_COUNT_DELTAS = (
    "SUM(CASE WHEN r.in_cohort THEN 1 ELSE 0 END), "
    f"SUM(CASE WHEN r.in_cohort AND r.status IN {_ERR} THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN o.reports = 1 THEN 1 ELSE 0 END), "
    f"SUM(CASE WHEN o.status IN {_ERR} THEN 1 ELSE 0 END "
    f"- CASE WHEN o.previous_status IN {_ERR} THEN 1 ELSE 0 END), "
    f"SUM(CASE WHEN o.status = {_SUCCESS} THEN 1 ELSE 0 END "
    f"- CASE WHEN o.previous_status = {_SUCCESS} THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN r.in_cohort THEN 0 ELSE 1 END)"
)


@functools.cache
def _store_statement() -> tuple[str, tuple[str, ...], tuple]:
    """The statement of :func:`store_batch`, its input columns and the report fields it takes."""
    quote = connection.ops.quote_name
    fields = tuple(
        f for f in UpgradeLog._meta.concrete_fields if f.attname not in ("rollout_id", "in_cohort")
    )
    key_types = [IdempotencyRecord._meta.get_field(c).db_type(connection) for c in idempotency.COLUMNS]
    types = ["integer", *key_types, "integer", "smallint", *(f.db_type(connection) for f in fields)]
    report_columns = [f.column for f in fields]
    columns = ("n", *(f"key_{c}" for c in idempotency.COLUMNS), "bucket", "stripe", *report_columns)
    query = _cohort_query
    cohort = (
        query.template.format(
            bucket="i.bucket", plugin_name="i.plugin_name", version="i.to_version", reported_at="i.created_at"
        )
        if query
        else "SELECT NULL::bigint AS rollout_id, NULL::boolean AS in_cohort WHERE false"
    )
    log_table = quote(UpgradeLog._meta.db_table)
    key_table = quote(IdempotencyRecord._meta.db_table)
    sql = (
        "WITH input AS (SELECT * FROM json_to_recordset(%s::json) AS i("
        + ", ".join(f"{quote(c)} {t}" for c, t in zip(columns, types, strict=True))
        + ")), "
        f"claim AS (INSERT INTO {key_table} ({', '.join(idempotency.COLUMNS)}) "
        f"SELECT {', '.join(f'key_{c}' for c in idempotency.COLUMNS)} "
        "FROM input WHERE key_key IS NOT NULL "
        "ORDER BY key_principal, key_key "
        "ON CONFLICT (principal, key) DO NOTHING RETURNING principal, key), "
        "stamped AS (SELECT i.*, c.rollout_id, c.in_cohort FROM input i "
        f"LEFT JOIN LATERAL ({cohort}) c ON true "
        "WHERE i.key_key IS NULL OR EXISTS "
        "(SELECT 1 FROM claim k WHERE k.principal = i.key_principal AND k.key = i.key_key)), "
        f"report AS (INSERT INTO {log_table} ({', '.join(quote(c) for c in report_columns)}, rollout_id, in_cohort) "
        f"SELECT {', '.join(quote(c) for c in report_columns)}, rollout_id, in_cohort FROM stamped "
        "RETURNING id, merchant_id, status, created_at, rollout_id, in_cohort), "
        "outcome AS (INSERT INTO rollout_merchant_outcomes AS o "
        "(rollout_id, merchant_id, status, report_id, reported_at, reports) "
        "SELECT rollout_id, merchant_id, status, id, created_at, 1 FROM report WHERE in_cohort "
        f"ORDER BY rollout_id, merchant_id {_OUTCOME_UPSERT.replace('RETURNING ', 'RETURNING rollout_id, merchant_id, ')}), "
        "counts AS (INSERT INTO rollout_report_counts AS c "
        f"(rollout_id, stripe, {', '.join(COUNTERS)}) "
        f"SELECT r.rollout_id, i.stripe, {_COUNT_DELTAS} FROM report r JOIN input i ON i.id = r.id "
        "LEFT JOIN outcome o ON o.rollout_id = r.rollout_id AND o.merchant_id = r.merchant_id "
        "WHERE r.rollout_id IS NOT NULL GROUP BY r.rollout_id, i.stripe ORDER BY r.rollout_id, i.stripe "
        "ON CONFLICT (rollout_id, stripe) DO UPDATE SET "
        + ", ".join(f"{c} = c.{c} + excluded.{c}" for c in COUNTERS)
        + ") SELECT i.n, s.id IS NOT NULL, s.rollout_id, s.in_cohort FROM input i LEFT JOIN stamped s ON s.n = i.n"
    )
    return sql, columns, fields


# --- per plugin: rollbacks -----------------------------------------------------------------------


def _counts_towards_totals(rollback: RollbackHistory) -> bool:
    # Sira pauses are fleet events recorded in the history, not merchant rollbacks.
    return not rollback.sira_triggered


def count_rollback_initiated(rollback: RollbackHistory) -> None:
    """A merchant rollback was opened (call inside its transaction)."""
    if _counts_towards_totals(rollback):
        _add_totals(rollback.plugin_name, rollback.rollback_trigger, {"initiated": 1})


def count_rollback_completed(rollback: RollbackHistory) -> None:
    """A merchant rollback completed: totals, histogram and its day (call inside its transaction)."""
    if not _counts_towards_totals(rollback):
        return
    ok = bool(rollback.success)
    deltas = {"completed": 1, "succeeded": int(ok), "failed": int(not ok)}
    timed = {}
    if rollback.duration_ms is not None:
        timed = {"duration_count": 1, "duration_sum_ms": rollback.duration_ms}
        for bound in DURATION_BOUNDS_MS:
            if rollback.duration_ms <= bound:
                timed[duration_column(bound)] = 1
    _add_totals(rollback.plugin_name, rollback.rollback_trigger, {**deltas, **timed})
    day = rollback.created_at.astimezone(UTC).date()
    _upsert_add(
        "rollback_daily",
        {"day": day, "plugin_name": rollback.plugin_name},
        {**deltas, **{k: v for k, v in timed.items() if k in ("duration_count", "duration_sum_ms")}},
    )


def _add_totals(plugin_name: str, trigger: str, deltas: dict[str, int]) -> None:
    _upsert_add("rollback_totals", {"plugin_name": plugin_name, "rollback_trigger": trigger}, deltas)


# --- rebuild and verify (PostgreSQL) -------------------------------------------------------------

_LATEST = """
    SELECT DISTINCT ON (rollout_id, merchant_id) rollout_id, merchant_id, status, id AS report_id,
           created_at AS reported_at, count(*) OVER (PARTITION BY rollout_id, merchant_id) AS reports
      FROM plugin_upgrade_logs
     WHERE rollout_id IS NOT NULL AND in_cohort
     ORDER BY rollout_id, merchant_id, created_at DESC, id DESC
"""
_ROLLOUT_RECOUNT = f"""
    WITH latest AS ({_LATEST}),
    per_report AS (
        SELECT rollout_id,
               count(*) FILTER (WHERE in_cohort) AS reports,
               count(*) FILTER (WHERE in_cohort AND status IN {_ERR}) AS reports_failed,
               count(*) FILTER (WHERE NOT in_cohort) AS reports_outside_cohort
          FROM plugin_upgrade_logs WHERE rollout_id IS NOT NULL GROUP BY rollout_id),
    per_merchant AS (
        SELECT rollout_id, count(*) AS merchants,
               count(*) FILTER (WHERE status IN {_ERR}) AS merchants_failed,
               count(*) FILTER (WHERE status = {_SUCCESS}) AS merchants_upgraded
          FROM latest GROUP BY rollout_id)
    SELECT p.rollout_id, p.reports, p.reports_failed, coalesce(m.merchants, 0), coalesce(m.merchants_failed, 0),
           coalesce(m.merchants_upgraded, 0), p.reports_outside_cohort
      FROM per_report p LEFT JOIN per_merchant m USING (rollout_id)
"""
_ROLLOUT_STORED = f"""
    SELECT rollout_id, {", ".join(f"sum({c})" for c in COUNTERS)} FROM rollout_report_counts GROUP BY rollout_id
"""
_DONE = "completed_at IS NOT NULL"
_TIMED = f"{_DONE} AND duration_ms IS NOT NULL"
_TOTALS_COLUMNS = (
    "initiated", "completed", "succeeded", "failed", "duration_count", "duration_sum_ms",
    *(duration_column(b) for b in DURATION_BOUNDS_MS),
)  # fmt: skip
_TOTALS_RECOUNT = f"""
    SELECT plugin_name, rollback_trigger, count(*), count(*) FILTER (WHERE {_DONE}),
           count(*) FILTER (WHERE {_DONE} AND success), count(*) FILTER (WHERE {_DONE} AND success IS NOT TRUE),
           count(*) FILTER (WHERE {_TIMED}), coalesce(sum(duration_ms) FILTER (WHERE {_TIMED}), 0),
           {", ".join(f"count(*) FILTER (WHERE {_TIMED} AND duration_ms <= {b})" for b in DURATION_BOUNDS_MS)}
      FROM plugin_rollback_history WHERE NOT sira_triggered GROUP BY plugin_name, rollback_trigger
"""
_DAILY_COLUMNS = ("completed", "succeeded", "failed", "duration_count", "duration_sum_ms")
_DAILY_RECOUNT = f"""
    SELECT plugin_name, (created_at AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE success),
           count(*) FILTER (WHERE success IS NOT TRUE), count(*) FILTER (WHERE duration_ms IS NOT NULL),
           coalesce(sum(duration_ms), 0)
      FROM plugin_rollback_history WHERE NOT sira_triggered AND {_DONE} GROUP BY 1, 2
"""


@dataclass(frozen=True)
class Difference:
    table: str
    key: tuple
    stored: tuple | None
    recounted: tuple | None

    def __str__(self) -> str:
        return f"{self.table} {self.key}: stored {self.stored}, recount {self.recounted}"


def _rows(cursor, sql: str, width: int) -> dict[tuple, tuple]:
    cursor.execute(sql)
    return {tuple(row[:width]): tuple(int(v) for v in row[width:]) for row in cursor.fetchall()}


def _compare(table: str, stored: dict, recounted: dict) -> list[Difference]:
    differences = []
    for key in sorted(stored.keys() | recounted.keys(), key=str):
        a, b = stored.get(key), recounted.get(key)
        if a is not None and not any(a) and b is None:
            continue  # an all-zero stored row equals "nothing"
        if a != b:
            differences.append(Difference(table, key, a, b))
    return differences


def verify_aggregates() -> list[Difference]:
    """Recount everything from the raw tables and list where the aggregates disagree (none: [])."""
    _require_postgresql()
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cur:
        if outermost:  # one snapshot for both sides of the comparison
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        differences = _compare(
            "rollout_report_counts", _rows(cur, _ROLLOUT_STORED, 1), _rows(cur, _ROLLOUT_RECOUNT, 1)
        )
        cur.execute(
            f"""SELECT count(*) FROM ({_LATEST}) l
                FULL JOIN rollout_merchant_outcomes o USING (rollout_id, merchant_id)
                WHERE o.status IS DISTINCT FROM l.status OR o.report_id IS DISTINCT FROM l.report_id
                   OR o.reports IS DISTINCT FROM l.reports"""
        )
        wrong = cur.fetchone()[0]
        if wrong:
            differences.append(Difference("rollout_merchant_outcomes", ("rows",), (wrong,), (0,)))
        differences += _compare(
            "rollback_totals",
            _rows(
                cur,
                f"SELECT plugin_name, rollback_trigger, {', '.join(_TOTALS_COLUMNS)} FROM rollback_totals",
                2,
            ),
            _rows(cur, _TOTALS_RECOUNT, 2),
        )
        differences += _compare(
            "rollback_daily",
            _rows(cur, f"SELECT plugin_name, day, {', '.join(_DAILY_COLUMNS)} FROM rollback_daily", 2),
            _rows(cur, _DAILY_RECOUNT, 2),
        )
    return differences


def rebuild_aggregates() -> dict[str, int]:
    """Recompute every aggregate from the raw tables, in one transaction.

    Report and rollback writes wait meanwhile (SHARE locks on the raw tables), so nothing lands
    between the recount and the swap. Returns the number of rows written per table.
    """
    _require_postgresql()
    written = {}
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("LOCK TABLE plugin_upgrade_logs, plugin_rollback_history IN SHARE MODE")
        cur.execute(
            "LOCK TABLE rollout_report_counts, rollout_merchant_outcomes, rollback_totals, rollback_daily "
            "IN EXCLUSIVE MODE"
        )
        for table in (
            "rollout_merchant_outcomes",
            "rollout_report_counts",
            "rollback_totals",
            "rollback_daily",
        ):
            cur.execute(f"DELETE FROM {table}")
        cur.execute(
            "INSERT INTO rollout_merchant_outcomes (rollout_id, merchant_id, status, report_id, reported_at, reports) "
            f"SELECT * FROM ({_LATEST}) l"
        )
        written["rollout_merchant_outcomes"] = cur.rowcount
        cur.execute(
            f"INSERT INTO rollout_report_counts (rollout_id, stripe, {', '.join(COUNTERS)}) "
            f"SELECT rollout_id, 0, {', '.join(f'c{i}' for i in range(len(COUNTERS)))} "
            f"FROM ({_ROLLOUT_RECOUNT}) AS r(rollout_id, {', '.join(f'c{i}' for i in range(len(COUNTERS)))})"
        )
        written["rollout_report_counts"] = cur.rowcount
        cur.execute(
            f"INSERT INTO rollback_totals (plugin_name, rollback_trigger, {', '.join(_TOTALS_COLUMNS)}) {_TOTALS_RECOUNT}"
        )
        written["rollback_totals"] = cur.rowcount
        cur.execute(
            f"INSERT INTO rollback_daily (plugin_name, day, {', '.join(_DAILY_COLUMNS)}) {_DAILY_RECOUNT}"
        )
        written["rollback_daily"] = cur.rowcount
    return written


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise NotImplementedError(
            "rebuild_aggregates and --verify need PostgreSQL (the production database)."
        )


# --- per plugin: rollbacks, read -----------------------------------------------------------------

TOTALS_SUMMED = ("initiated", "completed", "succeeded", "failed", "duration_count", "duration_sum_ms")


def plugin_rollback_totals() -> dict[str, dict[str, int]]:
    """All-time merchant rollback figures per plugin (summed over triggers), by plugin name.

    The plain columns are read and summed here: with ``SUM()`` in SQL Django converts every
    aggregated value in Python, which for 1,000 plugins costs more than the query itself.
    """
    totals: dict[str, dict[str, int]] = {}
    for name, *values in RollbackTotals.objects.order_by("plugin_name").values_list(
        "plugin_name", *TOTALS_SUMMED
    ):
        row = totals.get(name)
        if row is None:
            totals[name] = dict(zip(TOTALS_SUMMED, values, strict=True))
        else:
            for column, value in zip(TOTALS_SUMMED, values, strict=True):
                row[column] += value
    return totals


def rollback_totals_by_trigger() -> list[dict]:
    """Every ``rollback_totals`` row as a dict (``/metrics`` reads these), by plugin and trigger."""
    return list(RollbackTotals.objects.order_by("plugin_name", "rollback_trigger").values())


def rollback_windows(now: datetime) -> dict[str, dict[str, int]]:
    """Per plugin: completed merchant rollbacks created in the last 7 days (``total_7d``, of
    which ``failed_7d``) and in the last 24 hours (``last_24h``), exactly.

    The whole UTC days inside the week come from ``rollback_daily``; only the week's partial
    first day and the last 24 hours are counted on raw rows (through the ``created_at`` index),
    so the cost is about two days of rollbacks whatever the history or the window.
    """
    from .services import completed_rollbacks  # services import this module

    week_start = now - timedelta(days=7)
    first_full_day = week_start.astimezone(UTC).date() + timedelta(days=1)
    first_midnight = datetime.combine(first_full_day, time.min, tzinfo=UTC)
    windows: dict[str, dict[str, int]] = {}

    def add(plugin: str, **counts: int) -> None:
        row = windows.setdefault(plugin, {"total_7d": 0, "failed_7d": 0, "last_24h": 0})
        for key, value in counts.items():
            row[key] += int(value or 0)

    for row in (
        RollbackDaily.objects.filter(day__gte=first_full_day)
        .values("plugin_name")
        .annotate(completed_sum=Sum("completed"), failed_sum=Sum("failed"))
        .order_by()
    ):
        add(row["plugin_name"], total_7d=row["completed_sum"], failed_7d=row["failed_sum"])
    for row in (
        completed_rollbacks()
        .filter(created_at__gte=week_start, created_at__lt=first_midnight)
        .values("plugin_name")
        .annotate(n=Count("pk"), failed=Count("pk", filter=Q(success=False)))
        .order_by()
    ):
        add(row["plugin_name"], total_7d=row["n"], failed_7d=row["failed"])
    for row in (
        completed_rollbacks()
        .filter(created_at__gte=now - timedelta(hours=24))
        .values("plugin_name")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        add(row["plugin_name"], last_24h=row["n"])
    return windows


def rollbacks_by_day(since) -> dict:
    """Completed rollbacks per UTC day since ``since`` (a date), summed over plugins."""
    rows = (
        RollbackDaily.objects.filter(day__gte=since)
        .values("day")
        .annotate(sum_succeeded=Sum("succeeded"), sum_failed=Sum("failed"))
        .order_by()
    )
    return {
        row["day"]: {"succeeded": int(row["sum_succeeded"]), "failed": int(row["sum_failed"])} for row in rows
    }


def history_version() -> tuple[int, int, object]:
    """(rollbacks started, rollbacks completed, newest row's created_at): changes whenever the
    history does. One statement, an index lookup and the totals: the same cost at any size."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT coalesce(sum(initiated), 0), coalesce(sum(completed), 0), "
            "(SELECT max(created_at) FROM plugin_rollback_history) FROM rollback_totals"
        )
        started, completed, newest = cur.fetchone()
    return int(started), int(completed), newest
