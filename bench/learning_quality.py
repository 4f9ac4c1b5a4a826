"""Does learned ranking (TMWS_LEARNED_RANKING) lose anything? Recall with it off and on, after a replayed history.

    python -m bench.learning_quality --set locomo --data ../shared/data/locomo-dev/locomo-dev.json --output a.json
    python -m bench.learning_quality --set generated --output b.json
    python -m bench.learning_quality --combine a.json b.json --output bench/results/learning-quality.json

Each conversation's agent (LoCoMo: one per conversation, its turns written through the API as in bench/locomo.py;
generated: one per persona, bench/quality.py) first asks the first half of its questions (hybrid, limit 10): each
search leaves its usage event through the real path, and every evidence turn among the results is then read
(GET /api/v2/memories/{id} for LoCoMo, a read event for the generated set), as an agent that found its answer
would. The pattern job then runs for each agent, and the second half of the questions is asked with learned
ranking off and on: recall_any@5 and @10 of both, on questions the history never saw.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from pathlib import Path

from bench.search import log, setup_django

KS = (5, 10)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("locomo", "generated"))
    parser.add_argument("--data", help="the LoCoMo JSON file (--set locomo)")
    parser.add_argument("--data-dir", help="the embedded database's folder (default /tmp/tmws-learning-<set>)")
    parser.add_argument("--combine", nargs="+", help="merge the JSON files of earlier runs")
    parser.add_argument("--output", help="also write the JSON here")
    return parser.parse_args(argv)


def halves(questions: list) -> tuple[list, list]:
    middle = len(questions) // 2
    return questions[:middle], questions[middle:]


def score(found: list, evidence: set, totals: dict) -> None:
    for k in KS:
        totals[k] += bool(evidence & set(found[:k]))


def rates(totals: dict, count: int) -> dict:
    return {f"recall_any@{k}": round(100.0 * totals[k] / max(count, 1), 1) for k in KS}


def learn(agents, now) -> None:
    from memories.patterns import learn_patterns

    for agent in agents:
        learn_patterns(agent, now + timedelta(days=1))


def compare(ask, questions: list) -> dict:
    """recall_any@k of the questions with learned ranking off and on."""
    from django.conf import settings

    from memories import patterns

    result = {}
    for name, on in (("off", False), ("on", True)):
        settings.TMWS_LEARNED_RANKING = on
        patterns._signals.clear()
        totals = {k: 0 for k in KS}
        for question in questions:
            score(ask(question), question["evidence"], totals)
        result[name] = rates(totals, len(questions))
    settings.TMWS_LEARNED_RANKING = False
    result["change"] = {k: round(result["on"][k] - result["off"][k], 1) for k in result["off"]}
    return result


def run_locomo(path: str) -> dict:
    from django.core.management import call_command
    from django.utils import timezone

    from bench import locomo
    from memories.models import Memory

    call_command("migrate", verbosity=0, interactive=False)
    now = timezone.now()
    history_count, checked, agents = 0, [], []
    for conversation in locomo.conversations(path):
        client, turn_of = locomo.load(conversation, log)
        memory_of = {dia_id: pk for pk, dia_id in turn_of.items()}
        agents.append(Memory.objects.get(pk=next(iter(turn_of))).agent)
        questions = [{"text": text, "evidence": evidence} for text, _, evidence in conversation["questions"]]
        history, later = halves(questions)
        for question in history:
            found = locomo.ask(client, question["text"], "hybrid", 10, turn_of)
            for dia_id in found:
                if dia_id in question["evidence"]:
                    client.get(f"/api/v2/memories/{memory_of[dia_id]}")
        history_count += len(history)
        checked += [(client, turn_of, question) for question in later]
        log(f"{conversation['id']}: {len(history)} questions replayed")
    learn(agents, now)

    def ask(question):
        client, turn_of, asked = question["context"]
        return locomo.ask(client, asked["text"], "hybrid", 10, turn_of)

    asks = [{"context": item, "evidence": item[2]["evidence"]} for item in checked]
    return {"data": f"{path}: {len(agents)} conversations; {history_count} questions replayed as history, "
                    f"{len(asks)} asked after it", **compare(ask, asks)}


def run_generated() -> dict:
    from django.db import transaction
    from django.utils import timezone

    from bench import conversations
    from bench.corpus import embed_cached
    from bench.quality import PERSONAS, load
    from memories.hits import record_events
    from memories.search import SearchRequest, search
    from memories.usage import follow_up_event

    turns, questions = conversations.build(PERSONAS)
    agents, turn_of = load(turns, log)
    memory_of = {turn: pk for pk, turn in turn_of.items()}
    texts = sorted({q.text for q in questions})
    vectors = {t: v.tolist() for t, v in zip(texts, embed_cached(f"questions-{len(texts)}", texts, log=log,
                                                                  queries=True), strict=True)}
    now = timezone.now()
    by_persona: dict = {}
    for question in questions:
        by_persona.setdefault(question.persona, []).append(question)
    later, replayed = [], 0
    for persona, asked in sorted(by_persona.items()):
        history, rest = halves(asked)
        reads = []
        for question in history:
            request = SearchRequest(query=question.text, limit=10, mode="hybrid", query_vector=vectors[question.text])
            with transaction.atomic():  # commits: the search's event is recorded after it
                hits = search(agents[persona], request).hits
            for hit in hits:
                if turn_of[hit.memory.pk] == question.evidence:
                    reads.append(follow_up_event(agents[persona], "read", hit.memory.pk,
                                                 at=timezone.now() + timedelta(seconds=1)))
        record_events([event for event in reads if event])
        replayed += len(history)
        later += [{"persona": persona, "text": q.text, "evidence": {q.evidence}} for q in rest]
    learn(agents, now)

    def ask(question):
        request = SearchRequest(query=question["text"], limit=10, mode="hybrid", query_vector=vectors[question["text"]])
        with transaction.atomic():
            found = [turn_of[hit.memory.pk] for hit in search(agents[question["persona"]], request).hits]
            transaction.set_rollback(True)
        return found

    assert memory_of  # every turn is stored
    return {"data": f"generated conversations (bench/conversations.py): {PERSONAS} personas; {replayed} questions "
                    f"replayed as history, {len(later)} asked after it", **compare(ask, later)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.time()
    if args.combine:
        report = {"what": __doc__.split("\n\n")[2].replace("\n", " "), "sets": {}}
        for path in args.combine:
            part = json.loads(Path(path).read_text(encoding="utf-8"))
            report["sets"][part["set"]] = part
            report.setdefault("machine", part.get("machine"))
    else:
        data_dir = args.data_dir or f"/tmp/tmws-learning-{args.set}"
        setup_django(data_dir)
        from bench.search import describe_machine
        from memories import search

        report = {"set": args.set, "machine": describe_machine(),
                  "factors": {"co_access_boost": search.CO_ACCESS_BOOST, "co_access_anchors": search.CO_ACCESS_ANCHORS,
                              "unused_penalty": search.UNUSED_PENALTY}}
        report.update(run_locomo(args.data) if args.set == "locomo" else run_generated())
        report["elapsed_s"] = round(time.time() - started, 1)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    os.environ.setdefault("DEBUG", "1")
    main()
