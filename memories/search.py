"""Search over the memories a caller may see: by meaning, by words, or both fused.

Visibility and filters are part of the SQL of every mode (never applied to results in
Python), so `limit` results come back whenever that many visible matches exist.

Semantic ranking picks its plan by the planner's estimate of the filtered candidate set:
small sets are scanned exactly, ordering by an expression the HNSW index cannot serve, so
the planner filters first and sorts the few survivors; large sets use the HNSW index with
pgvector's iterative scan, so rows removed by the filters do not starve the result, and an
index scan that comes back short is redone exactly. The threshold is measured by
`python -m bench.search` (see docs/search.md).

Keyword ranking is Okapi BM25 (memories.keyword). Hybrid mode adds the BM25 score divided by
the query's best to the cosine similarity, each raised by the best score among the memory's
neighbouring turns (memories.neighbours), and ranks those neighbours too; then it applies small,
bounded boosts for learning_weight and recency. Contextual search (memories.contextual)
reuses this with a blended query vector and extra boosts for the task's tags and namespace.
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import FloatField, QuerySet, Value
from django.db.models.expressions import ExpressionWrapper, RawSQL
from django.utils import timezone
from pgvector import Vector
from pgvector.django import CosineDistance

from access import Principal
from agents.models import Agent
from core.db import agent_search_context, current_agent_id, service_role
from namespaces.models import Namespace

from .contracts import SearchMemories
from .keyword import KeywordQuery, bm25_ranking, keyword_query
from .models import Memory
from .neighbours import adjacency, neighbour_windows
from .patterns import Signals, signals

# Candidate sets up to this size are ranked by an exact scan; larger ones through HNSW.
EXACT_SCAN_THRESHOLD = 4000
HNSW_EF_SEARCH = 60
# Fusion settings chosen on the tuning conversations of the LoCoMo dev split (docs/search.md): a
# hybrid score is KEYWORD_SHARE of the BM25 score divided by the query's best, plus the rest of the
# cosine similarity; each part gains NEIGHBOUR_WEIGHT times its best neighbour's.
KEYWORD_SHARE = 0.4
NEIGHBOUR_WEIGHT = 0.3
HYBRID_DEPTH_FACTOR = 2  # each ranking contributes limit * factor candidates (at least HYBRID_MIN_DEPTH)
HYBRID_MIN_DEPTH = 20
WEIGHT_BOOST = 0.05  # learning_weight moves a score by at most +/-5%
RECENCY_BOOST = 0.03  # a memory created just now gains at most +3%, halving every RECENCY_HALF_LIFE_DAYS
RECENCY_HALF_LIFE_DAYS = 30.0
# Learned ranking (TMWS_LEARNED_RANKING, docs/learning.md): bounded moves from the agent's stored pattern.
CO_ACCESS_BOOST = 0.05
CO_ACCESS_ANCHORS = 3
UNUSED_PENALTY = 0.05
# One helper thread computes query embeddings while the request thread queries the database.
_embedder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-embedding")

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
    boost_tags: list[str] | None = None  # contextual: memories sharing these tags rank higher
    boost_namespace: str | None = None  # contextual: memories in this namespace rank higher
    tag_boost: float = 0.0
    namespace_boost: float = 0.0


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


def search_request(data: SearchMemories) -> SearchRequest:
    """The search a validated request body asks for."""
    return SearchRequest(
        query=data.query, limit=data.limit, mode=data.mode, namespace=data.namespace, agent_id=data.agent_id,
        access_levels=list(data.access_levels) if data.access_levels else None,
        context_tags=list(data.context_tags) if data.context_tags else None,
        memory_category=data.memory_category, min_similarity=data.min_similarity,
    )


def clean_request(data) -> SearchRequest:
    """A search body (parsed JSON, e.g. a workflow step's parameters) checked by its contract."""
    return search_request(SearchMemories.parse(data))


def namespace_key(slug: str):
    """The primary key of the namespace named `slug`, or None."""
    return Namespace.objects.filter(namespace=slug).values_list("pk", flat=True).first()


def candidates(actor, request: SearchRequest, rls: bool | None = None, visible: QuerySet | None = None) -> QuerySet:
    """The visible memories (`visible`, when already built) that pass the request's filters (no ordering yet).

    Without filters it returns `visible` itself, so a caller can tell that nothing narrows it.
    """
    queryset = Memory.objects.visible_to(actor) if visible is None else visible
    # Names are resolved to keys first: a constant key lets the planner use its statistics for
    # that owner or namespace, where a join would leave it guessing an average.
    if request.namespace:
        namespace_id = namespace_key(request.namespace)
        queryset = queryset.filter(namespace_id=namespace_id) if namespace_id else queryset.none()
    if request.agent_id:
        agent_pk = Agent.objects.filter(agent_id=request.agent_id).values_list("pk", flat=True).first()
        queryset = queryset.filter(agent_id=agent_pk) if agent_pk else queryset.none()
    if request.access_levels:
        queryset = queryset.filter(access_level__in=request.access_levels)
    if request.context_tags:
        if under_agent_rls(actor) if rls is None else rls:
            # Under RLS the GIN index only helps through the definer function (see migration 0003).
            tagged = RawSQL("SELECT tmws_tagged_memory_ids(%s::jsonb)", [json.dumps(request.context_tags)])
            queryset = queryset.filter(id__in=tagged)
        else:
            queryset = queryset.filter(context_tags__contains=request.context_tags)
    if request.memory_category:
        queryset = queryset.filter(memory_category=request.memory_category)
    return queryset


def under_agent_rls(actor) -> bool:
    """Whether this transaction runs as `actor`'s agent under row-level security right now."""
    agent = Principal.of(actor).agent
    return agent is not None and current_agent_id() == str(agent.pk)


def _result_rows(queryset: QuerySet, vector=None) -> QuerySet:
    """The memories to return, with their distance to `vector` (when given) and without heavy columns.

    Unordered (the ranking orders them): sorting by the model's default order cost a sort and its SQL.
    """
    queryset = queryset.for_display().order_by()
    return queryset.annotate(distance=CosineDistance("embedding", vector)) if vector is not None else queryset


def candidate_count(queryset: QuerySet, cap: int) -> int:
    """How many rows pass the filters, counting no further than `cap`."""
    return queryset.values("pk")[:cap].count()


# An agent searches many times with the same visibility and filters, and the estimate moves
# slowly: it is kept for a minute per distinct candidate query (an over-old guess only costs
# speed, since a short HNSW answer is redone exactly).
ESTIMATE_CACHE_SECONDS = 60
ESTIMATE_CACHE_SIZE = 1024
_estimates: dict = {}


def estimated_candidates(queryset: QuerySet) -> int:
    """The planner's estimate of the filtered candidate count: no rows are read.

    Counting for real costs as much as the exact scan it is meant to avoid once the visibility
    OR and the row-level-security policy are in play (they cannot be served by one index), so
    the plan choice uses the estimate and `semantic_ranking` corrects a wrong guess. The query is
    planned as the service role: it carries the read rule itself, and under RLS the planner would
    apply the policy's selectivity on top of the same rule's (a quarter of the real count for an
    agent's whole visible set), choosing an exact scan of 10,000 rows. Only the choice is used.
    """
    try:
        sql, params = queryset.values("pk").query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing (an unknown namespace or agent)
        return 0
    key = (sql, repr(params))
    now = time.monotonic()
    cached = _estimates.get(key)
    if cached is not None and now - cached[0] < ESTIMATE_CACHE_SECONDS:
        return cached[1]
    with service_role(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    rows = int(plan[0]["Plan"]["Plan Rows"])
    if len(_estimates) >= ESTIMATE_CACHE_SIZE:
        _estimates.pop(next(iter(_estimates)))  # the oldest entry
    _estimates[key] = (now, rows)
    return rows


class Candidate(NamedTuple):
    """A ranked memory with what scoring needs, read by the ranking query itself (no second fetch)."""

    pk: object
    value: float  # the ranking's own score: similarity (semantic) or text rank (keyword)
    learning_weight: float
    created_at: object
    context_tags: list
    namespace_id: object
    session_key: str | None  # None: the memory has no neighbours (docs/search.md)


SCORING_FIELDS = ("learning_weight", "created_at", "context_tags", "namespace_id", "session_key")


def _semantic_candidates(rows) -> list[Candidate]:
    return [
        Candidate(pk, 1.0 - distance, weight, created_at, tags or [], namespace_id, session)
        for pk, distance, weight, created_at, tags, namespace_id, session in rows
    ]


def semantic_ranking(queryset: QuerySet, vector, depth: int, plan: dict, exact: bool | None = None) -> list[Candidate]:
    """The `depth` nearest candidates, best first; exact for small candidate sets."""
    embedded = queryset.embedded_by_configured_model()
    distance = CosineDistance("embedding", vector)
    if exact is None:
        exact = estimated_candidates(embedded) <= EXACT_SCAN_THRESHOLD
    plan["semantic"] = "exact" if exact else "hnsw_iterative"
    if not exact:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = {int(max(HNSW_EF_SEARCH, depth))}"
            )
        rows = list(
            embedded.annotate(distance=distance).order_by("distance")
            .values_list("pk", "distance", *SCORING_FIELDS)[:depth]
        )
        if len(rows) == depth:
            rows.sort(key=lambda row: row[1])  # relaxed_order may return neighbours slightly out of order
            return _semantic_candidates(rows)
        # The index scan gave up early (hnsw.max_scan_tuples) or the estimate was far off: the set is
        # small enough that an exact scan is cheap, and it is the only way to be sure nothing is missing.
        plan["semantic"] = "exact_after_hnsw"
    # Adding zero hides the distance from the HNSW index, so the planner filters first and sorts exactly.
    # The ranking reads only keys and distances, so an owner's memories come from the memories_owner_vectors
    # index alone; the scoring columns are read for the `depth` winners only.
    order = ExpressionWrapper(distance + Value(0.0), output_field=FloatField())
    nearest = embedded.annotate(distance=order).order_by("distance", "pk").values("pk")[:depth]
    rows = sorted(
        Memory.objects.filter(pk__in=nearest).order_by().annotate(distance=distance)
        .values_list("pk", "distance", *SCORING_FIELDS),
        key=lambda row: (row[1], row[0]),
    )
    return _semantic_candidates(rows)


def keyword_ranking(
    queryset: QuerySet, query: KeywordQuery, depth: int, filtered: bool, vector=None, min_similarity=None
) -> list[Candidate]:
    """The `depth` best BM25 matches, best first (`filtered`: the queryset narrows what the caller reads).

    With a vector and `min_similarity`, the threshold is applied in SQL so rows below it never
    take a place in the ranking.
    """
    if vector is not None and min_similarity is not None:
        queryset = queryset.embedded_by_configured_model().alias(distance=CosineDistance("embedding", vector)).filter(
            distance__lte=1.0 - min_similarity
        )
        filtered = True
    rows = bm25_ranking(queryset, query, depth, SCORING_FIELDS, filtered)
    return [
        Candidate(pk, score, weight, created_at, tags or [], namespace_id, session)
        for pk, score, weight, created_at, tags, namespace_id, session in rows
    ]


def learned_factors(scores: dict, learned: Signals) -> None:
    """Move hybrid scores by what the agent's pattern learned, within bounded factors (TMWS_LEARNED_RANKING).

    A memory often returned together with one of the current top CO_ACCESS_ANCHORS gains up to CO_ACCESS_BOOST
    (by the strength of the pair); a memory the agent's searches returned often and it never used loses
    UNUSED_PENALTY. So a factor stays within [1 - UNUSED_PENALTY, 1 + CO_ACCESS_BOOST].
    """
    if not learned.co_access and not learned.unused:
        return
    anchors = [str(pk) for pk in sorted(scores, key=lambda pk: (-scores[pk], str(pk)))[:CO_ACCESS_ANCHORS]]
    for pk, score in scores.items():
        key = str(pk)
        factor = 1.0
        links = learned.co_access.get(key)
        if links:
            factor += CO_ACCESS_BOOST * max([0.0, *(links.get(anchor, 0.0) for anchor in anchors if anchor != key)])
        if key in learned.unused:
            factor -= UNUSED_PENALTY
        if factor != 1.0:
            scores[pk] = _scaled(score, factor)


def learning_and_recency_factor(memory, now) -> float:
    """Bounded multiplier: learning_weight (1.0 neutral) and how recently the memory was made."""
    weight = max(memory.learning_weight, 0.0)
    weight_factor = 1.0 + WEIGHT_BOOST * math.tanh(math.log(weight)) if weight > 0 else 1.0 - WEIGHT_BOOST
    age_days = max((now - memory.created_at).total_seconds() / 86400.0, 0.0)
    recency_factor = 1.0 + RECENCY_BOOST * 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)
    return weight_factor * recency_factor


