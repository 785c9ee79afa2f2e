"""Idempotent first-run setup: the admin account, its team, and the demo content."""

from __future__ import annotations

import argparse
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from llmweb.accounts.models import Membership, Role, Team


class Command(BaseCommand):
    help = "Create the first admin and a demo team (safe to run on every start)."

    def add_arguments(self, parser):
        parser.add_argument("--admin-user", default=os.environ.get("LLMWEB_ADMIN_USER", "admin"))
        # The password comes from LLMWEB_ADMIN_PASSWORD: a command line is visible to every
        # user of the host in `ps`. The option stays for call_command from Python.
        parser.add_argument("--admin-password", help=argparse.SUPPRESS)

    def handle(self, *args, admin_user: str, admin_password: str | None, **options):
        admin_password = admin_password or os.environ.get("LLMWEB_ADMIN_PASSWORD")
        if not admin_password:
            raise CommandError("Set LLMWEB_ADMIN_PASSWORD to the first admin's password.")
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
