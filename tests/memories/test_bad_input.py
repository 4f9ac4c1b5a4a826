"""Bad input to POST /memories: 400 (or 413) in the one error shape, naming the field, storing nothing."""
from __future__ import annotations

import json

import pytest

from memories.contracts import StoreMemory
from memories.models import Memory

MEMORIES = "/api/v2/memories"
VALID = {"content": "A fact.", "access_level": "private", "namespace": "team"}


@pytest.fixture
def writer(make_namespace, make_agent):
    make_namespace("team")
    handle = make_agent("careful-writer", "team")
    Memory.objects.create(content="Already here.", agent=handle.agent, namespace=handle.agent.namespace)
    return handle


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"namespace": "no-such-namespace"}, "namespace", "Namespace 'no-such-namespace' does not exist."),
        ({"access_level": "secret"}, "access_level", "access_level must be one of private, shared, public, system."),
        ({"content": ""}, "content", "content may not be empty."),
        ({"content": "   \n"}, "content", "content may not be empty."),
        ({"content": 42}, "content", "content must be a string."),
        ({"content": None}, "content", "content must be a string."),
        ({"context_tags": "x"}, "context_tags", "context_tags must be a list of strings."),
        ({"context_tags": [1, 2]}, "context_tags", "context_tags must be a list of strings."),
        ({"learning_weight": "high"}, "learning_weight", "learning_weight must be a number."),
        ({"learning_weight": True}, "learning_weight", "learning_weight must be a number."),
        ({"learning_weight": 11}, "learning_weight", "learning_weight must be between 0.0 and 10.0."),
        ({"metadata": []}, "metadata", "metadata must be a JSON object."),
        ({"memory_category": ""}, "memory_category", "memory_category must be 1-64 characters."),
        ({"parent_memory_id": "nope"}, "parent_memory_id", "parent_memory_id must be a UUID."),
    ],
)
def test_bad_fields_answer_400_naming_the_field(writer, changes, field, message):
    # given
    before = Memory.objects.count()
    # when
    response = writer.client.post(MEMORIES, {**VALID, **changes}, format="json")
    # then
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields", "request_id"}
    assert error["code"] in {"invalid", "unknown_namespace"}
    assert error["message"] == message
    assert error["fields"] == {field: [message]}
    assert Memory.objects.count() == before


def test_oversized_content_answers_400(writer, settings):
    # given
    settings.TMWS_MAX_CONTENT_LENGTH = 100
    before = Memory.objects.count()
    # when
    at_limit = writer.client.post(MEMORIES, {**VALID, "content": "x" * 100}, format="json")
    over_limit = writer.client.post(MEMORIES, {**VALID, "content": "x" * 101}, format="json")
    # then
    assert at_limit.status_code == 201
    assert over_limit.status_code == 400
    assert over_limit.json()["error"]["fields"] == {"content": ["content is 101 characters; the limit is 100."]}
    assert Memory.objects.count() == before + 1


@pytest.mark.parametrize("raw", [b"{not json", b'{"content": "unterminated', b""], ids=["garbage", "truncated", "empty"])
def test_malformed_json_answers_400(writer, raw):
    # given
    before = Memory.objects.count()
    # when
    response = writer.client.generic("POST", MEMORIES, raw, content_type="application/json")
    # then
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] in {"malformed", "invalid"}
    assert error["message"]
    assert Memory.objects.count() == before


@pytest.mark.parametrize("body", [[VALID], "just a string", 7])
def test_a_body_that_is_not_an_object_answers_400(writer, body):
    # given
    before = Memory.objects.count()
    # when
    response = writer.client.generic("POST", MEMORIES, json.dumps(body), content_type="application/json")
    # then
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid", "message": "The request body must be a JSON object.",
                                        "request_id": response["X-Request-Id"]}
    assert Memory.objects.count() == before


def test_a_body_over_the_upload_limit_answers_413(writer, settings):
    # given
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = Memory.objects.count()
    # when
    response = writer.client.post(MEMORIES, {**VALID, "content": "y" * 2000}, format="json")
    # then
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "too_large"
    assert Memory.objects.count() == before


def test_an_unsupported_media_type_answers_415(writer):
    # given
    before = Memory.objects.count()
    # when
    response = writer.client.generic("POST", MEMORIES, "content=hello", content_type="text/plain")
    # then
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert Memory.objects.count() == before


@pytest.mark.parametrize("access_level", ["system"])
def test_standard_agent_may_not_store_system_memories(writer, access_level):
    # given
    before = Memory.objects.count()
    # when
    response = writer.client.post(MEMORIES, {**VALID, "access_level": access_level}, format="json")
    # then
    assert response.status_code == 403
    assert "access_level" in response.json()["error"]["fields"]
    assert Memory.objects.count() == before


def test_agent_may_not_store_memories_as_another_agent(writer, make_agent):
    # given
    make_agent("impersonated", "team")
    before = Memory.objects.count()
    # when
    response = writer.client.post(MEMORIES, {**VALID, "agent_id": "impersonated"}, format="json")
    # then
    assert response.status_code == 403
    assert list(response.json()["error"]["fields"]) == ["agent_id"]
    assert Memory.objects.count() == before


@pytest.mark.parametrize("content", ["before \x00 after", "lone \ud800 surrogate"])
def test_the_service_refuses_text_the_database_cannot_store_whoever_calls_it(writer, content):
    # given: a caller that skips the REST layer's check (MCP tools, workflows, the admin call the service)
    from core.errors import InvalidInput
    from memories.services import create_memory

    before = Memory.objects.count()
    # when
    with pytest.raises(InvalidInput) as refused:
        create_memory(writer.agent, StoreMemory.parse({"content": content, "namespace": "team"}))
    # then: one rule, one message, nothing stored
    assert (refused.value.field, refused.value.message) == (
        "content", "content may not contain NUL characters or unpaired surrogates.")
    assert Memory.objects.count() == before
