"""A reproducible synthetic corpus for the search benchmark: 100 agents, 50 namespaces, N memories.

Texts come from templates filled from fixed word lists with a seeded random generator, so two
runs with the same size and seed give the same memories. Embeddings (the real model) are
cached under bench/.cache/ because embedding 100,000 texts takes minutes on two cores.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
AGENTS = 100
NAMESPACES = 50
CATEGORIES = ["general", "decision", "incident", "howto", "meeting", "preference", "fact", "todo", "review", "idea"]
PROJECT_TAGS = [f"project-{i:03d}" for i in range(100)]  # each on ~1% of memories
TOPIC_TAGS = ["infra", "billing", "search", "auth", "mobile", "data", "ml", "frontend", "security", "support"]

PEOPLE = ["Ana", "Bilal", "Chen", "Dara", "Emeka", "Fatima", "Goran", "Hiro", "Ines", "Jonas", "Keiko", "Luis",
          "Maya", "Nikos", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara", "Zoe"]
COMPONENTS = ["billing service", "login page", "search index", "payment gateway", "mobile app", "nightly backup",
              "message queue", "staging cluster", "data warehouse", "recommendation model", "API gateway",
              "email sender", "metrics dashboard", "feature flag system", "CI pipeline", "cache layer",
              "invoice generator", "user profile service", "audit log", "rate limiter", "image resizer",
              "notification service", "export job", "onboarding flow", "admin console", "DNS setup",
              "load balancer", "report builder", "webhook relay", "translation files"]
ACTIONS = ["migrate", "refactor", "monitor", "roll back", "scale up", "deprecate", "document", "load test",
           "encrypt", "rewrite", "cache", "split", "upgrade", "benchmark", "harden", "archive"]
REASONS = ["latency went above two seconds", "the vendor raised prices", "customers reported timeouts",
           "the audit asked for it", "memory usage doubled", "the old library is unmaintained",
           "error rates spiked after the release", "the team wants faster deploys", "disk space ran low",
           "a security review flagged it", "traffic grows every month", "the quarterly plan says so",
           "on-call pages were too frequent", "the contract ends in March", "tests were flaky"]
WHENS = ["on Monday", "next sprint", "before the freeze", "after the launch", "by the end of the quarter",
         "during the maintenance window", "this week", "in the spring", "once the budget is approved", "tonight"]
TOOLS = ["PostgreSQL", "Redis", "Kafka", "Kubernetes", "Terraform", "Grafana", "Sentry", "Celery", "nginx",
         "Elasticsearch", "S3", "Airflow", "Prometheus", "Vault", "GitHub Actions"]
FEELINGS = ["prefers", "dislikes", "asked for", "suggested", "is worried about", "approved", "rejected"]
TEMPLATES = [
    "{p} decided to {a} the {c} {w} because {r}.",
    "Incident: the {c} failed {w}; {p} found that {r}.",
    "How to {a} the {c}: ask {p}, use {t}, and check the dashboard afterwards.",
    "Meeting note: {p} and {q} agreed to {a} the {c} with {t} {w}.",
    "{p} {f} using {t} for the {c}, since {r}.",
    "Reminder: {a} the {c} {w}; owner is {p}.",
    "Review of the {c}: {p} says {r}, so we should {a} it.",
    "Idea from {q}: {a} the {c} with {t} to avoid problems when {r}.",
]


@dataclass
class CorpusRow:
    content: str
    agent: int  # index of the owning agent
    namespace: int
    access_level: str
    tags: list[str]
    category: str
    learning_weight: float
    age_days: float


def agent_namespace(agent: int) -> int:
    return agent % NAMESPACES  # two agents per namespace


def memory_text(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    p, q = rng.sample(PEOPLE, 2)
    return template.format(
        p=p, q=q, a=rng.choice(ACTIONS), c=rng.choice(COMPONENTS), w=rng.choice(WHENS), r=rng.choice(REASONS),
        t=rng.choice(TOOLS), f=rng.choice(FEELINGS),
    )


def access_level(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.60:
        return "private"
    if roll < 0.915:
        return "shared"
    if roll < 0.995:
        return "public"
    return "system"


def build_rows(size: int, seed: int = 7) -> list[CorpusRow]:
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        agent = rng.randrange(AGENTS)
        level = access_level(rng)
        tags = [rng.choice(TOPIC_TAGS), rng.choice(PROJECT_TAGS)]
        rows.append(CorpusRow(
            content=memory_text(rng),
            agent=agent,
            namespace=agent_namespace(agent),
            access_level=level,
            tags=tags,
            category=rng.choice(CATEGORIES),
            learning_weight=round(rng.uniform(0.5, 2.0), 2),
            age_days=rng.uniform(0, 365),
        ))
    return rows


def query_texts(count: int, seed: int = 99) -> list[str]:
    """Questions in the corpus's domain, from a different seed than the memories."""
    rng = random.Random(seed)
    shapes = [
        "why did we {a} the {c}?",
        "who owns the {c}?",
        "what happened to the {c} {w}?",
        "how do I {a} the {c}",
        "what does {p} think about {t}",
        "{c} problems when {r}",
    ]
    return [
        rng.choice(shapes).format(
            a=rng.choice(ACTIONS), c=rng.choice(COMPONENTS), w=rng.choice(WHENS), r=rng.choice(REASONS),
            t=rng.choice(TOOLS), p=rng.choice(PEOPLE),
        )
        for _ in range(count)
    ]


def embed_cached(name: str, texts: list[str], log=print, queries: bool = False) -> np.ndarray:
    """Embeddings of `texts` by the configured model, kept in bench/.cache/<name>-<model>.npy and extended as needed.

    `queries` embeds them as search queries (with the model's query prefix, as a search does) into a
    cache of their own. The cache holds a prefix: corpora of one seed are prefixes of each other, so a
    larger run reuses what a smaller one embedded, and an interrupted run resumes where it stopped.
    """
    from memories.embeddings import configured_model, embed_queries, embed_texts

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # One cache per model and side: vectors of two models (or a query and a text) must never be mixed.
    path = CACHE_DIR / f"{name}-{configured_model().name}{'-queries' if queries else ''}.npy"
    vectors = np.load(path) if path.exists() else np.zeros((0, 384), dtype=np.float32)
    if len(vectors) >= len(texts):
        return vectors[: len(texts)]
    log(f"embedding {len(texts) - len(vectors)} texts into {path} (cached for later runs)")
    step = 4096
    while len(vectors) < len(texts):
        chunk = texts[len(vectors) : len(vectors) + step]
        embedded = embed_queries(chunk) if queries else embed_texts(chunk)
        vectors = np.concatenate([vectors, np.asarray(embedded, dtype=np.float32)])
        np.save(path, vectors)
        log(f"  {len(vectors)}/{len(texts)}")
    return vectors
