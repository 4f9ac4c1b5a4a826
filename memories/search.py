"""Search over the memories a caller may see: by meaning, by words, or both fused.

Visibility and filters are part of the SQL of every mode (never applied to results in
Python), so `limit` results come back whenever that many visible matches exist.

Semantic mode picks its plan by the size of the filtered candidate set: small sets are
scanned exactly (ordering by an expression the HNSW index cannot serve), large ones use the
HNSW index with pgvector's iterative scan so filtered-out rows do not starve the result.
Hybrid mode fuses the semantic and keyword rankings with weighted reciprocal-rank fusion,
then applies small, bounded boosts for learning_weight and recency.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import BooleanField, FloatField, QuerySet, Value
from django.db.models.expressions import ExpressionWrapper, RawSQL
from django.utils import timezone
from pgvector.django import CosineDistance

from tmws_site.errors import InvalidInput

from .choices import AccessLevel
from .models import TEXT_SEARCH_CONFIG, Memory

MODES = ("hybrid", "semantic", "keyword")
MAX_LIMIT = 100
EXACT_SCAN_THRESHOLD = 4000
HNSW_EF_SEARCH = 100
RRF_K = 60
SEMANTIC_WEIGHT = 1.0
KEYWORD_WEIGHT = 1.0
WEIGHT_BOOST = 0.05  # at most +/-5% for learning_weight
RECENCY_BOOST = 0.03  # at most +3% for a memory created just now
RECENCY_HALF_LIFE_DAYS = 30.0

# OR together the stemmed words of the query: natural questions rarely contain every word.
KEYWORD_QUERY_SQL = (
    "to_tsquery('simple', coalesce(nullif(array_to_string(array("
    "select quote_literal(lexeme) from unnest(tsvector_to_array(to_tsvector(%s::regconfig, %s))) as lexeme"
    "), ' | '), ''), ''''''))"
)


@dataclass
class SearchRequest:
    query: str
    limit: int = 10
    mode: str = "hybrid"
    namespace: str | None = None
    agent_id: str | None = None
    access_levels: list[str] | None = None
    context_tags: list[str] | None = None
    memory_category: str | None = None
    min_similarity: float | None = None
    query_vector: object = None  # precomputed (e.g. blended) query embedding


@dataclass
class SearchHit:
    memory: Memory
    score: float
    similarity: float | None


@dataclass
class SearchResult:
    hits: list[SearchHit]
    mode: str
    took_ms: float
    plan: dict = field(default_factory=dict)


def clean_request(data: dict) -> SearchRequest:
    """Validate a search body into a SearchRequest, naming the field at fault."""
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty string.", field="query")
    if len(query) > 10_000:
        raise InvalidInput("query is limited to 10000 characters.", field="query")
    limit = data.get("limit", 10)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}.", field="limit")
    mode = data.get("mode") or "hybrid"
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}.", field="mode")
    levels = data.get("access_levels")
    if levels is not None:
        if not isinstance(levels, list) or not all(level in AccessLevel.values for level in levels):
            raise InvalidInput(f"access_levels must be a list of {', '.join(AccessLevel.values)}.", field="access_levels")
    tags = data.get("context_tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or len(tags) > 50):
        raise InvalidInput("context_tags must be a list of at most 50 strings.", field="context_tags")
    for name in ("namespace", "agent_id", "memory_category"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 128):
            raise InvalidInput(f"{name} must be a string of at most 128 characters.", field=name)
    min_similarity = data.get("min_similarity")
    if min_similarity is not None and (
        isinstance(min_similarity, bool) or not isinstance(min_similarity, (int, float))
        or not -1.0 <= min_similarity <= 1.0
    ):
        raise InvalidInput("min_similarity must be a number from -1 to 1.", field="min_similarity")
    return SearchRequest(
        query=query.strip(),
        limit=limit,
        mode=mode,
        namespace=data.get("namespace") or None,
        agent_id=data.get("agent_id") or None,
        access_levels=levels or None,
        context_tags=tags or None,
        memory_category=data.get("memory_category") or None,
        min_similarity=float(min_similarity) if min_similarity is not None else None,
    )


def candidates(actor, request: SearchRequest) -> QuerySet:
    """The visible memories that pass the request's filters (no ordering yet)."""
    queryset = Memory.objects.visible_to(actor)
    if request.namespace:
        queryset = queryset.filter(namespace__namespace=request.namespace)
    if request.agent_id:
        queryset = queryset.filter(agent__agent_id=request.agent_id)
    if request.access_levels:
        queryset = queryset.filter(access_level__in=request.access_levels)
    if request.context_tags:
        queryset = queryset.filter(context_tags__contains=request.context_tags)
    if request.memory_category:
        queryset = queryset.filter(memory_category=request.memory_category)
    return queryset


def _candidate_count(queryset: QuerySet, cap: int) -> int:
    return queryset.values("pk")[:cap].count()


