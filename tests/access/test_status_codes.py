"""401 for missing or bad credentials, 404 for what the caller cannot see, 403 for what it cannot change."""
from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from agents.contracts import UpdateAgent
from agents.services import update_agent

pytestmark = pytest.mark.django_db


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def assert_unauthenticated(response) -> None:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Bearer"
    assert set(response.json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer ",
        "Bearer not-a-key",
        "Bearer tmws_0000000000000000_wrong",
        "Bearer tmws__",
        "Bearer a b",
        "Basic b3BlcmF0b3I6d3Jvbmc=",  # operator:wrong
        "Token something",
    ],
)
def test_missing_or_malformed_credentials_answer_401(world, authorization):
    # given
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    # when
    responses = [
        client.get("/api/v2/memories"),
        client.get(f"/api/v2/memories/{world.ids['public']}"),
        client.post("/api/v2/memories/search", {"query": "anything"}, format="json"),
        client.post("/api/v2/memories", {"content": "x", "namespace": "team"}, format="json"),
    ]
    # then (an unknown scheme such as "Token" is no credential at all: the request is anonymous)
    for response in responses:
        assert_unauthenticated(response)


def test_a_wrong_secret_for_a_real_key_answers_401(world):
    # given: the right key id with another secret
    key = world.cast["owner"].key
    forged = key[: key.rindex("_") + 1] + "x" * 43
    # when
    response = bearer(forged).get("/api/v2/memories")
    # then
    assert_unauthenticated(response)


def test_a_rotated_away_key_answers_401_and_the_new_one_works(world):
    # given
    owner = world.cast["owner"]
    old_key = owner.key
    # when
    rotated = owner.client.post("/api/v2/agents/owner-agent/rotate-key")
    # then
    assert rotated.status_code == 200, rotated.content
    new_key = rotated.json()["api_key"]
    assert_unauthenticated(bearer(old_key).get("/api/v2/memories"))
    assert bearer(new_key).get(f"/api/v2/memories/{world.ids['private']}").status_code == 200


def test_an_inactive_agent_answers_401_with_its_still_valid_key(world, operator_user):
    # given
    owner = world.cast["owner"]
    update_agent(operator_user, owner.agent, UpdateAgent.parse({"is_active": False}))
    # when
    response = owner.client.get(f"/api/v2/memories/{world.ids['private']}")
    # then
    assert_unauthenticated(response)


def test_a_retired_agent_answers_401(world, operator_client):
    # given
    retired = operator_client.delete("/api/v2/agents/member-agent")
    # when
    response = world.cast["member"].client.get("/api/v2/memories")
    # then
    assert retired.status_code == 204, retired.content
    assert_unauthenticated(response)


def test_a_hidden_memory_and_a_missing_one_look_the_same(world):
    # given
    outsider = world.clients["outsider"]
    # when
    hidden = outsider.get(f"/api/v2/memories/{world.ids['private']}")
    missing = outsider.get(f"/api/v2/memories/{uuid.uuid4()}")
    malformed = outsider.get("/api/v2/memories/not-a-uuid")
    # then
    assert hidden.status_code == missing.status_code == malformed.status_code == 404
    bodies = [response.json() for response in (hidden, missing, malformed)]
    for body, response in zip(bodies, (hidden, missing, malformed), strict=True):
        assert body["error"].pop("request_id") == response["X-Request-Id"]  # each request has its own id
    assert bodies[0] == bodies[1] == bodies[2]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("patch", "", {"content": "tampered"}),
        ("delete", "", None),
        ("post", "/share", {"agent_ids": ["outsider-agent"]}),
        ("delete", "/share", {"agent_ids": ["sharee-agent"]}),
        ("post", "/feedback", {"useful": True}),
    ],
)
def test_writes_on_hidden_memories_answer_404_and_on_read_only_ones_403(world, method, suffix, body):
    # given
    outsider, member = world.clients["outsider"], world.clients["member"]
    before = {level: world.snapshot(level) for level in ("private", "shared")}
    # when
    hidden = getattr(outsider, method)(f"/api/v2/memories/{world.ids['private']}{suffix}", body, format="json")
    read_only = getattr(member, method)(f"/api/v2/memories/{world.ids['shared']}{suffix}", body, format="json")
    # then
    assert hidden.status_code == 404, hidden.content
    if suffix == "/feedback":
        assert read_only.status_code == 200  # readers may say whether a memory helped
    else:
        assert read_only.status_code == 403, read_only.content
        assert world.snapshot("shared") == before["shared"]
    assert world.snapshot("private") == before["private"]


@pytest.mark.parametrize(
    ("principal", "path", "expected"),
    [
        ("outsider", "/api/v2/namespaces/team", 404),  # invite-only and not a member: invisible
        ("descendant", "/api/v2/namespaces/team", 200),  # an ancestor of its own namespace
        ("member", "/api/v2/namespaces/squad", 404),  # descendants are not visible upwards
        ("member", "/api/v2/namespaces/no-such-space", 404),
    ],
)
def test_namespace_visibility(world, principal, path, expected):
    # when
    response = world.clients[principal].get(path)
    # then
    assert response.status_code == expected, response.content


def test_a_visible_namespace_the_agent_cannot_change_answers_403(world):
    # when
    response = world.clients["member"].patch("/api/v2/namespaces/team", {"description": "mine now"}, format="json")
    # then
    assert response.status_code == 403, response.content
    assert world.clients["member"].get("/api/v2/namespaces/team").json()["description"] == ""
