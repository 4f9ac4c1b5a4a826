"""Memories API: create, read, list with filters and pages, change, delete and bulk."""
from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from memories.models import Memory
from namespaces.models import Namespace
from namespaces.services import set_role

MEMORIES = "/api/v2/memories"


@pytest.fixture
def writer(make_namespace, make_agent):
    make_namespace("team")
    make_namespace("side")
    handle = make_agent("writer-agent", "team")
    set_role(handle.agent, Namespace.objects.get(namespace="side"), "member")
    return handle


def _create(handle, **body):
    response = handle.client.post(MEMORIES, {"content": "A fact.", "namespace": "team", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_answers_201_with_the_stored_memory_pending_embedding(writer):
    # when
    response = writer.client.post(
        MEMORIES,
        {"content": "Staging deploys need approval.", "access_level": "shared", "namespace": "team",
         "context_tags": ["deploy", "deploy", " process "], "memory_category": "procedure", "learning_weight": 2,
         "metadata": {"source": "wiki"}},
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("content", "agent_id", "namespace", "access_level", "context_tags", "memory_category",
                                 "learning_weight", "parent_memory_id", "embedding_status", "access_count",
                                 "metadata")} == {
        "content": "Staging deploys need approval.", "agent_id": "writer-agent", "namespace": "team",
        "access_level": "shared", "context_tags": ["deploy", "process"], "memory_category": "procedure",
        "learning_weight": 2.0, "parent_memory_id": None, "embedding_status": "pending", "access_count": 0,
        "metadata": {"source": "wiki"},
    }
    stored = Memory.objects.get(pk=body["id"])
    assert (stored.agent, stored.namespace.namespace) == (writer.agent, "team")


def test_create_defaults_to_a_private_memory_in_the_home_namespace(writer):
    # when
    body = writer.client.post(MEMORIES, {"content": "Just me."}, format="json").json()
    # then
    assert (body["namespace"], body["access_level"], body["memory_category"], body["learning_weight"]) == (
        "team", "private", "general", 1.0,
    )


def test_get_returns_the_memory(writer):
    # given
    created = _create(writer)
    # when
    response = writer.client.get(f"{MEMORIES}/{created['id']}")
    # then
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("path", ["{id}", ""])
def test_get_and_list_read_no_embedding_or_text_search_column(writer, path):
    # given
    created = _create(writer)
    Memory.objects.filter(pk=created["id"]).update(
        embedding=np.ones(384), embedding_model="all-MiniLM-L6-v2", embedding_status="ready"
    )
    # when
    with CaptureQueriesContext(connection) as queries:
        response = writer.client.get(f"{MEMORIES}/{path.format(id=created['id'])}".rstrip("/"))
    # then
    assert response.status_code == 200
    memory_reads = [query["sql"] for query in queries.captured_queries if 'FROM "memories"' in query["sql"]]
    assert memory_reads
    for column in ('"memories"."embedding"', '"memories"."search_vector"', '"memories"."embedding_error"'):
        assert not any(column in sql for sql in memory_reads), column


@pytest.mark.parametrize("memory_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_get_of_a_missing_memory_is_404(writer, memory_id):
    # when
    response = writer.client.get(f"{MEMORIES}/{memory_id}")
    # then
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_list_pages_through_the_callers_memories(writer):
    # given
    ids = [_create(writer, content=f"Fact number {i}.")["id"] for i in range(5)]
    # when
    first = writer.client.get(MEMORIES, {"page_size": 2})
    last = writer.client.get(MEMORIES, {"page_size": 2, "page": 3})
    by_limit = writer.client.get(MEMORIES, {"limit": 4})
    # then
    assert first.status_code == 200
    assert first.json()["count"] == 5
    assert [m["id"] for m in first.json()["results"]] == ids[::-1][:2]  # newest first
    assert first.json()["next"].endswith("page=2&page_size=2")
    assert first.json()["previous"] is None
    assert [m["id"] for m in last.json()["results"]] == ids[::-1][4:]
    assert last.json()["next"] is None
    assert len(by_limit.json()["results"]) == 4
    assert writer.client.get(MEMORIES, {"page_size": 2, "page": 9}).status_code == 404


def test_a_page_that_is_not_a_whole_number_from_1_is_bad_input(writer):
    # when
    responses = [writer.client.get(MEMORIES, {"page": page}) for page in ("false", "0", "-1", "1.5")]
    # then: 400 naming `page` (a page past the last one stays 404); "last" is the last page
    assert [response.status_code for response in responses] == [400] * 4
    assert {response.json()["error"]["fields"]["page"][0] for response in responses} == {
        "page must be an integer from 1 to 9223372036854775807."
    }
    assert writer.client.get(MEMORIES, {"page": "last"}).status_code == 200


def test_list_caps_the_page_size(writer):
    # given
    for i in range(3):
        _create(writer, content=f"Fact {i}.")
    # when
    response = writer.client.get(MEMORIES, {"page_size": 100_000})
    # then
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


@pytest.fixture
def catalogue(writer, make_agent):
    """Memories that differ in one field each, plus one by another agent."""
    parent = _create(writer, content="Parent note.", memory_category="notes", context_tags=["root"])
    child = _create(writer, content="Child note.", parent_memory_id=parent["id"], context_tags=["leaf", "green"])
    shared = _create(writer, content="Shared note.", access_level="shared", namespace="side", context_tags=["green"])
    other = make_agent("other-writer", "team")
    foreign = _create(other, content="Public note by another agent.", access_level="public")
    return {"parent": parent["id"], "child": child["id"], "shared": shared["id"], "foreign": foreign["id"]}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["foreign", "shared", "child", "parent"]),
        ({"namespace": "side"}, ["shared"]),
        ({"agent_id": "other-writer"}, ["foreign"]),
        ({"agent_id": "writer-agent"}, ["shared", "child", "parent"]),
        ({"access_level": "private"}, ["child", "parent"]),
        ({"access_level": "public"}, ["foreign"]),
        ({"memory_category": "notes"}, ["parent"]),
        ({"tag": "green"}, ["shared", "child"]),
        ({"tag": "absent"}, []),
        ({"parent": "PARENT"}, ["child"]),
        ({"namespace": "team", "tag": "leaf"}, ["child"]),
    ],
)
def test_list_filters(writer, catalogue, params, expected):
    # given
    params = {k: (catalogue["parent"] if v == "PARENT" else v) for k, v in params.items()}
    # when
    response = writer.client.get(MEMORIES, params)
    # then
    assert response.status_code == 200, response.content
    assert [m["id"] for m in response.json()["results"]] == [catalogue[name] for name in expected]


