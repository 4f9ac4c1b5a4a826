"""The memory answer's one-pass rendering says exactly what DRF's field-by-field rendering says."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rest_framework import serializers

from memories.api.serializers import MemorySerializer
from memories.models import Memory, MemoryUsage


def _generic(memory) -> dict:
    return dict(serializers.ModelSerializer.to_representation(MemorySerializer(), memory))


def test_every_kind_of_memory_renders_as_the_generic_serializer_does(make_namespace, make_agent):
    make_namespace("render")
    owner = make_agent("render-owner", "render").agent
    parent = Memory.objects.create(content="Parent note.", agent=owner, namespace=owner.namespace)
    memories = [
        parent,
        Memory.objects.create(
            content="Child note with ünïcode and \"quotes\".", agent=owner, namespace=owner.namespace,
            parent_memory=parent, access_level="shared", context_tags=["ops", "Release-1"],
            memory_category="decision", learning_weight=2, metadata={"source": {"kind": "chat", "turn": 3}, "n": None},
            expires_at=datetime(2031, 5, 4, 3, 2, 1, 123456, tzinfo=UTC),
        ),
        Memory.objects.create(content="System notice.", agent=None, namespace=owner.namespace, access_level="system",
                              learning_weight=0.125),
    ]
    MemoryUsage.objects.create(memory=memories[1], access_count=7,
                               last_accessed_at=datetime.now(UTC) - timedelta(hours=3))
    read = list(Memory.objects.filter(pk__in=[memory.pk for memory in memories]).for_display().order_by("created_at"))
    assert len(read) == 3
    for memory in read:
        assert MemorySerializer(memory).data == _generic(memory)
    assert [item["access_count"] for item in MemorySerializer(read, many=True).data] == [0, 7, 0]
    assert MemorySerializer(read[2]).data["agent_id"] is None
    assert MemorySerializer(read[1]).data["expires_at"] == "2031-05-04T03:02:01.123456Z"


def test_a_memory_without_usage_loaded_renders_alike(make_namespace, make_agent):
    make_namespace("render-plain")
    owner = make_agent("render-plain-owner", "render-plain").agent
    memory = Memory.objects.create(content="Plain.", agent=owner, namespace=owner.namespace)
    fresh = Memory.objects.get(pk=memory.pk)  # nothing joined in: each relation read on demand
    assert MemorySerializer(fresh).data == _generic(fresh)
