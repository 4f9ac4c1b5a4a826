"""Namespaces API: create, list, read, change and delete, and the errors on each (deep access rules live in tests/access)."""
from __future__ import annotations

import pytest

from memories.models import Memory
from namespaces.models import Namespace


def test_operator_creates_a_child_namespace(operator_client, make_namespace):
    # given
    make_namespace("company")
    # when
    response = operator_client.post(
        "/api/v2/namespaces",
        {"namespace": "research", "display_name": "Research", "access_policy": "open",
         "parent_namespace": "company", "description": "R&D notes"},
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("namespace", "display_name", "access_policy", "parent_namespace", "path", "depth",
                                 "description")} == {
        "namespace": "research", "display_name": "Research", "access_policy": "open", "parent_namespace": "company",
        "path": "company/research", "depth": 1, "description": "R&D notes",
    }


def test_list_and_get_namespaces(operator_client, make_namespace):
    # given
    make_namespace("company")
    make_namespace("team", parent="company")
    # when
    listed = operator_client.get("/api/v2/namespaces")
    children = operator_client.get("/api/v2/namespaces", {"parent_namespace": "company"})
    detail = operator_client.get("/api/v2/namespaces/team")
    missing = operator_client.get("/api/v2/namespaces/nowhere")
    # then
    assert listed.status_code == 200
    assert [n["namespace"] for n in listed.json()["results"]] == ["company", "team"]
    assert [n["namespace"] for n in children.json()["results"]] == ["team"]
    assert detail.json()["path"] == "company/team"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_agent_sees_its_home_namespace(make_namespace, make_agent):
    # given
    make_namespace("team")
    make_namespace("hidden")
    handle = make_agent("ns-reader", "team")
    # when
    listed = handle.client.get("/api/v2/namespaces")
    # then
    assert [n["namespace"] for n in listed.json()["results"]] == ["team"]
    assert handle.client.get("/api/v2/namespaces/hidden").status_code == 404


def test_patch_changes_description_and_policy(operator_client, make_namespace):
    # given
    make_namespace("team")
    # when
    response = operator_client.patch(
        "/api/v2/namespaces/team", {"description": "The team", "access_policy": "open"}, format="json"
    )
    # then
    assert response.status_code == 200, response.content
    team = Namespace.objects.get(namespace="team")
    assert (team.description, team.access_policy) == ("The team", "open")


def test_standard_agent_may_not_change_its_home_namespace(make_namespace, make_agent):
    # given
    make_namespace("team")
    handle = make_agent("ns-member", "team")
    # when
    response = handle.client.patch("/api/v2/namespaces/team", {"description": "mine now"}, format="json")
    # then
    assert response.status_code == 403
    assert Namespace.objects.get(namespace="team").description == ""


def test_delete_an_empty_namespace(operator_client, make_namespace):
    # given
    make_namespace("scratch")
    # when
    response = operator_client.delete("/api/v2/namespaces/scratch")
    # then
    assert response.status_code == 204
    assert not Namespace.objects.filter(namespace="scratch").exists()


def test_delete_is_refused_while_the_namespace_holds_memories(operator_client, make_namespace, make_agent):
    # given
    make_namespace("busy")
    make_namespace("home")
    handle = make_agent("writer", "home")
    busy = Namespace.objects.get(namespace="busy")
    Memory.objects.create(content="kept", agent=handle.agent, namespace=busy, access_level="private")
    # when
    response = operator_client.delete("/api/v2/namespaces/busy")
    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_empty"
    assert Namespace.objects.filter(namespace="busy").exists()
    assert Memory.objects.filter(namespace=busy).count() == 1


@pytest.mark.parametrize("blocker", ["child", "home_agent"])
def test_delete_is_refused_with_children_or_home_agents(operator_client, make_namespace, make_agent, blocker):
    # given
    make_namespace("parent")
    if blocker == "child":
        make_namespace("child", parent="parent")
    else:
        make_agent("resident", "parent")
    # when
    response = operator_client.delete("/api/v2/namespaces/parent")
    # then
    assert response.status_code == 409
    assert Namespace.objects.filter(namespace="parent").exists()


def test_duplicate_namespace_conflicts(operator_client, make_namespace):
    # given
    make_namespace("taken")
    # when
    response = operator_client.post("/api/v2/namespaces", {"namespace": "taken"}, format="json")
    # then
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"namespace": ["Namespace 'taken' already exists."]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"namespace": "Upper"}, "namespace"),
        ({"namespace": "has/slash"}, "namespace"),
        ({"namespace": "a..b"}, "namespace"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "x" * 65}, "namespace"),
        ({"namespace": "-dash-first"}, "namespace"),
        ({"namespace": "with space"}, "namespace"),
        ({}, "namespace"),
        ({"namespace": "fine", "access_policy": "secret"}, "access_policy"),
        ({"namespace": "fine", "parent_namespace": "no-such-parent"}, "parent_namespace"),
    ],
)
def test_bad_namespace_input_answers_400_naming_the_field(operator_client, db, body, field):
    # when
    response = operator_client.post("/api/v2/namespaces", body, format="json")
    # then
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert Namespace.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"description": None}, "description must be a string."),
        ({"display_name": "x" * 201}, "display_name is 201 characters; the limit is 200."),
        ({"access_policy": None}, "access_policy must be one of open, invite_only, closed."),
        ({"metadata": ["not", "an", "object"]}, "metadata must be a JSON object."),
        ({"parent_namespace": "nowhere"}, "Namespace 'nowhere' does not exist."),
    ],
)
def test_bad_changes_answer_400_naming_the_field_and_change_nothing(operator_client, make_namespace, body, message):
    # given
    make_namespace("team")
    before = Namespace.objects.values().get(namespace="team")
    # when
    response = operator_client.patch("/api/v2/namespaces/team", body, format="json")
    # then
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"] == {next(iter(body)): [message]}
    assert Namespace.objects.values().get(namespace="team") == before


def test_adding_a_member_answers_the_member_and_its_role(operator_client, make_namespace, make_agent):
    # given
    make_namespace("home")
    make_namespace("team")
    make_agent("joiner", "home")
    # when
    added = operator_client.post("/api/v2/namespaces/team/members", {"agent_id": " joiner "}, format="json")
    promoted = operator_client.post("/api/v2/namespaces/team/members", {"agent_id": "joiner", "role": "admin"},
                                    format="json")
    unknown = operator_client.post("/api/v2/namespaces/team/members", {"agent_id": "nobody"}, format="json")
    # then
    assert (added.status_code, added.json()) == (201, {"agent_id": "joiner", "role": "member"})
    assert (promoted.status_code, promoted.json()) == (201, {"agent_id": "joiner", "role": "admin"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["fields"] == {"agent_id": ["Agent 'nobody' does not exist."]}
