"""Users come from django.contrib.auth; a Team is the workspace that owns everything else."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# Roles allowed to create, change or delete a team's datasets, models and jobs.
WRITE_ROLES = (Role.OWNER, Role.MEMBER)


class Team(models.Model):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership")]
        ordering = ["team_id", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class TeamScopedQuerySet(models.QuerySet):
    """The one place that scopes a team's objects to a user; pages, API and sockets use it."""

    def visible_to(self, user) -> TeamScopedQuerySet:
        if not user or not user.is_authenticated:
            return self.none()
        return self.filter(team__memberships__user=user)

    def writable_by(self, user) -> TeamScopedQuerySet:
        if not user or not user.is_authenticated:
            return self.none()
        return self.filter(team__memberships__user=user, team__memberships__role__in=WRITE_ROLES)


class ApiToken(models.Model):
    """A personal token for scripts. Only a SHA-256 digest is stored; the secret is shown once."""

    PREFIX = "llmw_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # First characters of the secret, so a person can tell tokens apart in the list.
    hint = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def digest_of(secret: str) -> str:
        # Tokens carry 256 bits of randomness, so a plain hash (no salt, no KDF) is enough.
        return hashlib.sha256(secret.encode()).hexdigest()


class AuditEntry(models.Model):
    """One line of a team's audit trail: who did what to which record, and when.

    Written by the services in the same transaction as the change (``accounts/audit.py``),
    so a refused or rolled-back action leaves no line. Names are copied, not only linked:
    the trail must still read "alice deleted dataset sms v2" after alice and the dataset
    are gone.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_entries",
    )
    actor_name = models.CharField(max_length=150)
    # The API token's name when the action came through one; blank for a browser session.
    token_name = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=40)
    target_type = models.CharField(max_length=20)
    target_id = models.BigIntegerField(null=True, blank=True)
    target_name = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["team", "-at", "-id"], name="audit_team_newest")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target_name}"
