"""Who may touch team A's objects: a matrix generated from the URL conf and websocket routes.

Every route whose path names an object (``pk``, ``dataset_id``, ``user_id``, ...) gets a
real object of team A and is tried, with each method the route allows, as: anonymous, A's
viewer, A's member, A's owner, B's owner (session) and B's API token. Nothing here lists
routes: a new route is covered the day it is added, and a new kind of path parameter
fails ``test_every_object_route_is_understood`` until the mapping below learns it.

Expectations: nobody gets a 5xx; anonymous gets 401/403 (API) or the log-in redirect
(pages); another team's owner and token get 404 (ids of other teams stay secret); A's
viewer reads but every API write is 403; A's owner and member read, except on routes
whose view requires ``IsTeamOwner`` (the audit log), where A's member and viewer get 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from llmweb.accounts import services
from llmweb.accounts.models import Role
from llmweb.api.common import IsTeamOwner
from llmweb.routing import websocket_urlpatterns
from tests.factories import (
    bundled_model,
    evaluation_with_samples,
    job_record,
    make_user,
    ready_dataset,
    sms_rows,
)

SKIP_PREFIXES = ("admin/", "accounts/", "api/schema", "api/docs", "api/redoc", "healthz")
WRITE = {"post", "put", "patch", "delete"}
# Path parameter -> which of team A's objects it names. A router's ``pk`` goes by the
# route name's first part (``dataset-rows`` -> dataset).
PARAM_OBJECTS = {
    "team_id": "team",
    "user_id": "member",
    "token_id": "token",
    "dataset_id": "dataset",
    "model_id": "model",
    "job_id": "job",
    "evaluation_id": "evaluation",
}
PK_OBJECTS = {
    "team": "team",
    "token": "token",
    "dataset": "dataset",
    "model": "model",
    "job": "job",
    "evaluation": "evaluation",
}
# Parameters that are not objects, with a valid value.
PLAIN_PARAMS = {"action": "cancel"}
# A token is personal, not a team's: A's viewer and member are strangers to alice's token.
PERSONAL = {"token"}


@dataclass
class Route:
    path: str  # with values filled in
    name: str
    methods: list[str]
    api: bool
    objects: set[str]
    owner_only: bool = False


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _params(route: str) -> list[str]:
    return re.findall(r"\(\?P<(\w+)>", route) + re.findall(r"<(?:\w+:)?(\w+)>", route)


def _object_for(param: str, name: str) -> str | None:
    if param == "pk":
        return PK_OBJECTS.get(name.split("-")[0])
    return PARAM_OBJECTS.get(param)


def object_routes() -> list[tuple[str, URLPattern]]:
    """Routes whose path names an object (skipping format-suffix twins and auth pages)."""
    out = []
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith(SKIP_PREFIXES) or "format" in _params(route):
            continue
        if any(p not in PLAIN_PARAMS for p in _params(route)):
            out.append((route, pattern))
    return out


def fill(route: str, values: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        return values[m.group(1)]

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", one, route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", one, path)
    return "/" + path.replace("^", "").replace("$", "")


def build_routes(ids: dict[str, int]) -> list[Route]:
    routes = []
    for route, pattern in object_routes():
        name = pattern.name or ""
        values, objects = {}, set()
        for param in _params(route):
            if param in PLAIN_PARAMS:
                values[param] = PLAIN_PARAMS[param]
                continue
            kind = _object_for(param, name)
            values[param] = str(ids[kind])
            objects.add(kind)
        actions = getattr(pattern.callback, "actions", None)
        methods = sorted(actions) if actions else ["get", "post"]
        view = getattr(pattern.callback, "cls", None)
        owner_only = IsTeamOwner in getattr(view, "permission_classes", ())
        routes.append(
            Route(fill(route, values), name, methods, route.startswith("api/"), objects, owner_only)
        )
    return routes


def test_every_object_route_is_understood():
    unknown = {
        (route, param)
        for route, pattern in object_routes()
        for param in _params(route)
        if param not in PLAIN_PARAMS and _object_for(param, pattern.name or "") is None
    }
    assert not unknown, f"teach PARAM_OBJECTS/PK_OBJECTS these path parameters: {unknown}"
    assert len(object_routes()) >= 20  # the walk found the API and the pages


@pytest.fixture
def world(db, alice, bob, charlie, team, charlie_team):
    vera = make_user("vera")
    services.team_invite(by=alice, team=team, username="vera", role=Role.VIEWER)
    token, _ = services.api_token_create(user=alice, name="alice's laptop")
    _, charlie_secret = services.api_token_create(user=charlie, name="charlie's script")
    dataset = ready_dataset(team, "classification", sms_rows(40))
    model = bundled_model(team)
    job = job_record(team=team, base_model=model, dataset=dataset)
    evaluation = evaluation_with_samples(model=model, dataset=dataset, job=job)
    ids = {
        "team": team.pk,
        "member": bob.pk,
        "token": token.pk,
        "dataset": dataset.pk,
        "model": model.pk,
        "job": job.pk,
        "evaluation": evaluation.pk,
    }
    return {
        "users": {"alice": alice, "bob": bob, "vera": vera, "charlie": charlie},
        "charlie_secret": charlie_secret,
        "ids": ids,
    }


def _client(persona: str, world, api: bool):
    if persona == "charlie-token":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['charlie_secret']}")
        return client
    client = APIClient() if api else Client()
    if persona != "anonymous":
        client.force_login(world["users"][persona])
    return client


def _call(client, method: str, path: str):
    kwargs = {"format": "json"} if isinstance(client, APIClient) else {}
    body = {} if method in WRITE else None
    return getattr(client, method)(path, body, **kwargs) if body is not None else client.get(path)


PERSONAS = ["anonymous", "charlie", "charlie-token", "vera", "bob", "alice"]


@pytest.mark.django_db
def test_authorization_matrix(world):
    routes = build_routes(world["ids"])
    failures, tried = [], 0
    for persona in PERSONAS:
        for route in routes:
            if persona == "charlie-token" and not route.api:
                continue  # tokens authenticate the API only
            for method in route.methods:
                if persona in ("alice", "bob") and method in WRITE:
                    continue  # allowed writes would change the objects the others try
                client = _client(persona, world, route.api)
                r = _call(client, method, route.path)
                tried += 1
                code = r.status_code
                problem = None
                if code >= 500:
                    problem = "server error"
                elif persona == "anonymous":
                    login = code == 302 and "/accounts/login/" in r.get("Location", "")
                    if not (code in (401, 403) if route.api else login or code == 405):
                        problem = "anonymous got in"
                elif persona.startswith("charlie"):
                    if code not in (404, 405):
                        problem = "another team's object is not 404"
                elif route.objects & PERSONAL and persona in ("vera", "bob"):
                    if code not in (404, 405):
                        problem = "someone else's token is not 404"
                elif route.owner_only and persona in ("vera", "bob"):
                    if code not in (403, 405):
                        problem = "a non-owner reached an owner-only route"
                elif persona == "vera" and method in WRITE and route.api:
                    if code not in (403, 405):  # 405: the method is nobody's (PUT of a team)
                        problem = "a viewer's write is not 403"
                elif method == "get" and code in (401, 403, 404):
                    problem = "a member cannot read"
                if problem:
                    failures.append(
                        f"{persona:13} {method.upper():6} {route.path} -> {code}: {problem}"
                    )
    assert tried > 150
    assert any(r.owner_only for r in routes)  # the audit log is tried as owner-only
    assert not failures, "\n".join(failures)


def _ws_close_code(path: str, cookie: str | None) -> int | None:
    """None when the socket was accepted and sent its snapshot; else the close code."""

    async def talk():
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if cookie:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
        comm = WebsocketCommunicator(application(), path, headers=headers)
        await comm.connect()
        message = await comm.receive_output(timeout=10)
        await comm.disconnect()
        return message.get("code") if message["type"] == "websocket.close" else None

    return async_to_sync(talk)()


def application():
    from llmweb.asgi import application as app

    return app


@pytest.mark.django_db(transaction=True)
def test_websocket_routes_follow_the_same_rules(world):
    expected = {"anonymous": 4401, "charlie": 4404, "vera": None, "alice": None}
    for pattern in websocket_urlpatterns:
        route = str(pattern.pattern)
        params = _params(route)
        if not params:
            continue
        path = fill(route, {p: str(world["ids"][PARAM_OBJECTS[p]]) for p in params})
        for persona, code in expected.items():
            cookie = None
            if persona != "anonymous":
                client = Client()
                client.force_login(world["users"][persona])
                cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
            assert _ws_close_code(path, cookie) == code, (persona, path)
