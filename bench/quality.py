"""Retrieval quality on generated conversations: recall@5 and recall@10 per search mode.

    python -m bench.quality            # evaluate the current settings on both splits
    python -m bench.quality --tune     # grid over the fusion settings, on the tuning split only
    python -m bench.quality --data ../shared/data/locomo-dev/locomo-dev.json   # real conversations (bench/locomo.py)

Each conversation turn is a private memory of its persona's agent; each question is asked by
that agent and scores a hit when the labelled evidence turn is among the top k. The split is
by persona with a fixed seed (bench/conversations.py): tuning never sees the held-out half.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

from access import SYSTEM

ROOT = Path(__file__).resolve().parent.parent
PERSONAS = 40


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("TMWS_QUALITY_DATA_DIR", "/tmp/tmws-quality"))
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--data", help="a LoCoMo JSON file: run its protocol through the API instead (bench/locomo.py)")
    parser.add_argument("--output", help="also write the JSON here")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load(turns, log=log) -> tuple[list, dict]:
    """Agents (one per persona) and {memory pk: turn id}; reloads only when the data changed."""
    import numpy as np
    from django.core.management import call_command
    from django.db import transaction

    from agents.contracts import RegisterAgent
    from agents.models import Agent
    from agents.services import register_agent
    from bench.corpus import embed_cached
    from memories.embeddings import configured_model
    from memories.models import Memory
    from namespaces.contracts import CreateNamespace
    from namespaces.models import Namespace
    from namespaces.services import create_namespace

    call_command("migrate", verbosity=0, interactive=False)
    if not Namespace.objects.filter(namespace="quality").exists():
        create_namespace(SYSTEM, CreateNamespace.parse({"namespace": "quality"}))
    agents = []
    for persona in range(PERSONAS):
        agent_id = f"persona-{persona:02d}"
        agent = Agent.objects.select_related("user", "namespace").filter(agent_id=agent_id).first()
        agents.append(agent or register_agent(SYSTEM, RegisterAgent.parse({"agent_id": agent_id, "namespace": "quality"}))[0])
    if Memory.objects.count() != len(turns) or not Memory.objects.filter(metadata__turn=turns[-1].id).exists():
        unique = sorted({turn.content for turn in turns})
        vectors = dict(zip(unique, embed_cached(f"conversations-{len(unique)}", unique, log=log), strict=True))
        namespace = Namespace.objects.get(namespace="quality")
        with transaction.atomic():
            Memory.objects.all().delete()
            Memory.objects.bulk_create([
                Memory(content=turn.content, embedding=np.asarray(vectors[turn.content]), embedding_status="ready",
                       embedding_model=configured_model().name,
                       agent=agents[turn.persona], namespace=namespace, access_level="private",
                       memory_category=turn.role, metadata={"turn": turn.id})
                for turn in turns
            ], batch_size=1000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memories")  # keyword search reads word frequencies from the statistics
    turn_of = dict(Memory.objects.values_list("pk", "metadata__turn"))
    return agents, turn_of


def evaluate(questions, agents, turn_of, vectors, modes=("keyword", "semantic", "hybrid")) -> dict:
    from django.db import transaction

    from memories.search import SearchRequest, search

    report = {}
    for mode in modes:
        hits5 = hits10 = 0
        by_style: dict = {}
        for question in questions:
            request = SearchRequest(query=question.text, limit=10, mode=mode, query_vector=vectors[question.text])
            with transaction.atomic():
                found = [turn_of[hit.memory.pk] for hit in search(agents[question.persona], request).hits]
                transaction.set_rollback(True)  # no hit counting
            at5, at10 = question.evidence in found[:5], question.evidence in found
            hits5 += at5
            hits10 += at10
            style = by_style.setdefault(question.style, [0, 0])
            style[0] += at10
            style[1] += 1
        count = max(1, len(questions))
        report[mode] = {
            "recall_at_5": round(hits5 / count, 4),
            "recall_at_10": round(hits10 / count, 4),
            "recall_at_10_by_style": {name: round(hit / total, 4) for name, (hit, total) in sorted(by_style.items())},
        }
    return report


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ["TMWS_DATA_DIR"] = args.data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if args.data:
        from django.core.management import call_command

        from bench import locomo

        call_command("migrate", verbosity=0, interactive=False)
        return finish(locomo.evaluate(args.data, log), args)
    from bench import conversations
    from bench.corpus import embed_cached
    from memories import search as memory_search

    turns, questions = conversations.build(PERSONAS)
    tune, held_out = conversations.split(questions, PERSONAS)
    agents, turn_of = load(turns)
    texts = sorted({q.text for q in questions})
    vectors = {t: v.tolist() for t, v in zip(texts, embed_cached(f"questions-{len(texts)}", texts, log=log, queries=True),
                                                 strict=True)}
    started = time.time()
    if args.tune:
        grid = []
        for keyword_share, neighbour_weight in itertools.product((0.2, 0.3, 0.4, 0.5, 0.6), (0.0, 0.3)):
            memory_search.KEYWORD_SHARE, memory_search.NEIGHBOUR_WEIGHT = keyword_share, neighbour_weight
            scores = evaluate(tune, agents, turn_of, vectors, modes=("hybrid",))["hybrid"]
            grid.append({"keyword_share": keyword_share, "neighbour_weight": neighbour_weight,
                         "recall_at_10": scores["recall_at_10"], "recall_at_5": scores["recall_at_5"]})
            log(json.dumps(grid[-1]))
        report = {"split": "tune", "questions": len(tune), "grid": grid,
                  "best": max(grid, key=lambda g: (g["recall_at_10"], g["recall_at_5"]))}
    else:
        report = {
            "data": "generated conversations (bench/conversations.py): "
                    f"{PERSONAS} personas, {len(turns)} turns stored as memories, {len(questions)} questions "
                    "labelled with their evidence turn; styles lexical / paraphrase / mixed",
            "settings": {"keyword_share": memory_search.KEYWORD_SHARE,
                         "neighbour_weight": memory_search.NEIGHBOUR_WEIGHT,
                         "hybrid_depth": f"max(limit*{memory_search.HYBRID_DEPTH_FACTOR}, "
                                         f"{memory_search.HYBRID_MIN_DEPTH})"},
            "tune": {"questions": len(tune), **evaluate(tune, agents, turn_of, vectors)},
            "held_out": {"questions": len(held_out), **evaluate(held_out, agents, turn_of, vectors)},
        }
    report["elapsed_s"] = round(time.time() - started, 1)
    return finish(report, args)


def finish(report: dict, args) -> dict:
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
