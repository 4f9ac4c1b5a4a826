"""Request ids and the JSON log line per request."""
from __future__ import annotations

import json
import logging
import re

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def request_lines(caplog) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "tmws.requests"]


def test_every_response_names_its_request(make_namespace, make_agent):
    # given
    make_namespace("team")
    agent = make_agent("logged-agent", "team")

    # when
    first = agent.client.get("/api/v2/agents/me")
    second = agent.client.get("/api/v2/agents/me")

    # then: a fresh id each time
    assert first.status_code == second.status_code == 200
    assert GENERATED_ID.fullmatch(first["X-Request-Id"])
    assert GENERATED_ID.fullmatch(second["X-Request-Id"])
    assert first["X-Request-Id"] != second["X-Request-Id"]


@pytest.mark.parametrize("incoming", ["req-2026-12-02.0001", "0b6f7c9e-43d1-4c52-9c1b-7a2d1c7e9f10", "a" * 128])
def test_a_sane_incoming_request_id_is_kept(client, incoming):
    # when
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)

    # then
    assert response["X-Request-Id"] == incoming


@pytest.mark.parametrize("incoming", ["", "short", "a" * 129, "two words here", "id\u00e9-accented", "-leading-dash",
                                      "semi;colon;id"])
def test_an_unusable_incoming_request_id_is_replaced(client, incoming):
    # when
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)

    # then
    assert GENERATED_ID.fullmatch(response["X-Request-Id"])


@pytest.mark.parametrize(
    ("path", "auth", "status", "code"),
    [
        ("/api/v2/memories", None, 401, "not_authenticated"),
        ("/api/v2/memories", "Bearer tmws_bad_key", 401, "authentication_failed"),
        ("/api/v2/no-such-thing", None, 404, "not_found"),
        ("/mcp", None, 401, "not_authenticated"),
    ],
)
def test_error_bodies_carry_the_request_id(client, path, auth, status, code):
    # when
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    response = client.post(path, {}, content_type="application/json", HTTP_X_REQUEST_ID="trace-abc-123", **headers)

    # then
    assert response.status_code == status
    assert response["X-Request-Id"] == "trace-abc-123"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["request_id"] == "trace-abc-123"


def test_service_errors_carry_the_request_id(make_namespace, make_agent):
    # given
    make_namespace("team")
    agent = make_agent("careless-agent", "team")

    # when: a field error raised by a service
    response = agent.client.post("/api/v2/memories", {"content": "x", "namespace": "nowhere"}, format="json")

    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["request_id"] == response["X-Request-Id"]
    assert set(error) == {"code", "message", "fields", "request_id"}


def test_one_log_line_per_request_names_agent_route_status_and_duration(make_namespace, make_agent, caplog):
    # given
    make_namespace("team")
    agent = make_agent("logged-agent", "team")
    caplog.set_level(logging.INFO, logger="tmws.requests")

    # when
    found = agent.client.get("/api/v2/agents/logged-agent", HTTP_X_REQUEST_ID="trace-found-1")
    missing = agent.client.get("/api/v2/memories/9b2f9a57-4a0e-4c44-8f7e-2f0a9f9f9f9f")

    # then: exactly one line each, in JSON, with the route pattern (not the id in the path)
    assert found.status_code == 200 and missing.status_code == 404
    lines = request_lines(caplog)
    assert len(lines) == 2
    first, second = lines
    assert set(first) == {"request_id", "agent", "operator", "method", "route", "status", "duration_ms"}
    assert {key: first[key] for key in first if key != "duration_ms"} == {
        "request_id": "trace-found-1", "agent": "logged-agent", "operator": None, "method": "GET",
        "route": "/api/v2/agents/{agent_id}", "status": 200,
    }
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert second["request_id"] == missing["X-Request-Id"]
    assert (second["route"], second["status"], second["agent"]) == ("/api/v2/memories/{pk}", 404, "logged-agent")


def test_log_lines_name_operators_and_anonymous_callers(operator_user, caplog):
    # given
    caplog.set_level(logging.INFO, logger="tmws.requests")
    operator = APIClient()
    operator.force_authenticate(operator_user)

    # when
    operator.get("/api/v2/namespaces")
    APIClient().get("/api/v2/namespaces")
    APIClient().get("/api/nothing-here")

    # then
    lines = request_lines(caplog)
    assert [(line["agent"], line["operator"], line["route"], line["status"]) for line in lines] == [
        (None, "operator", "/api/v2/namespaces", 200),
        (None, None, "/api/v2/namespaces", 401),
        (None, None, "/api/", 404),
    ]
