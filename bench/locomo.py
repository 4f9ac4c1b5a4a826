"""Retrieval quality on LoCoMo conversations through the API (the protocol of the data's README).

Each conversation gets its own namespace and agent; every turn becomes one private memory of that
agent (`"{speaker}: {text}"`, plus the shared photo's caption), category `dialogue`, metadata
`{"dia_id", "session_date"}`, written through POST /api/v2/memories/bulk in chunks of 500. Each
question of categories 1-4 whose evidence names a turn of the conversation is asked through
POST /api/v2/memories/search by that agent, limit 10, each mode, nothing else set. recall_any@20
comes from a limit-20 answer; keyword and semantic rankings are exact, so their limit-10 answer is
its first ten and is not asked again. recall_any@k: the share of questions with at least one
evidence turn in the top k.

The conversations are split in two: the first TUNING ones tune, the others check, so settings
chosen on the tuning part are checked on conversations they never saw.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from access import SYSTEM

MODES = ("keyword", "semantic", "hybrid")
KS = (5, 10, 20)
CHUNK = 500
TUNING = 3
CATEGORIES = {1: "multi_hop", 2: "temporal", 3: "open_domain", 4: "single_hop"}


def conversations(path: str) -> list[dict]:
    """[{id, turns: [(dia_id, content, session_date)], questions: [(text, category, evidence set)]}]."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    result = []
    for sample in data:
        talk = sample["conversation"]
        turns = []
        number = 1
        while f"session_{number}" in talk:
            date = talk.get(f"session_{number}_date_time")
            for turn in talk[f"session_{number}"]:
                content = f"{turn['speaker']}: {turn['text']}"
                if turn.get("blip_caption"):
                    content += f" [shares a photo: {turn['blip_caption']}]"
                turns.append((turn["dia_id"], content, date))
            number += 1
        known = {dia_id for dia_id, _, _ in turns}
        questions = []
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = {part for item in qa.get("evidence", []) for part in re.split(r"[ ;]+", item) if part} & known
            if evidence:
                questions.append((qa["question"], qa["category"], evidence))
        result.append({"id": sample["sample_id"], "turns": turns, "questions": questions})
    return result


def client_for(conversation_id: str, log):
    """An API client authenticated as the conversation's agent, its memories written once."""
    from rest_framework.test import APIClient

    from agents.contracts import RegisterAgent
    from agents.models import Agent, ApiKey
    from agents.services import register_agent
    from namespaces.contracts import CreateNamespace
    from namespaces.models import Namespace
    from namespaces.services import create_namespace

    slug = f"locomo-{conversation_id}"
    if not Namespace.objects.filter(namespace=slug).exists():
        create_namespace(SYSTEM, CreateNamespace.parse({"namespace": slug}))
    agent = Agent.objects.select_related("user").filter(agent_id=slug).first()
    if agent is None:
        agent, key = register_agent(SYSTEM, RegisterAgent.parse({"agent_id": slug, "namespace": slug}))
    else:
        _, key = ApiKey.issue(agent.user, name="bench")  # a key for this run (set-up, not the protocol)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return agent, client, slug


def load(conversation: dict, log) -> tuple:
    from memories.models import Memory

    agent, client, slug = client_for(conversation["id"], log)
    stored = Memory.objects.filter(agent=agent).count()
    if stored != len(conversation["turns"]):
        Memory.objects.filter(agent=agent).delete()
        started = time.time()
        for start in range(0, len(conversation["turns"]), CHUNK):
            items = [
                {"content": content, "namespace": slug, "access_level": "private", "memory_category": "dialogue",
                 "metadata": {"dia_id": dia_id, "session_date": date}}
                for dia_id, content, date in conversation["turns"][start:start + CHUNK]
            ]
            response = client.post("/api/v2/memories/bulk", {"memories": items}, format="json")
            if response.status_code != 201:
                raise SystemExit(f"bulk write failed: {response.status_code} {response.content[:300]!r}")
        log(f"{conversation['id']}: {len(conversation['turns'])} turns written in {time.time() - started:.0f} s")
    turn_of = dict(Memory.objects.filter(agent=agent).values_list("pk", "metadata__dia_id"))
    return client, {str(pk): dia_id for pk, dia_id in turn_of.items()}


