"""DB-level search figures: the memories.search code path, timed inside the database process's client."""
from __future__ import annotations

import time

import numpy as np
from django.db import transaction

from access import SYSTEM, Principal
from bench import corpus
from core.db import enter_agent_context, leave_agent_context
from memories import search as memory_search
from memories.search import SearchRequest, candidates, semantic_ranking


def scenarios(fixture) -> dict:
    """Filters keeping ~0.1%, 1%, 10% and 100% of the rows, named by their nominal selectivity."""
    operator = SYSTEM  # every right, as a superuser has
    agent = fixture.agents[0]
    return {
        # an agent's visible set (public + system + own + shared in its namespace) narrowed to one project tag
        "0.1%": (agent, {"context_tags": [corpus.PROJECT_TAGS[0]]}),
        # an agent's own memories
        "1%": (agent, {"agent_id": agent.agent_id}),
        # everything an agent may read: the visibility OR alone
        "10%": (agent, {}),
        # an operator with no filter
        "100%": (operator, {}),
    }


def _timed(actor, request, vector, depth: int, exact: bool | None = None):
    """(ms of the ranking SQL, ms including the visibility look-ups and RLS set-up, ids, plan)."""
    started = time.perf_counter()
    plan: dict = {}
    with transaction.atomic():
        agent = not isinstance(actor, Principal)
        if agent:
            enter_agent_context(actor)  # agent searches run under row-level security, as in the API
        queryset = candidates(actor, request)  # resolves the caller's namespaces (small look-ups)
        ranking_started = time.perf_counter()
        rows = semantic_ranking(queryset, vector, depth, plan, exact=exact)
        ranking_ms = (time.perf_counter() - ranking_started) * 1000
        if agent:
            leave_agent_context()
    return ranking_ms, (time.perf_counter() - started) * 1000, [row.pk for row in rows], plan


def _timed_search(actor, request):
    started = time.perf_counter()
    with transaction.atomic():
        if not isinstance(actor, Principal):
            enter_agent_context(actor)
        result = memory_search.search(actor, request)
        if not isinstance(actor, Principal):
            leave_agent_context()
        transaction.set_rollback(True)  # no access tracking in the timed loop
    return (time.perf_counter() - started) * 1000, result


def run(fixture, query_count: int, log=print) -> dict:
    from bench.figures import timing

    texts = corpus.query_texts(max(query_count, 200))
    vectors = corpus.embed_cached("queries-99", texts, log=log, queries=True)[:query_count]
    texts = texts[:query_count]
    total = fixture.size
    semantic, hybrid, keyword = {}, {}, {}
    for name, (actor, filters) in scenarios(fixture).items():
        probe = SearchRequest(query="x", **filters)
        with transaction.atomic():
            if not isinstance(actor, Principal):
                enter_agent_context(actor)
            matching = candidates(actor, probe).count()
        for vector in vectors[:5]:  # warm the caches
            _timed(actor, SearchRequest(query="x", **filters), vector.tolist(), 10)
        times, totals, recalls, plans = [], [], [], set()
        for vector in vectors:
            request = SearchRequest(query="x", limit=10, mode="semantic", **filters)
            elapsed, total_ms, found, plan = _timed(actor, request, vector.tolist(), 10)
            truth = _timed(actor, request, vector.tolist(), 10, exact=True)[2]
            times.append(elapsed)
            totals.append(total_ms)
            plans.add(plan["semantic"])
            recalls.append(len(set(found) & set(truth)) / max(1, min(10, len(truth))))
        semantic[name] = {
            **timing(times),
            "with_visibility_lookup": timing(totals),
            "recall_at_10": round(float(np.mean(recalls)), 4),
            "matching_rows": matching,
            "selectivity": round(matching / total, 5),
            "plan": sorted(plans),
            "filters": {"actor": "operator" if isinstance(actor, Principal) else "agent (RLS)", **filters},
        }
        log(f"semantic {name}: {semantic[name]}")
        for mode, bucket in (("hybrid", hybrid), ("keyword", keyword)):
            times = []
            for text, vector in zip(texts, vectors, strict=True):
                request = SearchRequest(query=text, limit=10, mode=mode, query_vector=vector.tolist(), **filters)
                times.append(_timed_search(actor, request)[0])
            bucket[name] = timing(times)
            log(f"{mode} {name}: {bucket[name]}")
    return {
        "what": "k=10, query embedding precomputed. semantic: p50/p95 of the ranking SQL of "
                "memories.search.semantic_ranking (plan choice count + ranking query, visibility filter and RLS "
                "policy inside it); with_visibility_lookup adds resolving the caller's namespaces and the RLS "
                "set-up; recall@10 against an exact scan of the same filtered set. hybrid and keyword: "
                "memories.search.search end to end (all queries), without HTTP.",
        "exact_scan_threshold": memory_search.EXACT_SCAN_THRESHOLD,
        "hnsw_ef_search": memory_search.HNSW_EF_SEARCH,
        "semantic": semantic,
        "hybrid": hybrid,
        "keyword": keyword,
    }
