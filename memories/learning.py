"""Learning jobs over an agent's own memories: how they are used, categories, and suggestions.

- `usage_report` counts what the agent stored and what searches returned (memory_usage).
- `categorise` files memories still in the default category under the category most of their
  nearest categorised neighbours (the agent's own, by embedding) carry, when enough of them
  agree and are close enough; with `apply` it stores those categories.
- `near_duplicates` groups the agent's memories worded almost alike: repeats, or a fact that
  changed (the model cannot tell "every 30 days" from "every 90 days"), to keep one of.
- `suggestions` turns all of it into concrete advice: memories to review, weights to change,
  embeddings to retry, categories to apply.

Everything works on memories the agent owns. When someone else asks (an operator, an admin
agent), `access.learning_memories_q` narrows them further to what that caller may
read, and `apply` to what it may change. Each function takes the caller as `actor`; without one,
the agent asks about itself.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

import access
from agents.models import Agent
from agents.services import get_agent
from core.errors import Forbidden, InvalidInput, NotFound
from core.models import count_by

from .choices import AccessLevel, EmbeddingStatus
from .contracts import MAX_BULK_UPDATE, MAX_CATEGORY_LENGTH
from .models import Memory, MemoryUsage, preview

DEFAULT_CATEGORY = "general"
STALE_DAYS = 30  # a memory this old that no search returned for as long is "unused"
NEIGHBOURS = 5
MIN_NEIGHBOUR_SIMILARITY = 0.35  # neighbours further away than this do not vote
MIN_AGREEMENT = 0.6  # share of the voting (close enough) neighbours that must name the category
MAX_REFERENCE_MEMORIES = 5000  # categorised memories compared against (the newest)
MAX_CATEGORISED_PER_RUN = 1000  # uncategorised memories looked at per run (the newest)
FREQUENT_HITS = 5
LISTED_IDS = 10
# Cosine similarity from which two memories count as worded almost alike. Set with a margin of 0.02
# or more from the pairs below at both precisions (float32 / int8, each text embedded alone; the
# near-duplicate tests run at both): "...rotates every 30 days." / "...every 90 days." 0.986 / 0.976;
# "User prefers dark mode in the editor." / "The user likes dark mode in the editor." 0.960 / 0.941;
# "Release 2.3 shipped on Tuesday." / "Release 2.4 shipped on Tuesday." 0.955 / 0.944; "...approval
# from Alice." / "...from Bob." 0.77. "Release 2.3 shipped on Monday." / "Release 2.4 shipped on
# Tuesday." (0.925 / 0.908) is a changed fact either side of it: a pair worth a look, not required.
NEAR_DUPLICATE_SIMILARITY = 0.92
MAX_DUPLICATE_SCAN = 2000  # the newest embedded memories compared pairwise


def subject(actor, agent_id=None) -> Agent:
    """The agent a learning job looks at: the caller, or the one named by whoever manages it."""
    principal = access.Principal.of(actor)
    if agent_id in (None, ""):
        if principal.agent is None:
            raise InvalidInput("agent_id is required: name the agent whose memories to analyse.", field="agent_id")
        return principal.agent
    agent = get_agent(agent_id)
    if not access.can_analyse(actor, agent):
        raise Forbidden(f"No right to analyse the memories of agent '{agent_id}'.", field="agent_id")
    return agent


def named_subject(actor, agent_id: str) -> Agent:
    """The agent named in a URL: 404 when there is none, 403 when the caller may not analyse it."""
    agent = Agent.objects.filter(agent_id=agent_id).select_related("namespace").first()
    if agent is None:
        raise NotFound(f"Agent '{agent_id}' not found.")
    if not access.can_analyse(actor, agent):
        raise Forbidden(f"No right to analyse the memories of agent '{agent_id}'.", field="agent_id")
    return agent


def _own(agent, actor=None, action=access.Action.VIEW):
    """The agent's current memories that `actor` (default: the agent itself) may read, or change for CHANGE."""
    return Memory.objects.filter(access.learning_memories_q(agent if actor is None else actor, agent, action)).current()