def context_factor(memory: Candidate, request: SearchRequest, boost_namespace_id=None) -> float:
    """Bounded multiplier for contextual search: shared tags and the task's namespace."""
    factor = 1.0
    if request.boost_tags and request.tag_boost:
        wanted = {tag.lower() for tag in request.boost_tags}
        overlap = len(wanted & {tag.lower() for tag in memory.context_tags or []})
        factor += request.tag_boost * overlap / len(wanted)
    if boost_namespace_id is not None and request.namespace_boost and memory.namespace_id == boost_namespace_id:
        factor += request.namespace_boost
    return factor


class Fusion(NamedTuple):
    """What a hybrid score is made of, for every memory the rankings or their neighbours brought in."""

    keyword: dict  # pk -> BM25 score divided by the best BM25 score of the query
    semantic: dict  # pk -> cosine similarity (0 for a memory not embedded yet)
    links: dict  # pk -> the pks of its neighbours


# Both scores of the memories a hybrid search fuses, in one statement. The ids come from the
# caller's rankings and neighbour windows, so they are readable already (and agents' statements
# run under row-level security); the scores function applies the read rule itself.
FUSION_SQL = """
SELECT memory.id, memory.embedding <=> %s::vector, memory.embedding_model, {score}
  FROM memories memory{join}
 WHERE memory.id = ANY (%s::uuid[])
"""


