"""Memory model: database constraints and the generated text-search vector."""
from __future__ import annotations

import pytest
from django.contrib.postgres.search import SearchQuery
from django.db import IntegrityError, transaction

from memories.models import Memory
from namespaces.models import Namespace


@pytest.fixture
def owner(make_namespace, make_agent):
    make_namespace("team")
    return make_agent("memory-owner", "team").agent


def _memory(owner, **overrides) -> dict:
    return {"content": "A fact.", "agent": owner, "namespace": owner.namespace, "access_level": "private", **overrides}


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"access_level": "secret"}, "memories_access_level_valid"),
        ({"embedding_status": "done"}, "memories_embedding_status_valid"),
        ({"content": ""}, "memories_content_not_blank"),
        ({"content": "  \n\t "}, "memories_content_not_blank"),
        ({"agent": None, "access_level": "shared"}, "memories_owner_unless_system"),
        ({"agent": None, "access_level": "private"}, "memories_owner_unless_system"),
    ],
)
def test_database_rejects_invalid_memories(owner, overrides, constraint):
    # when / then
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Memory.objects.create(**_memory(owner, **overrides))
    assert Memory.objects.count() == 0


def test_a_system_memory_needs_no_owner(owner):
    # when
    memory = Memory.objects.create(**_memory(owner, agent=None, access_level="system"))
    # then
    assert memory.agent_id is None
    assert memory.embedding_status == "pending"
    assert (memory.learning_weight, memory.memory_category, memory.context_tags) == (1.0, "general", [])


def test_generated_search_vector_is_filled_from_the_content(owner):
    # given
    memory = Memory.objects.create(**_memory(owner, content="Deployments to staging need the lead's approval."))
    # when
    vector = Memory.objects.values_list("search_vector", flat=True).get(pk=memory.pk)
    matches = Memory.objects.filter(search_vector=SearchQuery("deploying approvals", config="english"))
    # then
    assert "'deploy'" in vector and "'approv'" in vector and "'stage'" in vector
    assert list(matches) == [memory]


def test_search_vector_follows_content_changes(owner):
    # given
    memory = Memory.objects.create(**_memory(owner, content="The cat sat on the mat."))
    # when
    Memory.objects.filter(pk=memory.pk).update(content="Quarterly revenue forecast.")
    # then
    assert not Memory.objects.filter(search_vector=SearchQuery("cat", config="english")).exists()
    assert Memory.objects.filter(search_vector=SearchQuery("revenue", config="english")).exists()


def test_owner_and_namespace_are_protected_from_deletion(owner):
    # given
    Memory.objects.create(**_memory(owner))
    # when / then
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError), transaction.atomic():
        Namespace.objects.get(namespace="team").delete()
    with pytest.raises(ProtectedError), transaction.atomic():
        owner.delete()
    assert Memory.objects.count() == 1
