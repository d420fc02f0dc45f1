"""PostgreSQL trigger: completed rollback history rows cannot be updated; no row can be deleted."""

from django.db import migrations

TRIGGER = """
CREATE OR REPLACE FUNCTION plugin_rollback_history_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'plugin_rollback_history is an immutable audit trail: DELETE refused (rollback %)',
            OLD.rollback_id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.completed_at IS NOT NULL THEN
        RAISE EXCEPTION 'rollback % is completed and immutable: UPDATE refused', OLD.rollback_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS plugin_rollback_history_immutable ON plugin_rollback_history;
CREATE TRIGGER plugin_rollback_history_immutable
    BEFORE UPDATE OR DELETE ON plugin_rollback_history
    FOR EACH ROW EXECUTE FUNCTION plugin_rollback_history_immutable();
"""

DROP = """
DROP TRIGGER IF EXISTS plugin_rollback_history_immutable ON plugin_rollback_history;
DROP FUNCTION IF EXISTS plugin_rollback_history_immutable();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("rollbacks", "0001_initial")]

    operations = [migrations.RunPython(install, drop)]
