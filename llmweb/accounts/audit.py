"""The team audit trail: one writer the services call, one reader for owners.

Why not django-auditlog: it records model saves through signals, and the changes that
matter here are not saves. A job is submitted, cancelled and deleted through conditional
``UPDATE``/``DELETE`` querysets (``jobs/services.py``) that send no signals, a token
request's user is known only inside the DRF view (after any middleware has run), and the
trail needs the team and the token's name on every line. Job events are a different
thing: a job's own progress stream for its page, deleted with the job. So the services
call :func:`audit_record` inside the transaction of the change they make.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models

from llmweb.accounts.models import ApiToken, AuditEntry, Membership, Team
from llmweb.accounts.selectors import is_owner

# Record class -> the target type people read (model names are not the product's words).
_TYPES = {"registeredmodel": "model", "membership": "member", "apitoken": "token"}


def via_token(user: Any) -> ApiToken | None:
    """The API token this request's user authenticated with, if any.

    ``ApiTokenAuthentication`` puts it on the user object it returns (as Django's
    ``authenticate`` puts ``backend`` on its user); that object lives for one request.
    """
    return getattr(user, "via_token", None)


def _target(obj: models.Model) -> tuple[str, int | None, str]:
    if isinstance(obj, Membership):
        return "member", obj.user_id, obj.user.username
    kind = obj._meta.model_name or "record"
    return _TYPES.get(kind, kind), obj.pk, str(obj)[:200]


def audit_record(
    *,
    actor: Any,
    team: Team,
    action: str,
    target: models.Model,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one line to ``team``'s trail; call it inside the change's own transaction.

    Args:
        actor: the person (``request.user``); a token request's user names its token.
        action: ``<target>.<verb>``, e.g. ``dataset.upload``, ``member.role_change``.
        target: the record acted on; read before a delete, since its id goes with it.
        details: a few facts worth keeping, e.g. ``{"from": "member", "to": "viewer"}``.
    """
    target_type, target_id, target_name = _target(target)
    token = via_token(actor)
    return AuditEntry.objects.create(
        team=team,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=getattr(actor, "username", "") or "",
        token_name=token.name if token is not None else "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_name=target_name,
        details=details or {},
    )


def audit_list_for_owner(*, user: Any, team: Team) -> models.QuerySet[AuditEntry]:
    """The team's trail, newest first; only owners read it (members and viewers get 403).

    The caller has already scoped ``team`` to the user (404 for other teams).
    """
    if not is_owner(user=user, team=team):
        raise PermissionDenied("Only an owner can read the team's audit log.")
    return AuditEntry.objects.filter(team=team).order_by("-at", "-id")