def fusion_inputs(visible: QuerySet, query: KeywordQuery, vector: Value, pks: set, in_sessions: set) -> Fusion:
    """Both scores of the ranked memories and of their neighbours (two windows deep).

    Only memories in a session (`in_sessions`) have neighbours; without any, no look-up is made.
    """
    windows = neighbour_windows(visible, in_sessions)
    links = adjacency(windows)
    ids = [str(pk) for pk in set(pks) | set(links)]
    if query:
        scores, score_params = query.scores_sql(None, ids)
        sql = FUSION_SQL.format(score="scored.score", join=f"\n  LEFT JOIN {scores} scored ON scored.memory_id = memory.id")
    else:
        sql, score_params = FUSION_SQL.format(score="NULL::float8", join=""), []
    with connection.cursor() as cursor:
        cursor.execute(sql, [vector.value, *score_params, ids])
        rows = cursor.fetchall()
    from .embeddings import configured_model

    model = configured_model().name
    keyword, semantic = {}, {}
    for pk, distance, embedded_by, score in rows:
        keyword[pk] = score or 0.0
        # A vector of another model lives in another space: no similarity until it is re-embedded.
        semantic[pk] = 0.0 if distance is None or embedded_by != model else 1.0 - distance
    best = max(keyword.values(), default=0.0)
    if best > 0:
        keyword = {pk: score / best for pk, score in keyword.items()}
    return Fusion(keyword, semantic, links)


