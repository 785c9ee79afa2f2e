"""Idempotent first-run setup: the admin account, its team, and the demo content."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from llmweb.accounts.models import Membership, Role, Team


class Command(BaseCommand):
    help = "Create the first admin and a demo team (safe to run on every start)."

    def add_arguments(self, parser):
        parser.add_argument("--admin-user", default="admin")
        parser.add_argument("--admin-password", required=True)

    def handle(self, *args, admin_user: str, admin_password: str, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=admin_user, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or not user.check_password(admin_password):
            user.set_password(admin_password)
            user.is_staff = user.is_superuser = True
            user.save()
        team = Team.objects.filter(name="Demo team").order_by("id").first()
        if team is None:
            team = Team.objects.create(name="Demo team")
        Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.OWNER})
        from llmweb.catalog.seed import seed_demo

        seed_demo(team=team, user=user, stdout=self.stdout)
