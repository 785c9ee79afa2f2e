"""Account API shapes: users, teams, members, tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from llmweb.accounts.models import ApiToken, AuditEntry, Membership, Role, Team

User = get_user_model()


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email"]


class TeamSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    name = serializers.CharField(max_length=100)

    class Meta:
        model = Team
        fields = ["id", "name", "role", "created_at"]
        read_only_fields = ["id", "role", "created_at"]

    def get_role(self, team: Team) -> str | None:
        user = self.context["request"].user
        m = next((m for m in team.memberships.all() if m.user_id == user.pk), None)
        return m.role if m else None


class MeSerializer(serializers.ModelSerializer):
    teams = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "email", "teams"]

    def get_teams(self, user) -> list[dict]:
        return [
            {"id": m.team_id, "name": m.team.name, "role": m.role}
            for m in user.memberships.select_related("team").order_by("team__name")
        ]


class MemberSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "role", "created_at"]


class InviteSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "hint", "created_at", "last_used_at"]
        read_only_fields = ["id", "hint", "created_at", "last_used_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    target = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "action", "target", "details"]

    def get_actor(self, entry: AuditEntry) -> dict:
        """``{"id", "username", "token"}``: ``token`` is the API token's name, or null for a
        browser session; ``id`` is null once the person's account is deleted."""
        return {
            "id": entry.actor_id,
            "username": entry.actor_name,
            "token": entry.token_name or None,
        }

    def get_target(self, entry: AuditEntry) -> dict:
        """``{"type", "id", "name"}`` of the record acted on (it may be gone since)."""
        return {"type": entry.target_type, "id": entry.target_id, "name": entry.target_name}