def usage_report(agent, now=None, *, actor=None) -> dict:
    """What the agent stored and what searches returned of it."""
    now = now or timezone.now()
    stale_before = now - timedelta(days=STALE_DAYS)
    memories = _own(agent, actor)
    counts = memories.aggregate(
        total=Count("pk"),
        never_returned=Count("pk", filter=Q(usage__isnull=True)),
        uncategorised=Count("pk", filter=Q(memory_category=DEFAULT_CATEGORY)),
    )
    hits = MemoryUsage.objects.filter(memory__in=memories.values("pk")).aggregate(total=Sum("access_count"))["total"] or 0
    unused = (
        memories.filter(created_at__lt=stale_before)
        .filter(Q(usage__isnull=True) | Q(usage__last_accessed_at__lt=stale_before))
        .order_by("created_at")
    )
    top = memories.filter(usage__access_count__gt=0).select_related("usage").order_by("-usage__access_count", "pk")
    return {
        "agent_id": agent.agent_id,
        "memories": counts["total"],
        "by_category": _counted(memories, "memory_category"),
        "by_access_level": _counted(memories, "access_level"),
        "by_embedding_status": _counted(memories, "embedding_status"),
        "search_hits": hits,
        "never_returned": counts["never_returned"],
        "uncategorised": counts["uncategorised"],
        "unused": {
            "days": STALE_DAYS,
            "count": unused.count(),
            "oldest_ids": [str(pk) for pk in unused.values_list("pk", flat=True)[:LISTED_IDS]],
        },
        "most_returned": [
            {"id": str(m.pk), "preview": m.preview, "hits": m.access_count, "learning_weight": m.learning_weight}
            for m in top[:5]
        ],
    }


def _counted(queryset, field: str) -> dict:
    return dict(sorted(count_by(queryset, field).items(), key=lambda row: (-row[1], row[0])))


def categorise(agent, apply: bool = False, *, actor=None) -> dict:
    """Categories for the agent's memories still in the default category; stored when `apply`.

    A caller other than the agent is proposed (and files) only memories it may itself change.
    """
    if not isinstance(apply, bool):
        raise InvalidInput("apply must be true or false.", field="apply")
    action = access.Action.CHANGE if apply else access.Action.VIEW
    # Only vectors of one model compare: rows of another wait for `manage.py reembed`.
    own = _own(agent, actor, action).filter(embedding_status=EmbeddingStatus.READY).embedded_by_configured_model()
    reference = list(
        own.exclude(memory_category=DEFAULT_CATEGORY).order_by("-created_at")
        .values_list("pk", "memory_category", "embedding")[:MAX_REFERENCE_MEMORIES]
    )
    pending = list(
        own.filter(memory_category=DEFAULT_CATEGORY).order_by("-created_at")
        .values_list("pk", "content", "embedding")[:MAX_CATEGORISED_PER_RUN]
    )
    proposals = _vote(reference, pending) if reference and pending else []
    applied = _apply(agent, proposals, actor) if apply else 0
    return {"considered": len(pending), "proposals": proposals, "applied": applied}


def _vote(reference: list, pending: list) -> list[dict]:
    categories = [category for _, category, _ in reference]
    known = np.asarray([vector for _, _, vector in reference], dtype=np.float32)
    asked = np.asarray([vector for _, _, vector in pending], dtype=np.float32)
    similarities = asked @ known.T  # embeddings are normalised: cosine similarity
    k = min(NEIGHBOURS, len(reference))
    nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    proposals = []
    for row, (pk, content, _) in enumerate(pending):
        votes = [(categories[i], float(similarities[row, i])) for i in nearest[row]]
        votes = [vote for vote in votes if vote[1] >= MIN_NEIGHBOUR_SIMILARITY]
        if not votes:
            continue
        category, count = Counter(category for category, _ in votes).most_common(1)[0]
        agreement = count / len(votes)
        if agreement < MIN_AGREEMENT:
            continue
        closeness = max(similarity for name, similarity in votes if name == category)
        proposals.append({
            "id": str(pk),
            "preview": preview(content),
            "category": category,
            "confidence": round(agreement * closeness, 3),
        })
    proposals.sort(key=lambda proposal: (-proposal["confidence"], proposal["id"]))
    return proposals


@transaction.atomic
def _apply(agent, proposals: list[dict], actor=None) -> int:
    by_category: dict[str, list[str]] = {}
    for proposal in proposals:
        by_category.setdefault(proposal["category"], []).append(proposal["id"])
    # Only rows still in the default category change: a category set meanwhile wins.
    return sum(
        _own(agent, actor, access.Action.CHANGE)
        .filter(pk__in=ids, memory_category=DEFAULT_CATEGORY)
        .update(memory_category=category)
        for category, ids in sorted(by_category.items())
    )