def fused_score(fusion: Fusion, pk) -> float:
    """KEYWORD_SHARE of the normalised BM25 plus the rest of the similarity, each raised by its best neighbour's."""
    def with_context(scores: dict) -> float:
        context = max([0.0, *(scores.get(other, 0.0) for other in fusion.links.get(pk, ()))])
        return scores.get(pk, 0.0) + NEIGHBOUR_WEIGHT * context

    return KEYWORD_SHARE * with_context(fusion.keyword) + (1.0 - KEYWORD_SHARE) * with_context(fusion.semantic)


def query_vector_value(vector) -> Value | None:
    """The query vector as the text PostgreSQL reads, made once: each search compares it in several statements."""
    return None if vector is None else Value(Vector(vector).to_text())


def query_embedding(text: str, asker=None):
    from .embeddings import embed_query

    return embed_query(text, asker)


def _scaled(score: float, factor: float) -> float:
    # Raises a score by the factor whatever its sign (semantic scores are similarities and may be negative).
    return score + abs(score) * (factor - 1.0)


def search(actor, request: SearchRequest) -> SearchResult:
    """Run a search for `actor`; only memories it may read can appear.

    The query embedding is computed on a helper thread while this one resolves the candidates
    and runs the keyword ranking, which need no vector (the model releases the GIL).
    """
    started = time.perf_counter()
    plan: dict = {}
    mode = request.mode
    depth = request.limit if mode != "hybrid" else max(request.limit * HYBRID_DEPTH_FACTOR, HYBRID_MIN_DEPTH)
    contextual = bool(request.boost_tags or request.boost_namespace)
    if contextual and mode != "hybrid":
        depth = max(request.limit * HYBRID_DEPTH_FACTOR, HYBRID_MIN_DEPTH)  # room for boosts to reorder
    vector = request.query_vector
    pending = None
    principal = Principal.of(actor)
    if vector is None and (mode != "keyword" or request.min_similarity is not None):
        pending = _embedder.submit(query_embedding, request.query, principal.user_id)
    agent = principal.agent
    # The request's own transaction is enough: no savepoint (a failure fails the request anyway).
    with transaction.atomic(savepoint=False), agent_search_context(agent) as rls:
        # Resolves the caller's namespaces once; expired and retired rows may rank, the page below leaves them out.
        visible = Memory.objects.visible_to(actor, current=False)
        base = candidates(actor, request, rls, visible)
        words = keyword_query(actor, request.query) if mode != "semantic" else None
        keyword = []
        if mode != "semantic" and request.min_similarity is None:
            # candidates() hands back `visible` itself when no filter narrows it.
            keyword = keyword_ranking(base, words, depth, filtered=base is not visible)
        if pending is not None:
            vector = pending.result()
        vector = query_vector_value(vector)
        semantic = semantic_ranking(base, vector, depth, plan) if mode != "keyword" else []
        if request.min_similarity is not None:
            # Rows come best first, so cutting here keeps a correct prefix of the ranking.
            semantic = [row for row in semantic if row.value >= request.min_similarity]
            if mode != "semantic":
                keyword = keyword_ranking(base, words, depth, True, vector, request.min_similarity)
        rows = {row.pk: row for row in keyword}
        rows.update((row.pk, row) for row in semantic)
        if mode == "hybrid":
            scores = hybrid_scores(request, visible, base, words, vector, rows)
        else:
            scores = {row.pk: row.value for row in semantic or keyword}
        boost_namespace_id = namespace_key(request.boost_namespace) if request.boost_namespace else None
        now = timezone.now()
        for pk, score in scores.items():
            if mode == "hybrid":
                score *= learning_and_recency_factor(rows[pk], now)
            if contextual:
                score = _scaled(score, context_factor(rows[pk], request, boost_namespace_id))
            scores[pk] = score
        if mode == "hybrid" and agent is not None and settings.TMWS_LEARNED_RANKING:
            learned_factors(scores, signals(agent))
        top = sorted(scores, key=lambda pk: (-scores[pk], str(pk)))[: request.limit]
        # Deleted, expired or retired meanwhile: left out (a keyword ranking over every visible row reads no queryset).
        memories = _result_rows(Memory.objects.current().filter(pk__in=top), vector).in_bulk()
    hits = [
        SearchHit(memory=memory, score=float(scores[pk]), similarity=_similarity(memory))
        for pk in top
        if (memory := memories.get(pk)) is not None
    ]
    result = SearchResult(hits=hits, mode=mode, took_ms=(time.perf_counter() - started) * 1000, plan=plan)
    track_search(actor, request, result)
    return result


