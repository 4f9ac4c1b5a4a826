"""Bulk-ingest rate through the server that `make run` starts (no broker: the web process embeds in the background).

Start `make run` (TMWS_BIND picks the address), then, with the same settings (so the same database):

    DEBUG=1 python -m bench.ingest_run --url http://127.0.0.1:8000 --data ../shared/data/locomo-dev/locomo-dev.json

Every text is stored in chunks of 500 through `POST /api/v2/memories/bulk` by a fresh agent. Two rates are
reported: stored (until the last bulk request answered) and embedded (until every one of them is `ready`).
Without --data, --count generated sentences are sent instead.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import time
import uuid
from urllib.parse import urlsplit

from access import SYSTEM

CHUNK = 500


def texts_from(path: str | None, count: int) -> list[str]:
    if not path:
        return [f"Note {n}: the {('build', 'release', 'search', 'billing')[n % 4]} team met about item {n * 7 % 991}."
                for n in range(count)]
    with open(path) as handle:
        conversations = json.load(handle)
    texts = []
    for sample in conversations:
        conversation = sample["conversation"]
        for key, turns in conversation.items():
            if key.startswith("session_") and isinstance(turns, list):
                texts += [f"{turn['speaker']}: {turn['text']}" for turn in turns]
    return texts


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", help="a LoCoMo-format JSON file: every turn becomes a memory")
    parser.add_argument("--count", type=int, default=5000, help="generated texts when no --data is given")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")
    import django

    django.setup()
    from agents.contracts import RegisterAgent
    from agents.services import register_agent
    from memories.models import Memory
    from namespaces.contracts import CreateNamespace
    from namespaces.services import create_namespace

    suffix = uuid.uuid4().hex[:8]
    create_namespace(SYSTEM, CreateNamespace.parse({"namespace": f"ingest-{suffix}"}))
    _, key = register_agent(SYSTEM, RegisterAgent.parse({"agent_id": f"ingest-{suffix}", "namespace": f"ingest-{suffix}"}))
    texts = texts_from(args.data, args.count)
    parts = urlsplit(args.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=args.timeout)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ids, started = [], time.monotonic()
    for start in range(0, len(texts), CHUNK):
        body = {"memories": [{"content": text} for text in texts[start : start + CHUNK]]}
        conn.request("POST", "/api/v2/memories/bulk", body=json.dumps(body), headers=headers)
        answer = conn.getresponse()
        payload = json.loads(answer.read())
        if answer.status != 201:
            raise SystemExit(f"bulk answered {answer.status}: {payload}")
        ids += payload["ids"]
    stored = time.monotonic() - started
    deadline = started + args.timeout
    # The fresh agent owns exactly these memories: a look-up by owner, not by thousands of ids, so
    # the polling costs the server's shared cores next to nothing.
    mine = Memory.objects.filter(agent__agent_id=f"ingest-{suffix}")
    while mine.pending_embedding().exists():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the embeddings")
        time.sleep(0.2)
    embedded = time.monotonic() - started
    result = {
        "memories": len(ids),
        "chunk": CHUNK,
        "stored_seconds": round(stored, 2),
        "stored_per_second": round(len(ids) / stored, 1),
        "embedded_seconds": round(embedded, 2),
        "embedded_per_second": round(len(ids) / embedded, 1),
        "ready": Memory.objects.filter(pk__in=ids, embedding_status="ready").count(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
