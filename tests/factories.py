"""factory-boy factories for the control plane's tables."""

from __future__ import annotations

import uuid

import factory
from django.contrib.auth.models import Group, User

from backups.models import PluginBackup
from rollbacks.choices import RollbackTrigger, UpgradeStatus
from rollbacks.models import RollbackHistory, UpgradeLog


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@molam.example")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            for role in extracted:
                self.groups.add(Group.objects.get(name=role))
        if create:
            self.save()


class UpgradeLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UpgradeLog

    merchant_id = factory.LazyFunction(uuid.uuid4)
    plugin_name = "woocommerce"
    from_version = "3.9.0"
    to_version = "4.0.0"
    status = UpgradeStatus.SUCCESS


class RollbackFactory(factory.django.DjangoModelFactory):
    """A rollback; completed and successful unless told otherwise."""

    class Meta:
        model = RollbackHistory

    merchant_id = factory.LazyFunction(uuid.uuid4)
    plugin_name = "woocommerce"
    from_version = "4.0.0"
    to_version = "3.9.0"
    rollback_trigger = RollbackTrigger.AUTOMATIC
    success = True
    duration_ms = 1500
    files_restored = 125
    db_restored = True
    rollback_reason = "Upgrade verification failed"
    completed_at = factory.SelfAttribute("created_at")
    created_at = factory.Faker("date_time_this_month", tzinfo=__import__("datetime").UTC)


class PendingRollbackFactory(RollbackFactory):
    success = None
    duration_ms = None
    files_restored = None
    db_restored = None
    completed_at = None
    rollback_trigger = RollbackTrigger.OPERATOR_FORCED


class BackupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PluginBackup

    merchant_id = factory.LazyFunction(uuid.uuid4)
    plugin_name = "woocommerce"
    version = "3.9.0"
    backup_path = factory.LazyAttribute(
        lambda b: f"/var/lib/molam-agent/backups/{b.plugin_name}-{b.version}.tar.enc"
    )


class RolloutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "rollouts.Rollout"

    plugin_name = factory.Sequence(lambda n: f"plugin-{n}")
    version = "4.0.0"
    rollout_percentage = 10
    rollout_strategy = "random"
    status = "active"


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "rollouts.Release"

    plugin_name = "woocommerce"
    version = "4.0.0"
    download_url = factory.LazyAttribute(
        lambda r: f"https://releases.molam.example/{r.plugin_name}-{r.version}.zip"
    )
    sha256 = "b" * 64
