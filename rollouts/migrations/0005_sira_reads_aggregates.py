"""Wilson gate per rollout; the Sira SQL functions read the aggregates maintained on write.

- ``molam_wilson_lower_bound(errors, merchants)``: Wilson 95 % lower bound of the failure rate.
- ``get_rollout_merchant_counts(rollout_id)``: merchants counted, failed, upgraded, reports…
- ``get_rollout_error_rate(rollout_id)``: failed merchants / merchants counted, 0 without any
  (NULL for an unknown rollout).
- ``auto_pause_failing_rollouts()``: the Sira rule; returns the number of rollouts paused.

The migration also stamps the reports already stored for open rollouts (rollout and cohort, at
today's percentage: the percentage at the time was not recorded) and builds the aggregates, so
Sira counts correctly from the first check after the upgrade.
"""

from django.db import migrations, models

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION molam_wilson_lower_bound(errors bigint, merchants bigint)
RETURNS double precision AS $$
    -- Same operations, in the same order, as molam_upgrades.sira_rules.wilson_lower_bound().
    SELECT CASE WHEN merchants <= 0 THEN 0::float8 ELSE greatest(0::float8,
           ((p + z * z / (2 * n)) - z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)) END
      FROM (SELECT errors::float8 / nullif(merchants, 0) AS p, merchants::float8 AS n,
                   1.959963984540054::float8 AS z) v
$$ LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION get_rollout_merchant_counts(rollout_id bigint)
RETURNS TABLE (merchants bigint, merchants_failed bigint, merchants_upgraded bigint, reports bigint,
               reports_failed bigint, reports_outside_cohort bigint, error_rate numeric,
               wilson_lower_bound double precision) AS $$
    SELECT m, f, u, n, nf, o, CASE WHEN m = 0 THEN 0::numeric ELSE round(f::numeric / m, 4) END,
           molam_wilson_lower_bound(f, m)
      FROM (SELECT coalesce(sum(c.merchants), 0)::bigint AS m, coalesce(sum(c.merchants_failed), 0)::bigint AS f,
                   coalesce(sum(c.merchants_upgraded), 0)::bigint AS u, coalesce(sum(c.reports), 0)::bigint AS n,
                   coalesce(sum(c.reports_failed), 0)::bigint AS nf,
                   coalesce(sum(c.reports_outside_cohort), 0)::bigint AS o
              FROM plugin_rollouts r LEFT JOIN rollout_report_counts c ON c.rollout_id = r.id
             WHERE r.id = get_rollout_merchant_counts.rollout_id GROUP BY r.id) s
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION get_rollout_error_rate(rollout_id bigint) RETURNS numeric AS $$
    SELECT error_rate FROM get_rollout_merchant_counts(rollout_id)
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION auto_pause_failing_rollouts() RETURNS integer AS $$
DECLARE
    r plugin_rollouts%ROWTYPE;
    c record;
    reason text;
    details jsonb;
    checked integer := 0;
    paused integer := 0;
    run_id bigint;
