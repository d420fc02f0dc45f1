"""Seed the two plan templates every installation starts with (plans.seeds)."""

from django.db import migrations


def seed(apps, schema_editor):
    from plans.seeds import SEEDED_TEMPLATES

    PlanTemplate = apps.get_model("plans", "PlanTemplate")
    for template in SEEDED_TEMPLATES:
        PlanTemplate.objects.update_or_create(
            slug=template["slug"],
            defaults={
                "name": template["name"],
                "description": template["description"],
                "stages": template["stages"],
                "created_by": "migration",
            },
        )


def unseed(apps, schema_editor):
    from plans.seeds import SEEDED_TEMPLATES

    PlanTemplate = apps.get_model("plans", "PlanTemplate")
    PlanTemplate.objects.filter(slug__in=[t["slug"] for t in SEEDED_TEMPLATES]).delete()


class Migration(migrations.Migration):
    dependencies = [("plans", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