def test_list_filter_with_a_bad_value_is_400(writer):
    # when
    response = writer.client.get(MEMORIES, {"parent": "not-a-uuid"})
    # then
    assert response.status_code == 400
    assert "parent" in response.json()["error"]["fields"]


def test_patch_changes_fields(writer):
    # given
    created = _create(writer)
    # when
    response = writer.client.patch(
        f"{MEMORIES}/{created['id']}",
        {"context_tags": ["new"], "learning_weight": 0.5, "access_level": "shared", "metadata": {"v": 2}},
        format="json",
    )
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["context_tags"], body["learning_weight"], body["access_level"], body["metadata"]) == (
        ["new"], 0.5, "shared", {"v": 2},
    )
    assert body["content"] == "A fact."


def test_patching_content_resets_the_embedding_and_embeds_again(writer, django_capture_on_commit_callbacks):
    # given: an embedded memory
    with django_capture_on_commit_callbacks(execute=True):
        created = _create(writer, content="The office is closed on Fridays.")
    first = Memory.objects.get(pk=created["id"])
    assert first.embedding_status == "ready"
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = writer.client.patch(
            f"{MEMORIES}/{created['id']}", {"content": "Quarterly revenue grew by ten percent."}, format="json"
        )
    # then: answered pending, then embedded again by the queued job
    assert response.status_code == 200
    assert response.json()["embedding_status"] == "pending"
    assert len(callbacks) == 1
    second = Memory.objects.get(pk=created["id"])
    assert second.embedding_status == "ready"
    assert second.embedding_attempts == 1
    assert float(np.dot(first.embedding, second.embedding)) < 0.5


