"""Account endpoints: me, teams and members, personal tokens."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from llmweb.accounts import selectors, services
from llmweb.accounts.audit import audit_list_for_owner
from llmweb.accounts.models import ApiToken, AuditEntry, Membership
from llmweb.api.accounts import serializers as s
from llmweb.api.common import IsTeamOwner


class MeApi(APIView):
    @extend_schema(responses=s.MeSerializer)
    def get(self, request):
        return Response(s.MeSerializer(request.user).data)


class TeamViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.TeamSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.team_list_for_user(user=self.request.user).prefetch_related("memberships")

    def get_object(self):
        return selectors.team_get_for_user(user=self.request.user, team_id=self.kwargs["pk"])

    def perform_create(self, serializer):
        serializer.instance = services.team_create(
            owner=self.request.user, name=serializer.validated_data["name"]
        )

    def perform_update(self, serializer):
        team = serializer.instance
        # A PATCH without `name` renames nothing (it answered 500 before).
        name = serializer.validated_data.get("name", team.name)
        serializer.instance = services.team_rename(by=self.request.user, team=team, name=name)

    def _membership(self, team, user_id) -> Membership:
        m = selectors.member_list(team=team).filter(user_id=user_id).first()
        if m is None:
            raise Http404("No such member.")
        return m

    @extend_schema(request=s.InviteSerializer, responses=s.MemberSerializer(many=True))
    # A plain list, not a page: the schema must not promise pagination.
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request, pk=None):
        team = self.get_object()
        if request.method == "POST":
            # Permission before validation: a viewer's write is 403 whatever the body says.
            if not selectors.is_owner(user=request.user, team=team):
                raise PermissionDenied("Only an owner can invite people to this team.")
            data = s.InviteSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            m = services.team_invite(by=request.user, team=team, **data.validated_data)
            return Response(s.MemberSerializer(m).data, status=status.HTTP_201_CREATED)
        return Response(s.MemberSerializer(selectors.member_list(team=team), many=True).data)

    @extend_schema(request=s.RoleSerializer, responses=s.MemberSerializer)
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>[0-9]{1,18})")
    def member(self, request, pk=None, user_id=None):
        team = self.get_object()
        m = self._membership(team, user_id)
        if request.method == "DELETE":
            services.membership_remove(by=request.user, membership=m)
            return Response(status=status.HTTP_204_NO_CONTENT)
        if not selectors.is_owner(user=request.user, team=team):
            raise PermissionDenied("Only an owner can change roles.")
        data = s.RoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        m = services.membership_set_role(
            by=request.user, membership=m, role=data.validated_data["role"]
        )
        return Response(s.MemberSerializer(m).data)


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.ApiTokenSerializer
    queryset = ApiToken.objects.none()

    def get_queryset(self):
        return selectors.api_token_list(user=self.request.user)

    def get_object(self):
        return selectors.api_token_get(user=self.request.user, token_id=self.kwargs["pk"])

    @extend_schema(responses={201: s.ApiTokenCreatedSerializer})
    def create(self, request, *args, **kwargs):
        data = s.ApiTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.api_token_create(
            user=request.user, name=data.validated_data["name"]
        )
        body = s.ApiTokenSerializer(token).data | {"token": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.api_token_revoke(by=self.request.user, token=instance)


class TeamAuditApi(generics.ListAPIView):
    """The team's audit log, newest first, a page at a time; owners only."""

    serializer_class = s.AuditEntrySerializer
    permission_classes = [IsAuthenticated, IsTeamOwner]
    queryset = AuditEntry.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no team
            return AuditEntry.objects.none()
        team = selectors.team_get_for_user(user=self.request.user, team_id=self.kwargs["pk"])
        return audit_list_for_owner(user=self.request.user, team=team)
