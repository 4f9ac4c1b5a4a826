"""Output shapes of memory operations (their inputs are memories.contracts)."""
from __future__ import annotations

from rest_framework import serializers

import access
from access.choices import AccessReason

from ..models import Memory, MemoryVersion


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
            "expires_at", "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, memory) -> dict:
        """The same answer as DRF's field-by-field rendering (a test holds them equal), in one pass.

        Every list, search and read answers memories: the generic path walks sixteen field objects per
        memory, and was a tenth of a search's CPU.
        """
        agent = memory.agent
        return {
            "id": str(memory.id),
            "content": memory.content,
            "agent_id": agent.agent_id if agent is not None else None,
            "namespace": memory.namespace.namespace,
            "access_level": memory.access_level,
            "context_tags": memory.context_tags,
            "memory_category": memory.memory_category,
            "learning_weight": float(memory.learning_weight),
            "parent_memory_id": str(memory.parent_memory_id) if memory.parent_memory_id is not None else None,
            "embedding_status": memory.embedding_status,
            "access_count": memory.access_count,
            "last_accessed_at": _timestamp(memory.last_accessed_at),
            "expires_at": _timestamp(memory.expires_at),
            "metadata": memory.metadata,
            "created_at": _timestamp(memory.created_at),
            "updated_at": _timestamp(memory.updated_at),
        }


_DATETIME = serializers.DateTimeField()


def _timestamp(value) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


class MemoryVersionSerializer(serializers.ModelSerializer):
    """One state of a memory, as it was current from `changed_at` on."""

    namespace = serializers.SlugRelatedField(slug_field="namespace", read_only=True)
    agent_id = serializers.SlugRelatedField(
        source="agent", slug_field="agent_id", read_only=True, allow_null=True, help_text="The owner at the time."
    )
    changed_by = serializers.SerializerMethodField(help_text="The agent id; 'operator:<username>' (to operators) or "
                                                              "'operator' (to agents); or null (a change made by "
                                                              "the system itself).")

    class Meta:
        model = MemoryVersion
        fields = ["version", "change", "content", "access_level", "namespace", "agent_id", "context_tags",
                  "memory_category", "learning_weight", "changed_at", "changed_by"]
        read_only_fields = fields

    def get_changed_by(self, version) -> str | None:
        if version.changed_by_agent_id is not None:
            return version.changed_by_agent.agent_id if version.changed_by_agent else None
        if version.changed_by_user_id is not None:
            if version.changed_by_user is None or not access.can_see_operator_names(self.context.get("viewer")):
                return "operator"
            return f"operator:{version.changed_by_user.username}"
        return None


class MemoryBulkCreatedSerializer(serializers.Serializer):
    """What a bulk write answers: how many memories were stored and their ids, in the order given."""

    count = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.UUIDField())


class MemoryBulkUpdatedSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.UUIDField())


class ShareSerializer(serializers.Serializer):
    agent_ids = serializers.ListField(child=serializers.CharField())


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


class AccessReasonSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=AccessReason.choices)
    namespace = serializers.CharField(required=False, help_text="member, member_below, operator_scope: the namespace.")
    via = serializers.CharField(required=False, help_text="member_below: the namespace below it the agent belongs to.")
    shared_by = serializers.CharField(required=False, allow_null=True,
                                      help_text="shared_with: who granted the share (null when the audit trail has no "
                                      "record of it); `operator` for operators, unless you are one.")


class ReaderSerializer(serializers.Serializer):
    agent_id = serializers.CharField()
    reasons = AccessReasonSerializer(many=True)


class ReadersSerializer(serializers.Serializer):
    everyone = serializers.BooleanField(help_text="Public and system memories: every agent reads them.")
    reason = serializers.CharField(allow_null=True)
    agents = ReaderSerializer(many=True)
    truncated = serializers.BooleanField(help_text="The list stopped at 200 agents.")


class MemoryAccessSerializer(serializers.Serializer):
    memory_id = serializers.UUIDField()
    access_level = serializers.CharField()
    namespace = serializers.CharField()
    you = AccessReasonSerializer(many=True, help_text="Why you may read it.")
    readers = ReadersSerializer(allow_null=True, help_text="Who else may read it: for its owner and operators only.")
class TopicSerializer(serializers.Serializer):
    labels = serializers.ListField(child=serializers.CharField(), help_text="Its most distinctive words (tf-idf).")
    size = serializers.IntegerField(help_text="Memories in the topic (that the reader may read).")
    memory_ids = serializers.ListField(child=serializers.UUIDField(), help_text="Up to 10, nearest the centre first.")


class CoAccessSerializer(serializers.Serializer):
    memory_ids = serializers.ListField(child=serializers.UUIDField(), help_text="Two memories.")
    count = serializers.IntegerField(help_text="Searches that returned both among their first five results.")


class StaleSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    count = serializers.IntegerField()
    memory_ids = serializers.ListField(child=serializers.UUIDField(), help_text="Oldest first (up to 1,000).")


class ReturnedUnusedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    returned = serializers.IntegerField(help_text="Times searches returned it in the window.")


class MissedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    searches = serializers.IntegerField(help_text="Searches of other members close to it that used nothing found.")
    agents = serializers.IntegerField(help_text="Distinct members who made them.")


class PatternSerializer(serializers.Serializer):
    agent_id = serializers.CharField()
    computed_at = serializers.DateTimeField(allow_null=True)
    window_start = serializers.DateTimeField(allow_null=True)
    window_end = serializers.DateTimeField(allow_null=True)
    events = serializers.IntegerField(help_text="Usage events of the agent in the window.")
    memories = serializers.IntegerField(help_text="Embedded memories of the agent clustered into topics.")
    topics = TopicSerializer(many=True)
    co_access = CoAccessSerializer(many=True)
    search_categories = serializers.DictField(child=serializers.IntegerField(),
                                              help_text="Searches whose best result was in each category.")
    active_hours = serializers.ListField(child=serializers.IntegerField(), help_text="Events per hour of the day, UTC.")
    stale = StaleSerializer()
    returned_unused = ReturnedUnusedSerializer(many=True)
    missed_by_members = MissedSerializer(many=True)