def semantic_ranking(queryset: QuerySet, vector, depth: int, plan: dict) -> list[tuple]:
    """(id, similarity) of the `depth` nearest candidates, exact for small candidate sets."""
    embedded = queryset.filter(embedding__isnull=False)
    distance = CosineDistance("embedding", vector)
    small = _candidate_count(embedded, EXACT_SCAN_THRESHOLD + 1) <= EXACT_SCAN_THRESHOLD
    plan["semantic"] = "exact" if small else "hnsw_iterative"
    if small:
        # Adding zero hides the distance from the HNSW index, so the planner filters first and sorts exactly.
        order = ExpressionWrapper(distance + Value(0.0), output_field=FloatField())
        rows = embedded.annotate(distance=order).order_by("distance").values_list("pk", "distance")[:depth]
        return [(pk, 1.0 - d) for pk, d in rows]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(HNSW_EF_SEARCH, depth)])
    rows = list(embedded.annotate(distance=distance).order_by("distance").values_list("pk", "distance")[:depth])
    rows.sort(key=lambda row: row[1])  # relaxed_order may return neighbours slightly out of order
    return [(pk, 1.0 - d) for pk, d in rows]


def keyword_ranking(queryset: QuerySet, text: str, depth: int) -> list[tuple]:
    """(id, rank) of the `depth` best full-text matches, any query word counting."""
    params = [TEXT_SEARCH_CONFIG, text]
    matches = RawSQL(f"search_vector @@ {KEYWORD_QUERY_SQL}", params, output_field=BooleanField())
    rank = RawSQL(f"ts_rank_cd(search_vector, {KEYWORD_QUERY_SQL}, 32)", params, output_field=FloatField())
    rows = (
        queryset.annotate(matches=matches)
        .filter(matches=True)
        .annotate(rank=rank)
        .order_by("-rank", "-created_at")
        .values_list("pk", "rank")[:depth]
    )
    return list(rows)


def _similarities(ids, vector) -> dict:
    rows = Memory.objects.filter(pk__in=ids, embedding__isnull=False).annotate(
        distance=CosineDistance("embedding", vector)
    ).values_list("pk", "distance")
    return {pk: 1.0 - d for pk, d in rows}


def _boost(memory: Memory, now) -> float:
    weight = max(memory.learning_weight, 0.0)
    weight_factor = 1.0 + WEIGHT_BOOST * math.tanh(math.log(weight)) if weight > 0 else 1.0 - WEIGHT_BOOST
    age_days = max((now - memory.created_at).total_seconds() / 86400.0, 0.0)
    recency_factor = 1.0 + RECENCY_BOOST * 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)
    return weight_factor * recency_factor


def fuse(rankings: list[tuple[list, float]]) -> dict:
    """Weighted reciprocal-rank fusion of ranked id lists."""
    scores: dict = {}
    for ranking, weight in rankings:
        for position, pk in enumerate(ranking):
            scores[pk] = scores.get(pk, 0.0) + weight / (RRF_K + position + 1)
    return scores


def query_embedding(text: str):
    from .embeddings import embed_text

    return embed_text(text)


def search(actor, request: SearchRequest) -> SearchResult:
    """Run a search for `actor`; only memories it may read can appear."""
    started = time.perf_counter()
    plan: dict = {}
    base = candidates(actor, request)
    depth = request.limit if request.mode != "hybrid" else max(request.limit * 4, 40)
    vector = request.query_vector
    if vector is None and request.mode != "keyword":
        vector = query_embedding(request.query)
    with transaction.atomic():
        semantic = semantic_ranking(base, vector, depth, plan) if request.mode != "keyword" else []
        keyword = keyword_ranking(base, request.query, depth) if request.mode != "semantic" else []
        similarity = dict(semantic)
        if request.mode == "semantic":
            scores = dict(semantic)
        elif request.mode == "keyword":
            scores = dict(keyword)
        else:
            scores = fuse([([pk for pk, _ in semantic], SEMANTIC_WEIGHT), ([pk for pk, _ in keyword], KEYWORD_WEIGHT)])
        missing = [pk for pk in scores if pk not in similarity]
        if vector is not None and missing:
            similarity.update(_similarities(missing, vector))
        memories = Memory.objects.select_related("agent", "namespace").in_bulk(list(scores))
    now = timezone.now()
    hits = []
    for pk, score in scores.items():
        memory = memories.get(pk)
        if memory is None:
            continue
        sim = similarity.get(pk)
        if request.min_similarity is not None and request.mode != "keyword":
            if sim is None or sim < request.min_similarity:
                continue
        if request.mode == "hybrid":
            score *= _boost(memory, now)
        hits.append(SearchHit(memory=memory, score=float(score), similarity=None if sim is None else float(sim)))
    hits.sort(key=lambda hit: hit.score, reverse=True)
    hits = hits[: request.limit]
    _track_hits([hit.memory.pk for hit in hits])
    return SearchResult(hits=hits, mode=request.mode, took_ms=(time.perf_counter() - started) * 1000, plan=plan)


def _track_hits(ids) -> None:
    if not ids:
        return
    from .tasks import record_memory_hits

    ids = [str(pk) for pk in ids]
    transaction.on_commit(lambda: record_memory_hits.delay(ids))

