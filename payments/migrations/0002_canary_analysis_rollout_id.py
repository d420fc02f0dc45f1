# The canary verdict refers to its rollout by a plain id: a foreign key took a share lock on the
# rollout row at every write, which deadlocked with Sira runs locking that row to pause it.

from django.db import migrations, models


def forget_verdicts(apps, schema_editor):
    # Verdicts are recomputed at the next Sira run; nothing is lost.
    apps.get_model("payments", "CanaryAnalysis").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forget_verdicts, migrations.RunPython.noop),
        migrations.RemoveField(model_name="canaryanalysis", name="rollout"),
        migrations.AddField(
            model_name="canaryanalysis",
            name="rollout_id",
            field=models.BigIntegerField(unique=True, default=0),
            preserve_default=False,
        ),
    ]
