"""Learning benchmark: `python -m bench.learning [--output bench/results/learning.json]` prints one JSON document.

In its own embedded database (TMWS_DATA_DIR, default /tmp/tmws-learning-bench) it builds one agent with
10,000 memories (embeddings drawn around 25 topic centres, texts from 25 topic vocabularies) and 100,000
usage events over the last 29 days (searches returning 10 memories of one topic, reads of one of them), plus
a member of its namespace with 2,000 searches, then measures:

- the pattern job for that agent (memories.patterns.learn_patterns): wall time, peak Python memory
  (tracemalloc, a second run) and the process's peak resident size; a third run (nothing changed) too;
- the write cost usage events add to a search: p50 of a hybrid search (precomputed query vector, so the model
  is not timed) with its after-commit hand-off, hits only (before) and hits plus the search's event (after),
  with a Redis broker (the buffer) and without one (the in-process fallback); and the hand-off alone.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import time
import tracemalloc
from datetime import timedelta

from bench.figures import emit, percentile
from bench.search import calibration, describe_machine, log, setup_django

MEMORIES = 10_000
EVENTS = 100_000
TOPICS = 25
MEMBER_SEARCHES = 2_000
MEMBER_MEMORIES = 500


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("TMWS_LEARNING_BENCH_DATA_DIR", "/tmp/tmws-learning-bench"))
    parser.add_argument("--redis", default=os.environ.get("TMWS_LEARNING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        help="broker for the buffered figures ('' skips them)")
    parser.add_argument("--searches", type=int, default=300, help="timed searches per variant")
    parser.add_argument("--output", help="also write the JSON here")
    return parser.parse_args(argv)


def build(now) -> tuple:
    """The agent, its member, and their memories and events (made once per data directory)."""
    import numpy as np
    from django.core.management import call_command
    from django.db import connection, transaction

    from access import SYSTEM
    from agents.contracts import RegisterAgent
    from agents.models import Agent
    from agents.services import register_agent
    from memories.embeddings import configured_model
    from memories.hits import record_events
    from memories.models import Memory, UsageEvent
    from memories.usage import follow_up_event, search_event
    from namespaces.contracts import CreateNamespace
    from namespaces.models import Namespace
    from namespaces.services import create_namespace

    call_command("migrate", verbosity=0, interactive=False)
    if not Namespace.objects.filter(namespace="learning").exists():
        create_namespace(SYSTEM, CreateNamespace.parse({"namespace": "learning"}))
    agents = []
    for agent_id in ("learner", "learner-member"):
        agent = Agent.objects.filter(agent_id=agent_id).first()
        agents.append(agent or register_agent(SYSTEM, RegisterAgent.parse({"agent_id": agent_id,
                                                                            "namespace": "learning"}))[0])
    learner, member = agents
    if Memory.objects.filter(agent=learner).count() == MEMORIES and UsageEvent.objects.count() >= EVENTS:
        return learner, member
    log("building 10,000 memories and 100,000 usage events (once)")
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(TOPICS, 384)).astype(np.float32)
    words = [[f"topic{t}word{w}" for w in range(30)] + [f"common{w}" for w in range(10)] for t in range(TOPICS)]
    namespace = Namespace.objects.get(namespace="learning")
    model = configured_model().name
    with transaction.atomic():
        UsageEvent.objects.all().delete()
        Memory.objects.filter(agent__in=agents).delete()
        rows = []
        for index in range(MEMORIES + MEMBER_MEMORIES):
            topic = index % TOPICS
            vector = centres[topic] + rng.normal(scale=0.9, size=384).astype(np.float32)
            text = " ".join(rng.choice(words[topic], size=12))
            rows.append(Memory(content=text, embedding=vector / np.linalg.norm(vector), embedding_status="ready",
                               embedding_model=model, agent=learner if index < MEMORIES else member,
                               namespace=namespace, access_level="private" if index % 3 else "shared",
                               memory_category=f"cat{topic % 5}"))
        Memory.objects.bulk_create(rows, batch_size=2000)
        # A third of them old: stale unless a search returned them.
        old = Memory.objects.filter(agent=learner).order_by("pk").values_list("pk", flat=True)[::3]
        Memory.objects.filter(pk__in=list(old)).update(created_at=now - timedelta(days=90))
    own = list(Memory.objects.filter(agent=learner).order_by("pk").values_list("pk", "memory_category"))
    by_topic: dict = {}
    for position, (pk, _) in enumerate(own):
        by_topic.setdefault(position % TOPICS, []).append(pk)
    shared = list(Memory.objects.filter(agent=member).values_list("pk", flat=True))
    random.seed(5)
    events, made = [], 0
    start = now - timedelta(days=29)
    while made < EVENTS:
        topic = min(int(random.paretovariate(1.2)) - 1, TOPICS - 1)
        ids = random.sample(by_topic[topic][:60], 10)
        at = start + timedelta(seconds=random.randrange(29 * 86400))
        events.append(search_event(learner, mode="hybrid", duration_ms=random.uniform(5, 40), memory_ids=ids, at=at))
        made += 1
        if random.random() < 0.45 and made < EVENTS:
            events.append(follow_up_event(learner, "read", ids[random.randrange(3)], at=at + timedelta(seconds=30)))
            made += 1
        if len(events) >= 10_000:
            record_events(events)
            events = []
    for _ in range(MEMBER_SEARCHES):
        at = start + timedelta(seconds=random.randrange(29 * 86400))
        events.append(search_event(member, mode="hybrid", duration_ms=10, memory_ids=random.sample(shared, 5), at=at))
    record_events(events)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memories; ANALYZE memory_usage_events")
    return learner, member


def job_figures(learner, now) -> dict:
    from memories.models import LearningPattern, UsageEvent
    from memories.patterns import learn_patterns, window

    start, end = window(now)
    events = UsageEvent.objects.filter(agent=learner, at__gte=start, at__lt=end).count()
    LearningPattern.objects.filter(agent=learner).delete()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    pattern, _ = learn_patterns(learner, now)
    first_s = time.perf_counter() - began
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log(f"pattern job: {first_s:.1f} s")
    LearningPattern.objects.filter(agent=learner).delete()
    tracemalloc.start()
    learn_patterns(learner, now)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    began = time.perf_counter()
    _, changed = learn_patterns(learner, now)
    again_s = time.perf_counter() - began
    return {
        "memories": pattern.memories,
        "events_in_window": events,
        "job_s": round(first_s, 2),
        "peak_python_memory_mb": round(peak / 2**20, 1),
        "peak_rss_mb": round(rss_after / 1024, 1),
        "peak_rss_grew_by_mb": round((rss_after - rss_before) / 1024, 1),
        "second_run_s": round(again_s, 2),
        "second_run_changed": changed,
        "found": {"topics": len(pattern.topics), "co_access_pairs": len(pattern.co_access),
                  "returned_unused": len(pattern.returned_unused), "stale": pattern.stale["count"],
                  "missed_by_members": len(pattern.missed_by_members)},
    }


def search_figures(learner, searches: int, broker: str) -> dict:
    """p50 of search + its after-commit hand-off, hits only (before) and hits plus the event (after)."""
    import numpy as np
    from django.conf import settings
    from django.db import transaction

    from memories import search as memory_search
    from memories import usage
    from memories.tasks import queue_hits

    settings.CELERY_BROKER_URL = broker
    from tmws_site.celery import app

    app.conf.task_always_eager = not broker
    if broker:
        app.conf.broker_url = broker
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(searches, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    original = usage.track

    def hits_only(hit_ids, events):  # the hand-off as it was before usage events
        hit_ids = [str(pk) for pk in hit_ids]
        transaction.on_commit(lambda: queue_hits(hit_ids), robust=True)

    figures: dict = {"before": [], "after": [], "handoff_before": [], "handoff_after": []}
    try:
        for index in range(searches * 2):
            variant = "before" if index % 2 == 0 else "after"
            usage.track = hits_only if variant == "before" else original
            request = memory_search.SearchRequest(query=f"topic{index % 25}word3 common1", limit=10, mode="hybrid",
                                                  query_vector=vectors[index // 2].tolist())
            began = time.perf_counter()
            with transaction.atomic():
                result = memory_search.search(learner, request)
                committed = time.perf_counter()
            done = time.perf_counter()
            figures[variant].append((done - began) * 1000)
            figures[f"handoff_{variant}"].append((done - committed) * 1000)
            assert result.hits
    finally:
        usage.track = original
        app.conf.task_always_eager = True
    return {name: {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95), "n": len(values)}
            for name, values in figures.items()}


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_django(args.data_dir)
    from django.utils import timezone

    started = time.time()
    now = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(hours=1)
    learner, _ = build(now)
    report = {"benchmark": "tmws learning", "machine": describe_machine()}
    report["machine"]["calibration"] = calibration()
    report["data"] = (f"one agent with {MEMORIES} memories (384-d embeddings around {TOPICS} topic centres, a third "
                      f"90 days old), {EVENTS} usage events of it over 29 days (searches of 10 results, a read of one "
                      f"within a minute after 45% of them), and a member of its namespace with {MEMBER_MEMORIES} "
                      f"memories and {MEMBER_SEARCHES} searches")
    report["pattern_job"] = job_figures(learner, now)
    report["search_write_cost"] = {
        "what": "in-process hybrid search with a precomputed query vector (no model time), in a transaction, "
                "including its after-commit hand-off; before = hits only, after = hits and the usage event; "
                "alternating, same queries",
        "without_broker": search_figures(learner, args.searches, ""),
    }
    if args.redis:
        try:
            import redis

            redis.Redis.from_url(args.redis, socket_connect_timeout=1).ping()
            report["search_write_cost"]["redis_buffer"] = search_figures(learner, args.searches, args.redis)
            from memories.hits import EVENT_BUFFER_KEY, HIT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY

            # The flushes it scheduled wait in the broker's queue (no worker runs here): dropped with the buffers.
            redis.Redis.from_url(args.redis).delete(HIT_BUFFER_KEY, EVENT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY, "celery")
        except Exception as error:  # no Redis here: the buffered figure is left out
            report["search_write_cost"]["redis_buffer"] = f"skipped: {error}"
    report["elapsed_s"] = round(time.time() - started, 1)
    emit(report, args.output)
    return report


if __name__ == "__main__":
    main()
