"""Erasure means erasure: a deleted memory's words are in no table afterwards (raw SQL over every table)."""
from __future__ import annotations

import pytest
from django.test import Client

from memories.contracts import Feedback, ShareMemory, StoreMemory, UpdateMemory
from memories.embedding_jobs import embed_batch
from memories.expiry import delete_expired_memories
from memories.hits import record_hits
from memories.models import Memory
from memories.services import create_memory, record_feedback, share_memory, update_memory
from tests.database_rows import AUDIT_TABLE, rows_mentioning

pytestmark = pytest.mark.django_db

SECRET = "quxbarzlewort"  # one made-up word: found by text, by keyword postings and by statistics if left anywhere


@pytest.fixture
def secret(team):
    """A shared memory with a history, a share, a vote, hit counters and an embedding, holding SECRET."""
    owner = team["owner"].agent
    memory = create_memory(owner, StoreMemory.parse({"content": f"Draft {SECRET} plan.", "access_level": "shared"}))
    update_memory(owner, memory, UpdateMemory.parse({"content": f"The {SECRET} plan ships in May."}))
    share_memory(owner, memory, ShareMemory.parse({"agent_ids": [team["sharee"].agent_id]}))
    record_feedback(team["member"].agent, memory, Feedback.parse({"useful": True}))
    record_hits([str(memory.pk)] * 3)
    embed_batch([memory.pk])
    found = team["owner"].client.post("/api/v2/memories/search", {"query": SECRET, "mode": "keyword"}, format="json")
    assert [r["memory"]["id"] for r in found.json()["results"]] == [str(memory.pk)]
    assert rows_mentioning(SECRET)  # before: the words are stored
    return memory


def test_a_deleted_memory_leaves_nothing_behind(team, secret):
    assert team["owner"].client.delete(f"/api/v2/memories/{secret.pk}").status_code == 204
    assert rows_mentioning(SECRET) == {}
    # the audit trail keeps that it was shared and deleted, by id; nothing else keeps its id
    assert rows_mentioning(str(secret.pk), skip=(AUDIT_TABLE,)) == {}
    found = team["owner"].client.post("/api/v2/memories/search", {"query": SECRET, "mode": "keyword"}, format="json")
    assert found.json()["results"] == []


def test_an_expired_memory_deleted_by_the_job_leaves_nothing_behind(secret):
    Memory.objects.filter(pk=secret.pk).update(expires_at="2000-01-01T00:00:00Z")
    assert delete_expired_memories() == 1
    assert rows_mentioning(SECRET) == {}
    assert rows_mentioning(str(secret.pk), skip=(AUDIT_TABLE,)) == {}


def test_a_memory_deleted_in_the_admin_leaves_no_text_in_the_admin_log(secret, operator_user):
    # given: the operator changes it in the admin (the change log keeps the memory's first 80 characters)
    client = Client()
    client.force_login(operator_user)
    response = client.post(f"/admin/memories/memory/{secret.pk}/delete/", {"post": "yes"})
    # then
    assert response.status_code == 302
    assert rows_mentioning(SECRET) == {}