def test_patching_other_fields_keeps_the_embedding(writer, django_capture_on_commit_callbacks):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        created = _create(writer, content="The office is closed on Fridays.")
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = writer.client.patch(
            f"{MEMORIES}/{created['id']}", {"content": "The office is closed on Fridays.", "context_tags": ["office"]},
            format="json",
        )
    # then
    assert response.json()["embedding_status"] == "ready"
    assert callbacks == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": ""}, "content"),
        ({"access_level": "secret"}, "access_level"),
        ({"namespace": "no-such-namespace"}, "namespace"),
        ({"embedding_status": "ready"}, "embedding_status"),
        ({"learning_weight": "high"}, "learning_weight"),
    ],
)
def test_bad_patch_is_400_and_changes_nothing(writer, body, field):
    # given
    created = _create(writer)
    # when
    response = writer.client.patch(f"{MEMORIES}/{created['id']}", body, format="json")
    # then
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert writer.client.get(f"{MEMORIES}/{created['id']}").json() == created


def test_delete_removes_the_memory(writer):
    # given
    created = _create(writer)
    # when
    response = writer.client.delete(f"{MEMORIES}/{created['id']}")
    # then
    assert response.status_code == 204
    assert not Memory.objects.filter(pk=created["id"]).exists()
    assert writer.client.get(f"{MEMORIES}/{created['id']}").status_code == 404


def test_bulk_creates_every_memory_and_embeds_them(writer, django_capture_on_commit_callbacks):
    # given
    items = [{"content": f"Bulk fact {i}.", "namespace": "team", "context_tags": ["bulk"]} for i in range(3)]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = writer.client.post(f"{MEMORIES}/bulk", {"memories": items}, format="json")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["count"] == 3
    stored = Memory.objects.filter(pk__in=body["ids"])
    assert sorted(m.content for m in stored) == ["Bulk fact 0.", "Bulk fact 1.", "Bulk fact 2."]
    assert {m.embedding_status for m in stored} == {"ready"}
    assert {m.agent_id for m in stored} == {writer.agent.pk}


def test_bulk_accepts_a_bare_list(writer):
    # when
    response = writer.client.post(f"{MEMORIES}/bulk", [{"content": "One."}, {"content": "Two."}], format="json")
    # then
    assert response.status_code == 201
    assert Memory.objects.count() == 2


@pytest.mark.parametrize(
    ("bad_item", "field"),
    [
        ({"content": ""}, "memories[1].content"),
        ({"content": "x", "access_level": "secret"}, "memories[1].access_level"),
        ({"content": "x", "namespace": "no-such-namespace"}, "memories[1].namespace"),
        ({"content": "x", "context_tags": "x"}, "memories[1].context_tags"),
        ("not an object", "memories[1]"),
    ],
)
def test_bulk_is_all_or_nothing(writer, bad_item, field, django_capture_on_commit_callbacks):
    # given
    items = [{"content": "Good one."}, bad_item, {"content": "Good two."}]
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = writer.client.post(f"{MEMORIES}/bulk", {"memories": items}, format="json")
    # then
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["fields"]) == [field]
    assert error["message"].startswith("memories[1]")
    assert Memory.objects.count() == 0
    assert callbacks == []


@pytest.mark.parametrize("body", [{"memories": []}, {"memories": "x"}, {}, []])
def test_bulk_without_a_list_of_memories_is_400(writer, body):
    # when
    response = writer.client.post(f"{MEMORIES}/bulk", body, format="json")
    # then
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["memories"]
    assert Memory.objects.count() == 0


def test_bulk_refuses_more_than_the_limit(writer, settings):
    # given
    settings.TMWS_MAX_BULK_MEMORIES = 3
    # when
    response = writer.client.post(f"{MEMORIES}/bulk", {"memories": [{"content": "x"}] * 4}, format="json")
    # then
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "At most 3 memories per bulk call."
    assert Memory.objects.count() == 0
