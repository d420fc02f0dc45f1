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


def cohort_merchant(plugin_name: str, version: str) -> uuid.UUID:
    """A merchant the plugin's open rollout of ``version`` selected (any merchant when it has none)."""
    from rollouts.choices import OPEN_STATES
    from rollouts.cohort import bucket_for, selected
    from rollouts.models import Rollout

    rollout = Rollout.objects.filter(plugin_name=plugin_name, status__in=OPEN_STATES, version=version).first()
    if rollout is None or rollout.rollout_percentage <= 0:
        return uuid.uuid4()
    while True:
        merchant = uuid.uuid4()
        if selected(bucket_for(plugin_name, version, merchant), rollout.rollout_percentage):
            return merchant


class UpgradeLogFactory(factory.django.DjangoModelFactory):
    """An upgrade report from a merchant in the rollout's cohort, unless ``merchant_id`` is given."""

    class Meta:
        model = UpgradeLog

    merchant_id = factory.LazyAttribute(lambda log: cohort_merchant(log.plugin_name, log.to_version))
    plugin_name = "woocommerce"
    from_version = "3.9.0"
    to_version = "4.0.0"
    status = UpgradeStatus.SUCCESS

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Through the service, so the report is stamped and counted like one sent over the API.
        from rollbacks.services import store_report

        return store_report(model_class(*args, **kwargs))


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

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Counted in the aggregates as the services count a rollback initiated (and completed).
        from django.db import transaction

        from rollbacks import aggregates

        with transaction.atomic():
            rollback = super()._create(model_class, *args, **kwargs)
            aggregates.count_rollback_initiated(rollback)
            if rollback.completed_at is not None:
                aggregates.count_rollback_completed(rollback)
        return rollback


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