def ask(client, text: str, mode: str, limit: int, turn_of: dict) -> list:
    """The dia_ids of the memories one search returns, best first."""
    response = client.post("/api/v2/memories/search", {"query": text, "limit": limit, "mode": mode}, format="json")
    if response.status_code != 200:
        raise SystemExit(f"search failed: {response.status_code} {response.content[:300]!r}")
    return [turn_of.get(str(hit["memory"]["id"])) for hit in response.json()["results"]]


def rates(found: dict, total: int) -> dict:
    return {f"recall_any@{k}": round(100.0 * found[k] / max(total, 1), 1) for k in KS}


def evaluate(path: str, log) -> dict:
    from memories import keyword, search

    data = conversations(path)
    counts = {part: {mode: {k: 0 for k in KS} for mode in MODES} for part in ("tune", "check", "all")}
    by_category = {mode: {name: {k: 0 for k in KS} for name in CATEGORIES.values()} for mode in MODES}
    asked = {"tune": 0, "check": 0, "all": 0}
    per_category = {name: 0 for name in CATEGORIES.values()}
    started = time.time()
    for position, conversation in enumerate(data):
        part = "tune" if position < TUNING else "check"
        client, turn_of = load(conversation, log)
        for text, category, evidence in conversation["questions"]:
            asked[part] += 1
            asked["all"] += 1
            per_category[CATEGORIES[category]] += 1
            for mode in MODES:
                # Keyword and semantic rankings are exact, so a limit-20 answer starts with the limit-10 one;
                # hybrid ranks more candidates for a larger limit, so its top 10 is asked with limit 10.
                ranked = ask(client, text, mode, 20, turn_of)
                if mode == "hybrid":
                    ranked = ask(client, text, mode, 10, turn_of) + ranked[10:]
                for k in KS:
                    if evidence & set(ranked[:k]):
                        counts[part][mode][k] += 1
                        counts["all"][mode][k] += 1
                        by_category[mode][CATEGORIES[category]][k] += 1
        log(f"{conversation['id']} ({part}): {len(conversation['questions'])} questions asked; so far recall_any@10 "
            + ", ".join(f"{mode} {rates(counts['all'][mode], asked['all'])['recall_any@10']}" for mode in MODES))
    return {
        "data": f"{path}: {len(data)} conversations, {sum(len(c['turns']) for c in data)} turns, "
                f"{asked['all']} questions (categories 1-4 with evidence in the conversation)",
        "protocol": "through the API: bulk writes in chunks of 500, one namespace and agent per conversation, "
                    "private memories; search as that agent, each mode, nothing else set",
        "split": {"tune": [c["id"] for c in data[:TUNING]], "check": [c["id"] for c in data[TUNING:]]},
        "settings": {"bm25_k1": keyword.BM25_K1, "bm25_b": keyword.BM25_B, "keyword_share": search.KEYWORD_SHARE,
                     "neighbour_weight": search.NEIGHBOUR_WEIGHT,
                     "hybrid_depth": f"max(limit*{search.HYBRID_DEPTH_FACTOR}, {search.HYBRID_MIN_DEPTH})"},
        **{part: {"questions": asked[part], **{mode: rates(counts[part][mode], asked[part]) for mode in MODES}}
           for part in ("tune", "check", "all")},
        "all_by_category": {mode: {name: {"questions": per_category[name], **rates(found, per_category[name])}
                                   for name, found in by_category[mode].items()} for mode in MODES},
        "elapsed_s": round(time.time() - started, 1),
    }
