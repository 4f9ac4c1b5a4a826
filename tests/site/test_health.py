"""Liveness and readiness probes."""
from __future__ import annotations

import pytest
from django.db import connection


def test_healthz_answers_ok_without_credentials(client):
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_with_pgvector_and_in_process_tasks(client, settings):
    # given
    settings.CELERY_BROKER_URL = ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = cursor.fetchone()[0]
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": f"pgvector {version}",
        "broker": "not configured: tasks run in-process",
    }


@pytest.mark.django_db
def test_readyz_answers_503_when_the_configured_broker_is_unreachable(client, settings):
    # given: nothing listens on port 1
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"].startswith("pgvector ")
    assert body["broker"] != "reachable"


@pytest.mark.django_db
@pytest.mark.redis
def test_readyz_reports_a_reachable_broker(client, settings, require_redis):
    # given
    settings.CELERY_BROKER_URL = require_redis
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 200
    assert response.json()["broker"] == "reachable"


def test_health_probes_refuse_other_methods(client):
    # when
    response = client.post("/healthz")
    # then
    assert response.status_code == 405


@pytest.mark.django_db
def test_readyz_tells_operators_which_precision_embeds_and_why(client, settings, operator_user):
    # given: the model loaded, as in a serving process
    from memories import embeddings

    graph = str(embeddings.get_encoder().graph)
    client.force_login(operator_user)
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 200
    assert response.json()["embedding"] == {
        "model": "all-MiniLM-L6-v2", "backend": "onnx", "precision": "int8",
        "reason": "set by TMWS_EMBEDDING_PRECISION", "graph": graph,
    }


@pytest.mark.django_db
def test_readyz_says_the_model_is_not_loaded_without_loading_it(client, operator_user):
    # given
    from memories import embeddings

    embeddings.unload()
    client.force_login(operator_user)
    try:
        # when
        response = client.get("/readyz")
        # then
        assert response.json()["embedding"] == {"loaded": False, "precision_setting": "int8"}
        assert not embeddings.is_loaded()
    finally:
        embeddings.unload()


@pytest.mark.django_db
def test_readyz_shows_no_embedding_details_to_agents_or_anonymous_callers(client, make_namespace, make_agent):
    # given
    from memories import embeddings

    embeddings.get_encoder()
    make_namespace("team")
    agent = make_agent("probe-agent", "team")
    # when
    anonymous = client.get("/readyz")
    as_agent = agent.client.get("/readyz")
    # then
    assert anonymous.status_code == as_agent.status_code == 200
    assert set(anonymous.json()) == set(as_agent.json()) == {"status", "database", "broker"}
