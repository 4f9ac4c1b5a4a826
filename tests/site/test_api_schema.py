"""The OpenAPI schema tells the truth about errors: which statuses each operation answers, and their one shape."""
from __future__ import annotations

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

UNSAFE = {"post", "patch", "put", "delete"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def error_validator(schema) -> jsonschema.Draft4Validator:
    """Validates a body against the Error component, refs resolved within the schema (OpenAPI 3.0 is draft 4-ish)."""
    return jsonschema.Draft4Validator({**schema["components"]["schemas"]["Error"], "components": schema["components"]})


def test_every_operation_documents_the_errors_any_request_can_meet(schema):
    # when
    missing = {}
    for path, method, operation in operations(schema):
        expected = {"400", "401", "429", "503"}
        if method in UNSAFE:
            expected |= {"403", "413"}
        if "{" in path:
            expected.add("404")
        gaps = expected - set(operation["responses"])
        if gaps:
            missing[f"{method.upper()} {path}"] = sorted(gaps)

    # then
    assert missing == {}


def test_error_responses_use_the_error_component(schema):
    # when
    shapes = {
        (f"{method.upper()} {path}", status): response["content"]["application/json"]["schema"]
        for path, method, operation in operations(schema)
        for status, response in operation["responses"].items()
        if status >= "400"
    }

    # then
    assert shapes and set(map(str, shapes.values())) == {"{'$ref': '#/components/schemas/Error'}"}


def test_paginated_lists_document_404_for_a_page_past_the_last(schema):
    # when
    listed = schema["paths"]["/api/v2/memories/"]["get"]["responses"]

    # then
    assert "past the last" in listed["404"]["description"]


def test_throttling_and_unavailability_document_retry_after(schema):
    # when
    responses = schema["paths"]["/api/v2/memories/search/"]["post"]["responses"]

    # then
    assert set(responses["429"]["headers"]) == set(responses["503"]["headers"]) == {"Retry-After"}


def test_bearer_keys_are_a_documented_security_scheme(schema):
    # then
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer <key>`.",
    }
    assert {"bearerAuth": []} in schema["paths"]["/api/v2/memories/"]["get"]["security"]


def test_error_bodies_the_api_answers_match_the_error_component(schema, team, operator_client, client):
    # given
    owner = team["owner"]
    validator = error_validator(schema)

    # when
    responses = [
        client.get("/api/v2/memories"),
        owner.client.post("/api/v2/memories", {"content": ""}, format="json"),
        owner.client.post("/api/v2/agents", {"agent_id": "new-agent", "namespace": "team"}, format="json"),
        owner.client.get("/api/v2/memories/00000000-0000-0000-0000-000000000000"),
        operator_client.post("/api/v2/agents", {"agent_id": "owner-agent", "namespace": "team"}, format="json"),
    ]

    # then
    assert [response.status_code for response in responses] == [401, 400, 403, 404, 409]
    for response in responses:
        validator.validate(response.json())


NULLABLE_RELATIONS = {
    "Namespace": ["parent_namespace"],
    "Memory": ["agent_id"],
    "Task": ["assigned_agent_id", "created_by", "namespace"],
    "Workflow": ["created_by", "namespace"],
    "WorkflowRun": ["triggered_by"],
}


def test_relations_that_may_be_empty_are_nullable(schema, team):
    # when
    components = schema["components"]["schemas"]
    nullable = {name: [field for field in fields if components[name]["properties"][field].get("nullable")]
                for name, fields in NULLABLE_RELATIONS.items()}

    # then: e.g. a top-level namespace answers parent_namespace null
    assert nullable == NULLABLE_RELATIONS
    assert team["owner"].client.get("/api/v2/namespaces/company").json()["parent_namespace"] is None


def test_every_choice_set_has_one_readable_enum_name(schema):
    # when
    enums = {name: component["enum"] for name, component in schema["components"]["schemas"].items()
             if name.endswith("Enum")}
    # then: no hashed names (AccessLevel495Enum) and no second name for one choice set (AccessLevelsEnum)
    assert sorted(enums) == [
        "AccessLevelEnum", "AccessPolicyEnum", "AccessReasonEnum", "ActorKindEnum", "AgentAccessLevelEnum",
        "AgentTaskStepActionEnum", "AssignTaskStepActionEnum", "AuditActionEnum", "CreateTaskStepActionEnum",
        "EmbeddingStatusEnum", "ModeEnum", "OnFailureEnum", "PriorityEnum", "RoleEnum", "RunStatusEnum",
        "SearchMemoriesStepActionEnum", "StepConditionStatusEnum", "StepRunStatusEnum", "StoreMemoryStepActionEnum",
        "TaskStatusEnum", "UpdateTaskStatusStepActionEnum", "VersionChangeEnum", "WaitStepActionEnum",
        "WorkflowDefinitionStatusEnum", "WorkflowStatusEnum", "WorkflowTypeEnum",
    ]
    assert enums["AccessLevelEnum"] == ["private", "shared", "public", "system"]
    assert enums["AgentAccessLevelEnum"] == ["standard", "admin"]
    assert enums["TaskStatusEnum"] == ["pending", "in_progress", "completed", "failed", "cancelled", "skipped"]
    assert enums["RunStatusEnum"] == ["pending", "running", "completed", "failed", "cancelled", "skipped"]
