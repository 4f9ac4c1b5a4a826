"""Output shapes of memories, and request shapes for the schema (values are validated by memories.services)."""
from __future__ import annotations

from rest_framework import serializers

from ..choices import AccessLevel
from ..models import Memory


class MemorySerializer(serializers.ModelSerializer):
    agent_id = serializers.SlugRelatedField(
        source="agent", slug_field="agent_id", read_only=True, allow_null=True, help_text="null for system memories."
    )
    namespace = serializers.SlugRelatedField(slug_field="namespace", read_only=True)
    parent_memory_id = serializers.UUIDField(read_only=True, allow_null=True)
    access_count = serializers.IntegerField(read_only=True, help_text="How many searches returned this memory.")
    last_accessed_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Memory
        fields = [
            "id", "content", "agent_id", "namespace", "access_level", "context_tags", "memory_category",
            "learning_weight", "parent_memory_id", "embedding_status", "access_count", "last_accessed_at",
            "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields


class MemoryWriteSerializer(serializers.Serializer):
    content = serializers.CharField()
    access_level = serializers.ChoiceField(choices=AccessLevel.choices, default=AccessLevel.PRIVATE)
    namespace = serializers.CharField(required=False, help_text="Defaults to the agent's home namespace.")
    context_tags = serializers.ListField(child=serializers.CharField(), required=False)
    memory_category = serializers.CharField(required=False, default="general")
    learning_weight = serializers.FloatField(required=False, default=1.0)
    parent_memory_id = serializers.UUIDField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False)
    agent_id = serializers.CharField(required=False, help_text="Operators only: the owning agent.")


class MemoryBulkSerializer(serializers.Serializer):
    memories = MemoryWriteSerializer(many=True)


class MemoryBulkCreatedSerializer(serializers.Serializer):
    """What a bulk write answers: how many memories were stored and their ids, in the order given."""

    count = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.UUIDField())


class ShareSerializer(serializers.Serializer):
    agent_ids = serializers.ListField(child=serializers.CharField())


class FeedbackSerializer(serializers.Serializer):
    useful = serializers.BooleanField()


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField()
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
    mode = serializers.ChoiceField(choices=["hybrid", "semantic", "keyword"], default="hybrid")
    namespace = serializers.CharField(required=False)
    agent_id = serializers.CharField(required=False)
    access_levels = serializers.ListField(child=serializers.ChoiceField(choices=AccessLevel.choices), required=False)
    context_tags = serializers.ListField(child=serializers.CharField(), required=False)
    memory_category = serializers.CharField(required=False)
    min_similarity = serializers.FloatField(required=False, min_value=-1, max_value=1)


class ConversationTurnSerializer(serializers.Serializer):
    role = serializers.CharField(required=False, help_text="user, assistant, system, ...")
    content = serializers.CharField()


class TaskContextSerializer(serializers.Serializer):
    title = serializers.CharField(required=False)
    description = serializers.CharField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    namespace = serializers.CharField(required=False)
    task_type = serializers.CharField(required=False)
    memory_category = serializers.CharField(required=False)


class ContextualSearchRequestSerializer(SearchRequestSerializer):
    conversation_context = ConversationTurnSerializer(many=True, required=False, help_text="Recent turns, oldest first.")
    task_context = TaskContextSerializer(required=False)


class SearchHitSerializer(serializers.Serializer):
    memory = MemorySerializer()
    score = serializers.FloatField()
    similarity = serializers.FloatField(allow_null=True)


def search_response(result) -> dict:
    """A search result (memories.search.SearchResult) in the shape of SearchResponseSerializer."""
    # One serializer for all hits: building its fields once per response, not once per memory.
    memories = MemorySerializer([hit.memory for hit in result.hits], many=True).data
    return {
        "results": [
            {"memory": memory, "score": hit.score, "similarity": hit.similarity}
            for memory, hit in zip(memories, result.hits, strict=True)
        ],
        "mode": result.mode,
        "count": len(result.hits),
        "took_ms": round(result.took_ms, 2),
    }


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    mode = serializers.CharField()
    count = serializers.IntegerField()
    took_ms = serializers.FloatField()


class CategoriseSerializer(serializers.Serializer):
    apply = serializers.BooleanField(default=False, help_text="Store the proposed categories (default: only propose).")
    agent_id = serializers.CharField(required=False, help_text="Operators: the agent whose memories to file.")


class CategoryProposalSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    preview = serializers.CharField()
    category = serializers.CharField()
    confidence = serializers.FloatField(help_text="Share of agreeing neighbours times the closest one's similarity.")


class CategoriseResultSerializer(serializers.Serializer):
    considered = serializers.IntegerField(help_text="Memories in the default category that were looked at.")
    proposals = CategoryProposalSerializer(many=True)
    applied = serializers.IntegerField()


class InsightsSerializer(serializers.Serializer):
    usage = serializers.DictField(help_text="Counts by category, access level and embedding status; hits; unused memories.")
    categories = CategoriseResultSerializer()
    near_duplicates = serializers.ListField(
        child=serializers.DictField(), help_text="Groups of memories worded almost alike: memory_ids (newest first), preview."
    )
    suggestions = serializers.ListField(child=serializers.DictField())
