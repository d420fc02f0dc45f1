"""PostgreSQL computes the audit log's hash chain itself, for every writer (app or SQL)."""

from django.db import migrations

CHAIN = r"""
CREATE OR REPLACE FUNCTION audit_log_entry_hash(prev text, a audit_log) RETURNS text AS $$
    SELECT encode(sha256(convert_to(
        prev || concat_ws(E'\n',
            a.actor, a.action, a.object_type, a.object_id,
            coalesce(a.before::text, 'null'), coalesce(a.after::text, 'null'),
            to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
        'UTF8')), 'hex')
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger AS $$
DECLARE
    last_hash text;
BEGIN
    -- One writer at a time, and ids taken under the lock, so id order is chain order.
    PERFORM pg_advisory_xact_lock(1150001);
    NEW.id := nextval(pg_get_serial_sequence('audit_log', 'id'));
    SELECT entry_hash INTO last_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
    NEW.created_at := coalesce(NEW.created_at, clock_timestamp());
    NEW.entry_hash := audit_log_entry_hash(NEW.prev_hash, NEW);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_log_chain ON audit_log;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_log_chain ON audit_log;
DROP FUNCTION IF EXISTS audit_log_chain();
DROP FUNCTION IF EXISTS audit_log_entry_hash(text, audit_log);
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CHAIN, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("molam_upgrades", "0002_roles_and_audit_trigger")]

    operations = [migrations.RunPython(install, drop)]