def hybrid_scores(
    request: SearchRequest, visible: QuerySet, base: QuerySet, words: KeywordQuery, vector, rows: dict
) -> dict:
    """Fused scores of the ranked memories and of their neighbours that pass the request's filters.

    `rows` gains a Candidate for each neighbour taken in, so boosts can be applied to it.
    """
    in_sessions = {pk for pk, row in rows.items() if row.session_key is not None}
    fusion = fusion_inputs(visible, words, vector, set(rows), in_sessions)
    brought_in = {other for pk in rows for other in fusion.links.get(pk, ())} - set(rows)
    if brought_in:
        eligible = base.filter(pk__in=list(brought_in)).order_by().values_list("pk", *SCORING_FIELDS)
        for pk, weight, created_at, tags, namespace_id, session in eligible:
            if request.min_similarity is None or fusion.semantic.get(pk, 0.0) >= request.min_similarity:
                rows[pk] = Candidate(pk, 0.0, weight, created_at, tags or [], namespace_id, session)
    return {pk: fused_score(fusion, pk) for pk in rows}


def _similarity(memory) -> float | None:
    from .embeddings import configured_model

    distance = getattr(memory, "distance", None)
    # A row embedded by another model has no similarity to this query (its vector lives in another space).
    return None if distance is None or memory.embedding_model != configured_model().name else 1.0 - distance


def track_search(actor, request: SearchRequest, result: SearchResult) -> None:
    """Count the hits and record the search's usage event in the background once the request commits.

    Both ride in the hit buffer (memories.hits): no statement is added to the search. A failure to
    queue them (the broker down) is logged and never fails the search.
    """
    from .usage import search_event, track

    ids = [hit.memory.pk for hit in result.hits]
    track(ids, [search_event(actor, mode=result.mode, duration_ms=result.took_ms, memory_ids=ids, query=request.query)])