def near_duplicates(agent, *, actor=None) -> list[dict]:
    """Groups of the agent's memories worded almost alike (similarity >= NEAR_DUPLICATE_SIMILARITY).

    Each group lists its memories newest first; groups come largest first, then newest first.
    """
    rows = list(
        _own(agent, actor).filter(embedding_status=EmbeddingStatus.READY).embedded_by_configured_model()
        .order_by("-created_at", "pk")
        .values_list("pk", "content", "embedding")[:MAX_DUPLICATE_SCAN]
    )
    if len(rows) < 2:
        return []
    vectors = np.asarray([vector for _, _, vector in rows], dtype=np.float32)
    pairs = np.argwhere(np.triu(vectors @ vectors.T >= NEAR_DUPLICATE_SIMILARITY, k=1))
    group_of = list(range(len(rows)))  # union-find over the pairs: alike-ness chains into one group

    def root(index: int) -> int:
        while group_of[index] != index:
            group_of[index] = group_of[group_of[index]]
            index = group_of[index]
        return index

    for first, second in pairs:
        group_of[root(int(second))] = root(int(first))
    members: dict[int, list[int]] = {}
    for index in sorted({int(i) for pair in pairs for i in pair}):
        members.setdefault(root(index), []).append(index)
    groups = sorted(members.values(), key=lambda group: (-len(group), group[0]))
    return [
        {"memory_ids": [str(rows[i][0]) for i in group], "preview": preview(rows[group[0]][1])}
        for group in groups
    ]


def suggestions(agent, report: dict, categorised: dict, alike: list[dict] | None = None, *, actor=None) -> list[dict]:
    """Concrete advice from a usage report and a categorisation run (most useful first)."""
    advice = []
    failed = report["by_embedding_status"].get(EmbeddingStatus.FAILED, 0)
    if failed:
        advice.append({
            "kind": "retry_embeddings",
            "count": failed,
            "message": f"{failed} memories have no embedding and are found by keyword only; edit them, or ask an "
            "operator to run manage.py embed_pending --retry-failed.",
        })
    if categorised["proposals"]:
        count = len(categorised["proposals"])
        advice.append({
            "kind": "apply_categories",
            "count": count,
            "message": f"{count} memories in '{DEFAULT_CATEGORY}' match a category of their nearest neighbours; "
            "POST /api/v2/memories/categorise with {\"apply\": true} (or the categorise_memories tool) files them.",
        })
    if alike:
        advice.append({
            "kind": "review_near_duplicates",
            "count": len(alike),
            "groups": [group["memory_ids"] for group in alike[:LISTED_IDS]],
            "message": f"{len(alike)} groups of memories are worded almost alike: repeats, or a fact that changed. "
            "Merge each group into one memory (POST /api/v2/memories/merge with its memory_ids, or the merge_memories "
            "tool; the originals stay restorable), or keep the one that is true and delete the others: copies take "
            "places in search results.",
        })
    frequent = _own(agent, actor).filter(usage__access_count__gte=FREQUENT_HITS, learning_weight__lt=1.0)
    if frequent.exists():
        ids = [str(pk) for pk in frequent.order_by("-usage__access_count", "pk").values_list("pk", flat=True)[:LISTED_IDS]]
        advice.append({
            "kind": "raise_weight",
            "count": frequent.count(),
            "memory_ids": ids,
            "message": f"Searches return these memories often ({FREQUENT_HITS}+ times) though their learning_weight "
            "is below 1; raising it ranks them higher.",
        })
    unused = report["unused"]
    if unused["count"]:
        advice.append({
            "kind": "review_unused",
            "count": unused["count"],
            "memory_ids": unused["oldest_ids"],
            "message": f"{unused['count']} memories older than {STALE_DAYS} days were not returned by any search in "
            f"{STALE_DAYS} days; delete those no longer true, or lower their learning_weight.",
        })
    return advice + pattern_suggestions(agent, actor=actor)


# Suggestions from the stored patterns (memories.patterns); each is applied by the one call in its "apply".
SPLIT_MIN_MEMORIES = 8  # a category this large ...
SPLIT_MIN_SHARE = 0.25  # ... whose memories fall into two topics or more holding this share each ...
SPLIT_MIN_PART = 3  # ... and this many memories each, is over-broad
LOWERED_WEIGHT = 0.5
ARCHIVE_GRACE_DAYS = 30
BULK_UPDATE = "POST /api/v2/memories/bulk-update"


def _bulk(ids: list[str], **change) -> dict:
    return {"endpoint": BULK_UPDATE, "tool": "bulk_update_memories", "body": {"memory_ids": ids, **change}}


