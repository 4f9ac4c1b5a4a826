"""Contextual search: rank memories by the query *and* what the conversation and task are about.

Method (documented in docs/search.md):
1. One query vector blends the query embedding with the embeddings of the recent
   conversation turns and of the task's title/description. The query keeps most of the
   weight (QUERY_WEIGHT); the turns share CONVERSATION_WEIGHT with the most recent turn
   counting most (weights halve per step back); the task text gets TASK_WEIGHT. The blend is
   re-normalised, so cosine similarity keeps its usual scale.
2. The keyword side still matches the query's own words only: context words would flood it.
3. After fusion, memories carrying the task's tags gain up to TAG_BOOST (in proportion to the
   share of the task's tags they carry) and memories in the task's namespace gain
   NAMESPACE_BOOST. Both are bounded multipliers, so context reorders close results but
   never lifts an unrelated memory over a clearly better one.
"""
from __future__ import annotations

import numpy as np

from .contracts import ContextualSearch
from .search import SearchRequest, SearchResult, search, search_request

USED_TURNS = 6  # only the most recent turns take part in the blend
QUERY_WEIGHT = 0.6
CONVERSATION_WEIGHT = 0.25
TASK_WEIGHT = 0.15
TURN_DECAY = 0.5
TAG_BOOST = 0.25
NAMESPACE_BOOST = 0.1


def contextual_request(data: ContextualSearch) -> tuple[SearchRequest, list[str], dict]:
    """The search, the conversation's non-blank turns and the task's given fields a validated body asks for."""
    turns = [turn.content for turn in data.conversation_context or () if turn.content]
    task = data.task_context.given() if data.task_context else {}
    if task.get("tags"):
        task["tags"] = [tag.strip() for tag in task["tags"] if tag.strip()]
    task = {name: value for name, value in task.items() if value}
    return search_request(data), turns, task


def clean_contextual_request(data) -> tuple[SearchRequest, list[str], dict]:
    """A contextual-search body (parsed JSON) checked by its contract."""
    return contextual_request(ContextualSearch.parse(data))


def blend(query_vector, turn_vectors, task_vector=None):
    """The normalised weighted blend of the query, the recent turns (latest heaviest) and the task text."""
    total = np.asarray(query_vector, dtype=np.float32) * QUERY_WEIGHT
    if len(turn_vectors):
        weights = np.array([TURN_DECAY**age for age in range(len(turn_vectors))][::-1], dtype=np.float32)
        weights *= CONVERSATION_WEIGHT / weights.sum()
        total = total + (np.asarray(turn_vectors, dtype=np.float32) * weights[:, None]).sum(axis=0)
    if task_vector is not None:
        total = total + np.asarray(task_vector, dtype=np.float32) * TASK_WEIGHT
    norm = float(np.linalg.norm(total))
    return total / norm if norm else total


def contextual_search(actor, request: SearchRequest, turns: list[str], task: dict) -> SearchResult:
    """Search with the conversation and the task shaping the ranking (see the module docstring)."""
    from .embeddings import embed_queries

    recent = turns[-USED_TURNS:]
    task_text = " ".join(part for part in (task.get("title"), task.get("description")) if part)
    if request.mode != "keyword" or request.min_similarity is not None:
        # The conversation and the task are part of the question: they are embedded as queries.
        vectors = embed_queries([request.query, *recent, *([task_text] if task_text else [])])
        request.query_vector = blend(
            vectors[0], vectors[1 : 1 + len(recent)], vectors[1 + len(recent)] if task_text else None
        )
    if task.get("tags"):
        request.boost_tags, request.tag_boost = task["tags"], TAG_BOOST
    if task.get("namespace"):
        request.boost_namespace, request.namespace_boost = task["namespace"], NAMESPACE_BOOST
    return search(actor, request)
