"""SQL functions for ops using psql (seed 115ter): the same rules as the Python services.

- ``molam_rollout_bucket(plugin, version, merchant)``: the cohort bucket (0–9999).
- ``should_merchant_upgrade(merchant uuid, plugin text, country text, tier text)``.
- ``get_rollout_error_rate(rollout_id)``: (failed + rolled_back) / total, 0 without reports.
- ``auto_pause_failing_rollouts()``: the Sira rule; returns the number of rollouts paused.
"""

from django.db import migrations

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION molam_rollout_bucket(plugin text, version text, merchant uuid)
RETURNS integer AS $$
    SELECT (('x' || substr(encode(sha256(convert_to(
        plugin || ':' || version || ':' || lower(merchant::text), 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint
        % 10000)::integer
$$ LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION should_merchant_upgrade(
    merchant uuid, plugin text, country text DEFAULT NULL, tier text DEFAULT NULL
) RETURNS boolean AS $$
DECLARE
    r plugin_rollouts%ROWTYPE;
BEGIN
    SELECT * INTO r FROM plugin_rollouts WHERE plugin_name = plugin AND status = 'active' LIMIT 1;
    IF NOT FOUND OR merchant IS NULL THEN
        RETURN FALSE;
    END IF;
    IF r.rollout_strategy = 'geo'
       AND (country IS NULL OR NOT (r.target_countries ? upper(country))) THEN
        RETURN FALSE;
    END IF;
    IF r.rollout_strategy = 'merchant_tier'
       AND (tier IS NULL OR NOT (r.target_tiers ? lower(tier))) THEN
        RETURN FALSE;
    END IF;
    RETURN molam_rollout_bucket(r.plugin_name, r.version, merchant) < r.rollout_percentage * 100;
END;
$$ LANGUAGE plpgsql STABLE;

CREATE OR REPLACE FUNCTION get_rollout_error_rate(rollout_id bigint) RETURNS numeric AS $$
    SELECT CASE WHEN count(l.id) = 0 THEN 0::numeric
                ELSE round((count(l.id) FILTER (WHERE l.status IN ('failed', 'rolled_back')))::numeric
                           / count(l.id), 4) END
    FROM plugin_rollouts r
    LEFT JOIN plugin_upgrade_logs l
           ON l.plugin_name = r.plugin_name AND l.to_version = r.version AND l.created_at >= r.created_at
    WHERE r.id = rollout_id
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION auto_pause_failing_rollouts() RETURNS integer AS $$
DECLARE
    r plugin_rollouts%ROWTYPE;
    total bigint;
    errors bigint;
    rate numeric;
    reason text;
    details jsonb;
    checked integer := 0;
    paused integer := 0;
    run_id bigint;
BEGIN
    INSERT INTO sira_auto_check_runs (source, actor, started_at, checked_count, paused_count)
    VALUES ('sql', 'sira', clock_timestamp(), 0, 0) RETURNING id INTO run_id;

    -- FOR UPDATE waits for a concurrent run and re-checks status: each rollout is paused once.
    FOR r IN SELECT * FROM plugin_rollouts WHERE status = 'active' AND sira_monitoring ORDER BY id FOR UPDATE
    LOOP
        checked := checked + 1;
        SELECT count(*), count(*) FILTER (WHERE status IN ('failed', 'rolled_back'))
          INTO total, errors
          FROM plugin_upgrade_logs
         WHERE plugin_name = r.plugin_name AND to_version = r.version AND created_at >= r.created_at;
        rate := CASE WHEN total = 0 THEN 0 ELSE round(errors::numeric / total, 4) END;
        CONTINUE WHEN total < r.min_sample_size OR rate <= r.error_threshold;

        reason := format('Sira auto-pause: error rate %s > threshold %s (%s/%s upgrades failed or rolled back)',
                         to_char(rate, 'FM0.0000'), to_char(r.error_threshold, 'FM0.0000'), errors, total);
        UPDATE plugin_rollouts
           SET status = 'paused', paused_reason = reason, paused_by = 'sira', paused_at = clock_timestamp(),
               auto_paused = TRUE, updated_at = clock_timestamp()
         WHERE id = r.id;
        INSERT INTO plugin_rollback_history (
            rollback_id, merchant_id, plugin_name, from_version, to_version, rollback_trigger, success,
            duration_ms, files_restored, db_restored, rollback_reason, sira_triggered, error_rate_detected,
            rollout_id, initiated_by, created_at, completed_at)
        VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000000', r.plugin_name, r.version, r.version,
            'automatic', TRUE, 0, 0, FALSE, reason, TRUE, rate, r.id, 'sira', clock_timestamp(), clock_timestamp());
        INSERT INTO audit_log (actor, action, object_type, object_id, before, after, created_at, prev_hash, entry_hash)
        VALUES ('sira', 'rollout.auto_paused', 'rollouts.rollout', r.id::text,
            jsonb_build_object('status', 'active'),
            jsonb_build_object('status', 'paused', 'error_rate', to_char(rate, 'FM0.0000'),
                               'threshold', to_char(r.error_threshold, 'FM0.0000'), 'reason', reason),
            clock_timestamp(), '', 'pending-' || gen_random_uuid()::text);
        details := jsonb_build_object(
            'rollout_id', r.id, 'plugin_name', r.plugin_name, 'version', r.version,
            'error_rate', to_char(rate, 'FM0.0000'), 'threshold', to_char(r.error_threshold, 'FM0.0000'),
            'upgrades_total', total, 'upgrades_failed', errors,
            'rollout_percentage', to_char(r.rollout_percentage, 'FM990.00'));
        -- Stored as pending: the send_pending_alerts task delivers it to PagerDuty.
        INSERT INTO alerts (kind, dedup_key, summary, severity, source, custom_details, status, attempts,
                            last_error, created_at)
        VALUES ('rollout_auto_paused', 'rollout-auto-paused-' || r.id,
            format('Rollout auto-paused by Sira: %s %s error rate %s%% > %s%%', r.plugin_name, r.version,
                   to_char(rate * 100, 'FM990.00'), to_char(r.error_threshold * 100, 'FM990.00')),
            'error', '', details, 'pending', 0, '', clock_timestamp());
        paused := paused + 1;
    END LOOP;

    UPDATE sira_auto_check_runs SET finished_at = clock_timestamp(), checked_count = checked, paused_count = paused
     WHERE id = run_id;
    RETURN paused;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

DROP = """
DROP FUNCTION IF EXISTS auto_pause_failing_rollouts();
DROP FUNCTION IF EXISTS get_rollout_error_rate(bigint);
DROP FUNCTION IF EXISTS should_merchant_upgrade(uuid, text, text, text);
DROP FUNCTION IF EXISTS molam_rollout_bucket(text, text, uuid);
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("rollouts", "0002_auto_check_runs"),
        ("rollbacks", "0002_immutable_history_trigger"),
        ("molam_upgrades", "0003_audit_hash_chain"),
    ]

    operations = [migrations.RunPython(install, drop)]