def pattern_suggestions(agent, *, actor=None) -> list[dict]:
    """Split an over-broad category, share what other members keep looking for, lower the weight of memories
    returned but never used, archive stale ones: from the agent's stored pattern, for memories the caller may change."""
    from .patterns import get_pattern

    pattern = get_pattern(actor, agent)
    if pattern is None:
        return []
    changeable = dict(
        (str(pk), (category, weight, expires_at)) for pk, category, weight, expires_at in
        _own(agent, actor, access.Action.CHANGE).values_list("pk", "memory_category", "learning_weight", "expires_at")
    )
    advice = _split_suggestions(pattern, changeable)
    for item in pattern.missed_by_members[:LISTED_IDS]:
        if item["id"] in changeable:
            advice.append({
                "kind": "share_with_members",
                "count": 1,
                "memory_ids": [item["id"]],
                "searches": item["searches"],
                "agents": item["agents"],
                "message": f"Other members of your namespace searched {item['searches']} times for something close to "
                "this private memory and used nothing they found; sharing it in its namespace lets them find it.",
                "apply": {"endpoint": f"PATCH /api/v2/memories/{item['id']}", "tool": "update_memory",
                          "body": {"access_level": AccessLevel.SHARED}},
            })
    unused = [item["id"] for item in pattern.returned_unused
              if item["id"] in changeable and changeable[item["id"]][1] > LOWERED_WEIGHT]
    if unused:
        advice.append({
            "kind": "lower_weight",
            "count": len(unused),
            "memory_ids": unused[:LISTED_IDS],
            "message": f"{len(unused)} memories were returned by your searches at least 5 times and never used (read, "
            f"voted on or named by a task within the hour); a learning_weight of {LOWERED_WEIGHT} ranks them lower.",
            "apply": _bulk(unused[:MAX_BULK_UPDATE], learning_weight=LOWERED_WEIGHT),
        })
    stale = [pk for pk in pattern.stale.get("memory_ids", []) if pk in changeable and changeable[pk][2] is None]
    if stale:
        advice.append({
            "kind": "archive_stale",
            "count": len(stale),
            "memory_ids": stale[:LISTED_IDS],
            "message": f"{len(stale)} memories older than {pattern.stale.get('days')} days were never returned by a "
            f"search. Archiving gives them an expiry {ARCHIVE_GRACE_DAYS} days away: they stay readable until then "
            "(clear expires_at to keep one) and are deleted after.",
            "apply": _bulk(stale[:MAX_BULK_UPDATE], ttl_seconds=ARCHIVE_GRACE_DAYS * 86400),
        })
    return advice


def _split_suggestions(pattern, changeable: dict) -> list[dict]:
    """A part of an over-broad category per topic but its largest: moved to '<category>-<topic word>'."""
    by_category: dict[str, list[list[str]]] = {}
    for topic in pattern.topics:
        parts: dict[str, list[str]] = {}
        for pk in topic["memory_ids"]:
            if pk in changeable:
                parts.setdefault(changeable[pk][0], []).append(pk)
        for category, ids in parts.items():
            by_category.setdefault(category, []).append([topic["labels"][0] if topic["labels"] else "", *ids])
    advice = []
    for category, parts in sorted(by_category.items()):
        total = sum(len(part) - 1 for part in parts)
        broad = [part for part in parts if len(part) - 1 >= max(SPLIT_MIN_PART, SPLIT_MIN_SHARE * total)]
        if total < SPLIT_MIN_MEMORIES or len(broad) < 2:
            continue
        broad.sort(key=lambda part: (-(len(part) - 1), part[0]))
        for word, *ids in broad[1:]:
            new_category = f"{category}-{word}"[:MAX_CATEGORY_LENGTH] if word else f"{category}-2"
            advice.append({
                "kind": "split_category",
                "count": len(ids),
                "memory_ids": ids[:LISTED_IDS],
                "category": category,
                "new_category": new_category,
                "message": f"Category '{category}' holds {total} memories on {len(broad)} distinct topics; moving "
                f"the {len(ids)} about '{word}' to '{new_category}' keeps each category about one thing.",
                "apply": _bulk(ids[:MAX_BULK_UPDATE], memory_category=new_category),
            })
    return advice


def insights(agent, *, actor=None) -> dict:
    """The usage report, categorisation proposals (not applied), near duplicates and suggestions for one agent."""
    report = usage_report(agent, actor=actor)
    categorised = categorise(agent, actor=actor)
    alike = near_duplicates(agent, actor=actor)
    return {
        "usage": report,
        "categories": categorised,
        "near_duplicates": alike,
        "suggestions": suggestions(agent, report, categorised, alike, actor=actor),
    }
