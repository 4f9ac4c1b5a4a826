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

from core.errors import InvalidInput

from .search import SearchRequest, SearchResult, clean_request, search

MAX_TURNS = 20
MAX_TURN_LENGTH = 10_000
USED_TURNS = 6  # only the most recent turns take part in the blend
QUERY_WEIGHT = 0.6
CONVERSATION_WEIGHT = 0.25
TASK_WEIGHT = 0.15
TURN_DECAY = 0.5
TAG_BOOST = 0.25
NAMESPACE_BOOST = 0.1
TASK_FIELDS = {"title", "description", "tags", "namespace", "task_type", "memory_category"}


def _clean_turns(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TURNS:
        raise InvalidInput(
            f"conversation_context must be a list of at most {MAX_TURNS} turns.", field="conversation_context"
        )
    turns = []
    for index, turn in enumerate(value):
        if isinstance(turn, str):
            content = turn
        elif isinstance(turn, dict) and isinstance(turn.get("content"), str) and isinstance(turn.get("role", ""), str):
            content = turn["content"]
        else:
            raise InvalidInput(
                f"conversation_context[{index}] must be an object with a string 'content' (and 'role').",
                field="conversation_context",
            )
        if len(content) > MAX_TURN_LENGTH or "\x00" in content:
            raise InvalidInput(
                f"conversation_context[{index}] is limited to {MAX_TURN_LENGTH} characters.",
                field="conversation_context",
            )
        if content.strip():
            turns.append(content.strip())
    return turns


def _clean_task(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("task_context must be an object.", field="task_context")
    unknown = sorted(set(value) - TASK_FIELDS)
    if unknown:
        raise InvalidInput(
            f"task_context has unknown field '{unknown[0][:64]}'; allowed: {', '.join(sorted(TASK_FIELDS))}.",
            field="task_context",
        )
    task = {}
    for name in ("title", "description", "namespace", "task_type", "memory_category"):
        text = value.get(name)
        if text is not None and (not isinstance(text, str) or len(text) > MAX_TURN_LENGTH):
            raise InvalidInput(f"task_context.{name} must be a string.", field="task_context")
        if text:
            task[name] = text.strip()
    tags = value.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or len(tags) > 50 or not all(isinstance(t, str) and len(t) <= 128 for t in tags):
            raise InvalidInput("task_context.tags must be a list of at most 50 strings.", field="task_context")
        task["tags"] = [t.strip() for t in tags if t.strip()]
    return task


def clean_contextual_request(data: dict) -> tuple[SearchRequest, list[str], dict]:
    """Validate a contextual-search body: the search fields plus conversation_context and task_context."""
    request = clean_request(data)
    turns = _clean_turns(data.get("conversation_context"))
    task = _clean_task(data.get("task_context"))
    return request, turns, task


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
