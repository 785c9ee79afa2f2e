"""Account pages: sign-up, teams and members, personal API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from llmweb.accounts import selectors, services
from llmweb.accounts.audit import audit_list_for_owner
from llmweb.accounts.middleware import SESSION_KEY
from llmweb.core.errors import DomainError
from llmweb.core.ratelimit import client_ip, rate_limit_hit
from llmweb.web.accounts import forms
from llmweb.web.common import form_error


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = forms.SignUpForm(request.POST or None)
    if request.method == "POST" and (
        wait := rate_limit_hit(
            f"signup:{client_ip(request)}", limit=settings.LLMWEB_SIGNUPS_PER_HOUR, window=3600
        )
    ):
        message = f"Too many sign-ups from your address; try again in {wait // 60 + 1} minutes."
        response = render(
            request, "registration/signup.html", {"form": form, "lockout": message}, status=429
        )
        response["Retry-After"] = str(wait)
        return response
    if request.method == "POST" and form.is_valid():
        user = form.save()
        team = services.user_signup_setup(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_KEY] = team.pk
        messages.success(request, f"Welcome, {user.username}! Your team '{team.name}' is ready.")
        return redirect("home")
    return render(
        request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200
    )


@login_required
def team_list(request):
    form = forms.TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(owner=request.user, name=form.cleaned_data["name"])
        except DomainError as exc:
            form_error(form, exc)
        else:
            request.session[SESSION_KEY] = team.pk
            messages.success(request, f"Team '{team.name}' created and selected.")
            return redirect("team-detail", team_id=team.pk)
    teams = selectors.team_list_for_user(user=request.user).prefetch_related("memberships__user")
    rows = [(t, selectors.role_of(user=request.user, team=t)) for t in teams]
    return render(
        request, "teams/list.html", {"form": form, "rows": rows}, status=400 if form.errors else 200
    )


AUDIT_PAGE_SIZE = 25


@login_required
def team_detail(request, team_id: int):
    team = selectors.team_get_for_user(user=request.user, team_id=team_id)
    invite = forms.InviteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if invite.is_valid():
            try:
                services.team_invite(by=request.user, team=team, **invite.cleaned_data)
            except DomainError as exc:
                form_error(invite, exc)
            else:
                messages.success(request, f"{invite.cleaned_data['username']} joined {team.name}.")
                return redirect("team-detail", team_id=team.pk)
        status = 400
    is_owner = selectors.is_owner(user=request.user, team=team)
    audit = None
    if is_owner:  # members and viewers do not see who did what
        audit = Paginator(audit_list_for_owner(user=request.user, team=team), AUDIT_PAGE_SIZE)
        audit = audit.get_page(request.GET.get("audit_page"))
    return render(
        request,
        "teams/detail.html",
        {
            "team": team,
            "members": selectors.member_list(team=team),
            "is_owner": is_owner,
            "invite": invite,
            "roles": forms.RoleForm.base_fields["role"].choices,
            "audit": audit,
        },
        status=status,
    )


@login_required
@require_POST
def member_role(request, team_id: int, user_id: int):
    team = selectors.team_get_for_user(user=request.user, team_id=team_id)
    membership = selectors.member_list(team=team).filter(user_id=user_id).first()
    if membership is None:
        raise Http404("No such member.")
    form = forms.RoleForm(request.POST)
    try:
        if request.POST.get("remove"):
            services.membership_remove(by=request.user, membership=membership)
            messages.success(request, f"{membership.user.username} was removed.")
        elif form.is_valid():
            services.membership_set_role(
                by=request.user, membership=membership, role=form.cleaned_data["role"]
            )
            messages.success(request, f"{membership.user.username} is now {membership.role}.")
        else:
            messages.error(request, "Pick a valid role.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("team-detail", team_id=team.pk)


@login_required
@require_POST
def team_switch(request):
    team = selectors.team_get_for_user(user=request.user, team_id=request.POST.get("team_id"))
    request.session[SESSION_KEY] = team.pk
    messages.info(request, f"Now working in {team.name}.")
    nxt = request.POST.get("next") or "/"
    return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/")


@login_required
def tokens(request):
    form = forms.TokenForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            _, secret = services.api_token_create(user=request.user, name=form.cleaned_data["name"])
            # Post/redirect/get: a reload must not mint a second token; the secret rides in
            # the session for exactly one page view.
            request.session["new_token_secret"] = secret
            return redirect("tokens")
    return render(
        request,
        "settings/tokens.html",
        {
            "form": form,
            "tokens": selectors.api_token_list(user=request.user),
            "new_secret": request.session.pop("new_token_secret", None),
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def token_revoke(request, token_id: int):
    token = selectors.api_token_get(user=request.user, token_id=token_id)
    services.api_token_revoke(by=request.user, token=token)
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("tokens")
