"""``seed_demo``: realistic demo data for the ops dashboards, and three demo users.

Running it twice changes nothing the second time: users are updated in place, and each app's
demo data (``molam_upgrades.registry.register_demo_data``: releases and rollouts, rollback
history …) is only written when it is missing.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from molam_upgrades import registry
from molam_upgrades.choices import Role
from molam_upgrades.demo import DEMO_PASSWORD, DEMO_USERS

__all__ = ["DEMO_PASSWORD", "Command"]


class Command(BaseCommand):
    help = "Load demo data (plugins, rollouts in every state, rollback history) and demo users."

    def handle(self, *args, **options) -> None:
        self.seed_users()
        for demo in registry.demo_data():
            demo.seed(self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready. Sign in at /login/ with:"))
        for username, role, _, description in DEMO_USERS:
            self.stdout.write(f"  {username:<7} / {DEMO_PASSWORD}   ({role}: {description})")

    # -- users ------------------------------------------------------------------------------
    def seed_users(self) -> None:
        for username, role, is_staff, _ in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@demo.molam.example"}
            )
            user.is_staff = is_staff
            user.is_superuser = role == Role.PAY_ADMIN
            user.set_password(DEMO_PASSWORD)
            user.save()
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
