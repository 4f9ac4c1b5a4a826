"""GET /metrics: deployment-wide counts in the Prometheus text format, for operators granted the permission."""
from __future__ import annotations

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from agents.contracts import IssueOperatorKey
from agents.models import Agent
from agents.services import issue_operator_key
from core.redis_client import client_for
from memories.hits import HIT_BUFFER_KEY
from memories.models import Memory, MemoryUsage
from memories.tasks import EMBEDDING_DRAIN_KEY
from workflows.models import Task


def samples(response) -> dict:
    """The scrape as {'name{labels}': value} (comments left out)."""
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = response.content.decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")}


@pytest.fixture
def deployment(team):
    owner = team["owner"].agent
    ready, pending, failed = (
        Memory.objects.create(content=content, agent=owner, namespace=owner.namespace, embedding_status=status)
        for content, status in [("Embedded already.", "ready"), ("Waits for the worker.", "pending"),
                                ("The model failed.", "failed")]
    )
    Memory.objects.filter(pk=pending.pk).update(updated_at=timezone.now() - datetime.timedelta(hours=1))
    Agent.objects.filter(pk=team["sharee"].agent.pk).update(is_active=False)
    MemoryUsage.objects.create(memory=ready, access_count=4)
    MemoryUsage.objects.create(memory=pending, access_count=3)
    Task.objects.create(title="Triage", created_by=owner)
    return team


@pytest.mark.django_db
def test_an_operator_reads_exact_counts(operator_client, deployment):
    # when
    response = operator_client.get("/metrics")
    # then
    assert response.status_code == 200
    scrape = samples(response)
    memories = {key: value for key, value in scrape.items() if key.startswith("tmws_memories{")}
    assert memories == {
        'tmws_memories{embedding_status="pending"}': 1,
        'tmws_memories{embedding_status="ready"}': 1,
        'tmws_memories{embedding_status="failed"}': 1,
    }
    assert 3600 <= scrape["tmws_embedding_oldest_pending_seconds"] < 3600 + 120
    assert scrape["tmws_memory_search_hits"] == 7
    assert (scrape['tmws_agents{state="active"}'], scrape['tmws_agents{state="inactive"}']) == (7, 1)
    assert scrape["tmws_namespaces"] == 4
    assert scrape['tmws_tasks{status="pending"}'] == 1 and scrape['tmws_tasks{status="completed"}'] == 0
    assert scrape['tmws_workflow_runs{status="running"}'] == 0
    assert "tmws_memory_hits_buffered" not in scrape  # no Redis broker configured


@pytest.mark.django_db
def test_no_memory_waiting_reads_zero(operator_client):
    # when
    scrape = samples(operator_client.get("/metrics"))
    # then
    assert scrape["tmws_embedding_oldest_pending_seconds"] == 0
    assert scrape['tmws_memories{embedding_status="pending"}'] == 0


@pytest.mark.redis
@pytest.mark.django_db
def test_with_a_redis_broker_the_buffers_are_counted(operator_client, require_redis, settings):
    # given
    settings.CELERY_BROKER_URL = require_redis
    client = client_for(require_redis)
    client.delete(HIT_BUFFER_KEY, EMBEDDING_DRAIN_KEY)
    client.rpush(HIT_BUFFER_KEY, "a", "b", "c")
    client.set(EMBEDDING_DRAIN_KEY, "1", ex=60)
    try:
        # when
        scrape = samples(operator_client.get("/metrics"))
    finally:
        client.delete(HIT_BUFFER_KEY, EMBEDDING_DRAIN_KEY)
    # then
    assert scrape["tmws_memory_hits_buffered"] == 3
    assert scrape["tmws_embedding_drain_scheduled"] == 1


@pytest.mark.django_db
def test_agents_are_refused_even_admin_agents(deployment):
    # when / then: the owner of memories, a member, an admin agent
    for handle in (deployment["owner"], deployment["member"], deployment["admin"]):
        response = handle.client.get("/metrics")
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "permission_denied", "message": "Metrics are for operators granted memories.view_metrics.",
            "request_id": response["X-Request-Id"],
        }


@pytest.mark.django_db
def test_operators_without_the_metrics_permission_are_refused(deployment):
    # given: a staff operator who may manage the team namespace, but not read deployment-wide counts
    scoped = _staff("scoped-operator", "view_namespace", "change_namespace", "view_memory")
    client = APIClient()
    client.force_authenticate(scoped)
    # when
    response = client.get("/metrics")
    # then
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Metrics are for operators granted memories.view_metrics."


@pytest.mark.django_db
def test_without_credentials_the_answer_is_401():
    # when
    response = APIClient().get("/metrics")
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def _staff(username: str, *permissions: str):
    user = get_user_model().objects.create_user(username, password=f"{username}-pass-123!", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    return user


@pytest.mark.django_db
def test_a_monitoring_users_api_key_scrapes_like_prometheus_does():
    # given: a staff user holding only the metrics permission, as docs/operators.md sets up for Prometheus
    staff = _staff("monitor", "view_metrics")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_operator_key(staff, IssueOperatorKey())}")
    # when
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    # then
    assert response.status_code == 200
    assert samples(response)["tmws_namespaces"] == 0