BEGIN
    INSERT INTO sira_auto_check_runs (source, actor, started_at, checked_count, paused_count)
    VALUES ('sql', 'sira', clock_timestamp(), 0, 0) RETURNING id INTO run_id;

    SELECT count(*) INTO checked FROM plugin_rollouts WHERE status = 'active' AND sira_monitoring;
    -- Lock every candidate, in id order, before writing anything. The audit trigger takes an
    -- advisory lock until commit; a run holding it while waiting for a rollout row would deadlock
    -- with a Python run (one transaction per rollout: row lock first, then the audit insert).
    PERFORM 1
       FROM plugin_rollouts ro CROSS JOIN LATERAL get_rollout_merchant_counts(ro.id) s
      WHERE ro.status = 'active' AND ro.sira_monitoring
        AND s.merchants >= ro.min_sample_size AND s.merchants > 0
        AND CASE WHEN ro.wilson_gate THEN s.wilson_lower_bound > ro.error_threshold::float8
                 ELSE s.error_rate > ro.error_threshold END
      ORDER BY ro.id
        FOR UPDATE OF ro;
    -- Candidates from the aggregates in one statement; each is then locked and re-checked (FOR
    -- UPDATE waits for a concurrent run), so every rollout is paused once.
    FOR c IN
        SELECT ro.id, s.*
          FROM plugin_rollouts ro CROSS JOIN LATERAL get_rollout_merchant_counts(ro.id) s
         WHERE ro.status = 'active' AND ro.sira_monitoring
           AND s.merchants >= ro.min_sample_size AND s.merchants > 0
           AND CASE WHEN ro.wilson_gate THEN s.wilson_lower_bound > ro.error_threshold::float8
                    ELSE s.error_rate > ro.error_threshold END
         ORDER BY ro.id
    LOOP
        SELECT * INTO r FROM plugin_rollouts WHERE id = c.id AND status = 'active' AND sira_monitoring FOR UPDATE;
        CONTINUE WHEN NOT FOUND;

        -- The same sentence as rollouts.services.sira_reason().
        reason := format('Sira auto-pause: error rate %s%s > threshold %s (%s/%s merchants failed or rolled back)',
                         to_char(c.error_rate, 'FM0.0000'),
                         CASE WHEN r.wilson_gate
                              THEN ', 95 % lower bound ' || to_char(c.wilson_lower_bound, 'FM0.0000') ELSE '' END,
                         to_char(r.error_threshold, 'FM0.0000'), c.merchants_failed, c.merchants);
        UPDATE plugin_rollouts
           SET status = 'paused', paused_reason = reason, paused_by = 'sira', paused_at = clock_timestamp(),
               auto_paused = TRUE, updated_at = clock_timestamp()
         WHERE id = r.id;
        INSERT INTO plugin_rollback_history (
            rollback_id, merchant_id, plugin_name, from_version, to_version, rollback_trigger, success,
            duration_ms, files_restored, db_restored, rollback_reason, sira_triggered, error_rate_detected,
            rollout_id, initiated_by, created_at, completed_at)
        VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000000', r.plugin_name, r.version, r.version,
            'automatic', TRUE, 0, 0, FALSE, reason, TRUE, c.error_rate, r.id, 'sira', clock_timestamp(),
            clock_timestamp());
        INSERT INTO audit_log (actor, action, object_type, object_id, before, after, created_at, prev_hash, entry_hash)
        VALUES ('sira', 'rollout.auto_paused', 'rollouts.rollout', r.id::text,
            jsonb_build_object('status', 'active'),
            jsonb_build_object('status', 'paused', 'error_rate', to_char(c.error_rate, 'FM0.0000'),
                               'threshold', to_char(r.error_threshold, 'FM0.0000'), 'reason', reason),
            clock_timestamp(), '', 'pending-' || gen_random_uuid()::text);
        details := jsonb_build_object(
            'rollout_id', r.id, 'plugin_name', r.plugin_name, 'version', r.version,
            'error_rate', to_char(c.error_rate, 'FM0.0000'), 'threshold', to_char(r.error_threshold, 'FM0.0000'),
            'merchants_reporting', c.merchants, 'merchants_failed', c.merchants_failed,
            'upgrades_total', c.reports, 'upgrades_failed', c.reports_failed,
            'rollout_percentage', to_char(r.rollout_percentage, 'FM990.00'));
        -- Stored as pending: the send_pending_alerts task delivers it to PagerDuty.
        INSERT INTO alerts (kind, dedup_key, summary, severity, source, custom_details, status, attempts,
                            last_error, created_at)
        VALUES ('rollout_auto_paused', 'rollout-auto-paused-' || r.id,
            format('Rollout auto-paused by Sira: %s %s error rate %s%% > %s%%', r.plugin_name, r.version,
                   to_char(c.error_rate * 100, 'FM990.00'), to_char(r.error_threshold * 100, 'FM990.00')),
            'error', '', details, 'pending', 0, '', clock_timestamp());
        paused := paused + 1;
    END LOOP;

    UPDATE sira_auto_check_runs SET finished_at = clock_timestamp(), checked_count = checked, paused_count = paused
     WHERE id = run_id;
    RETURN paused;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

# The seed's versions (0003_sql_functions), for going back.
PREVIOUS = r"""
DROP FUNCTION IF EXISTS get_rollout_merchant_counts(bigint);
DROP FUNCTION IF EXISTS molam_wilson_lower_bound(bigint, bigint);
"""

STAMP = r"""
UPDATE plugin_upgrade_logs l
   SET rollout_id = r.id,
       in_cohort = molam_rollout_bucket(r.plugin_name, r.version, l.merchant_id) < r.rollout_percentage * 100
  FROM plugin_rollouts r
 WHERE l.rollout_id IS NULL AND r.status IN ('active', 'paused')
   AND l.plugin_name = r.plugin_name AND l.to_version = r.version AND l.created_at >= r.created_at
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS, params=None)
    schema_editor.execute(STAMP, params=None)
    from rollbacks.aggregates import rebuild_aggregates

    rebuild_aggregates()


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    import importlib

    seed = importlib.import_module("rollouts.migrations.0003_sql_functions")
    schema_editor.execute(PREVIOUS, params=None)
    schema_editor.execute(
        "DROP FUNCTION IF EXISTS auto_pause_failing_rollouts(); "
        "DROP FUNCTION IF EXISTS get_rollout_error_rate(bigint);",
        params=None,
    )
    schema_editor.execute(seed.FUNCTIONS, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("rollouts", "0004_full_rollout_at"),
        ("rollbacks", "0005_report_aggregates"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollout",
            name="wilson_gate",
            field=models.BooleanField(
                default=False,
                help_text="Sira pauses only when the Wilson 95 % lower bound of the failure rate exceeds the threshold.",
            ),
        ),
        migrations.RunPython(install, uninstall),
    ]
