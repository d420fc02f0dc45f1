"""``rollout`` (a foreign key to rollouts) becomes the plain column ``rollout_id``.

The column, its values and its index stay; only the FK constraint goes, so this app no longer
depends on ``rollouts`` (which depends on it for upgrade reports). Reversible.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rollbacks", "0003_covering_rollout_index"),
    ]

    operations = [
        # 1. Drop the database constraint (Django knows its generated name).
        migrations.AlterField(
            model_name="rollbackhistory",
            name="rollout",
            field=models.ForeignKey(
                blank=True,
                null=True,
                db_constraint=False,
                on_delete=models.deletion.DO_NOTHING,
                related_name="+",
                to="rollouts.rollout",
            ),
        ),
        # 2. In the model state only: the same column, now a plain indexed bigint.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="rollbackhistory", name="rollout"),
                migrations.AddField(
                    model_name="rollbackhistory",
                    name="rollout_id",
                    field=models.BigIntegerField(blank=True, db_index=True, null=True),
                ),
            ],
        ),
    ]
