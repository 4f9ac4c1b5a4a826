"""The pattern job: what one agent's memories and usage events say, learned nightly and kept (LearningPattern).

For an agent, over the usage events of the window (WINDOW_DAYS whole days up to the last midnight UTC):

- `topics`: its memories' embeddings clustered (spherical k-means, k chosen by silhouette, fixed seed), each
  labelled by the words most distinctive of it against the agent's other clusters (tf-idf), memory ids
  nearest the centre first;
- `co_access`: pairs of memories returned together (among a search's first CO_ACCESS_DEPTH results) at least
  CO_ACCESS_MIN times;
- `search_categories`: how many of its searches had their best result in each category;
- `active_hours`: its events per hour of the day (UTC);
- `stale`: its memories older than STALE_DAYS that no search ever returned;
- `returned` / `returned_unused`: how often each memory was returned, first, and used (read, voted on, named
  by a task within USE_WINDOW after a search returned it); the unused ones were returned at least
  UNUSED_MIN_RETURNS times and never used;
- `missed_by_members`: its private memories close in meaning (MISSED_SIMILARITY) to what other members of its
  home namespace kept searching for without using anything found.

The job reads everything as the system; `pattern_for` narrows it to what a reader may read (ids of memories
it cannot read are dropped, and a topic's words come only from memories it can read). Running the job twice
over the same inputs writes nothing the second time.
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
from django.contrib.postgres.fields import ArrayField
from django.db import transaction
from django.db.models import F, FloatField, Func, Q, TextField
from django.utils import timezone

from agents.models import Agent
from core.db import service_role
from namespaces.models import NamespaceUserObjectPermission

from .choices import AccessLevel, EmbeddingStatus, UsageKind
from .models import LearningPattern, Memory, UsageEvent

logger = logging.getLogger(__name__)

WINDOW_DAYS = 30
STALE_DAYS = 30
USE_WINDOW = timedelta(hours=1)
CO_ACCESS_DEPTH = 5
CO_ACCESS_MIN = 3
MAX_CO_ACCESS = 100
UNUSED_MIN_RETURNS = 5
MAX_RETURNED = 2000
MAX_LISTED = 1000
MAX_TOPICS = 8
MIN_TOPIC_SIZE = 3
MIN_SILHOUETTE = 0.1  # below this, the memories are one topic
TOPIC_SAMPLE = 2000
KMEANS_ITERATIONS = 30
KMEANS_RESTARTS = 4  # seedings per k (from one fixed-seed generator); the tightest is kept
SEED = 0
LABEL_WORDS = 3
MISSED_SIMILARITY = 0.6
MISSED_MIN_SEARCHES = 2
MAX_MISSED_SEARCHES = 2000
MISSED_PROXY_DEPTH = 3
EVENT_CHUNK = 5000

# Read as PostgreSQL arrays, which the driver parses in C: a vector read as pgvector's text and UUIDs as
# Python objects cost more than the whole job's arithmetic.
VECTOR = Func(F("embedding"), template="%(expressions)s::real[]", output_field=ArrayField(FloatField()))
IDS = Func(F("memory_ids"), template="%(expressions)s::text[]", output_field=ArrayField(TextField()))

PATTERN_FIELDS = ("window_start", "window_end", "events", "memories", "topics", "co_access", "search_categories",
                  "active_hours", "stale", "returned", "returned_unused", "missed_by_members")


def window(now=None) -> tuple[datetime, datetime]:
    """The whole days (UTC) the job reads: WINDOW_DAYS up to the last midnight before `now`."""
    now = (now or timezone.now()).astimezone(UTC)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=WINDOW_DAYS), end


# --- Usage events --------------------------------------------------------------------------------


class _Usage:
    """What one pass over an agent's events gathers, with memory ids interned to small integers."""

    def __init__(self):
        self.index: dict = {}
        self.ids: list = []
        self.returned = Counter()
        self.first = Counter()
        self.used = Counter()
        self.last_returned: dict = {}
        self.hours = [0] * 24
        self.events = 0
        self.pair_codes: list[np.ndarray] = []
        self._pending_pairs: list[int] = []

    def key(self, memory_id) -> int:
        found = self.index.get(memory_id)
        if found is None:
            found = self.index[memory_id] = len(self.ids)
            self.ids.append(memory_id)
        return found

    def add(self, kind: str, at, memory_ids: list) -> None:
        self.events += 1
        self.hours[at.astimezone(UTC).hour] += 1
        if kind == UsageKind.SEARCH:
            keys = [self.key(pk) for pk in memory_ids]
            for rank, key in enumerate(keys):
                self.returned[key] += 1
                self.last_returned[key] = at
                if rank == 0:
                    self.first[key] += 1
            top = sorted(set(keys[:CO_ACCESS_DEPTH]))
            self._pending_pairs.extend(a << 32 | b for i, a in enumerate(top) for b in top[i + 1:])
        elif memory_ids:
            key = self.index.get(memory_ids[0])
            if key is not None and at - self.last_returned[key] <= USE_WINDOW:
                self.used[key] += 1

    def flush_pairs(self) -> None:
        if self._pending_pairs:
            self.pair_codes.append(np.asarray(self._pending_pairs, dtype=np.int64))
            self._pending_pairs = []

    def co_access(self) -> list[dict]:
        self.flush_pairs()
        if not self.pair_codes:
            return []
        codes, counts = np.unique(np.concatenate(self.pair_codes), return_counts=True)
        keep = counts >= CO_ACCESS_MIN
        pairs = []
        for code, count in zip(codes[keep].tolist(), counts[keep].tolist(), strict=True):
            first, second = sorted((str(self.ids[code >> 32]), str(self.ids[code & 0xFFFFFFFF])))
            pairs.append({"memory_ids": [first, second], "count": count})
        pairs.sort(key=lambda pair: (-pair["count"], pair["memory_ids"]))
        return pairs[:MAX_CO_ACCESS]


def _read_usage(agent, start, end) -> _Usage:
    usage = _Usage()
    events = (UsageEvent.objects.filter(agent=agent, at__gte=start, at__lt=end).order_by("at", "id")
              .values_list("kind", "at", IDS))
    for count, (kind, at, memory_ids) in enumerate(events.iterator(chunk_size=EVENT_CHUNK), start=1):
        usage.add(kind, at, memory_ids)
        if count % EVENT_CHUNK == 0:
            usage.flush_pairs()
    return usage


def _search_categories(usage: _Usage) -> dict:
    firsts = {str(usage.ids[key]): count for key, count in usage.first.items()}
    categories = Counter()
    for pk, category in Memory.objects.current().filter(pk__in=list(firsts)).values_list("pk", "memory_category"):
        categories[category] += firsts[str(pk)]
    return dict(sorted(categories.items(), key=lambda item: (-item[1], item[0])))


def _returned(usage: _Usage) -> tuple[list, list]:
    rows = sorted(
        ([str(usage.ids[key]), count, usage.first[key], usage.used[key]] for key, count in usage.returned.items()),
        key=lambda row: (-row[1], row[0]),
    )
    unused = [{"id": pk, "returned": count} for pk, count, _, used in rows if used == 0 and count >= UNUSED_MIN_RETURNS]
    return rows[:MAX_RETURNED], unused[:MAX_LISTED]


# --- Topics --------------------------------------------------------------------------------------

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves yes get got one two also us via
""".split())
WORD = re.compile(r"[^\W_]+")


def words_of(text: str) -> set[str]:
    """The label words of a text: lowercase words of three letters or more, no stopwords, no numbers."""
    return {word for word in WORD.findall(text.lower()) if len(word) >= 3 and word not in STOPWORDS
            and not word.isdigit()}


def label_topics(texts_by_topic: list[list[str]], count: int = LABEL_WORDS) -> list[list[str]]:
    """The `count` most distinctive words of each topic: the share of its memories holding the word, times the
    word's inverse frequency over the topics (smoothed: ln((1 + topics) / (1 + topics holding it)) + 1)."""
    shares = []
    holding = Counter()
    for texts in texts_by_topic:
        frequency = Counter()
        for text in texts:
            frequency.update(words_of(text))
        shares.append({word: seen / max(len(texts), 1) for word, seen in frequency.items()})
        holding.update(frequency.keys())
    topics = len(texts_by_topic)
    labels = []
    for share in shares:
        scored = {word: value * (math.log((1 + topics) / (1 + holding[word])) + 1) for word, value in share.items()}
        labels.append([word for word, _ in sorted(scored.items(), key=lambda item: (-round(item[1], 9), item[0]))][:count])
    return labels


def _kmeans(vectors: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (cosine) with k-means++ seeding: (centres, assignment)."""
    centres = [vectors[rng.integers(len(vectors))]]
    closest = 1.0 - vectors @ centres[0]
    for _ in range(1, k):
        weights = np.maximum(closest, 0.0) ** 2
        total = float(weights.sum())
        pick = int(rng.choice(len(vectors), p=weights / total)) if total > 0 else int(rng.integers(len(vectors)))
        centres.append(vectors[pick])
        closest = np.minimum(closest, 1.0 - vectors @ vectors[pick])
    centres = np.asarray(centres, dtype=np.float32)
    assignment = np.full(len(vectors), -1)
    for _ in range(KMEANS_ITERATIONS):
        new = np.argmax(vectors @ centres.T, axis=1)
        if np.array_equal(new, assignment):
            break
        assignment = new
        centres = _centres(vectors, assignment, centres)
    return centres, assignment


def _centres(vectors: np.ndarray, assignment: np.ndarray, previous: np.ndarray) -> np.ndarray:
    centres = previous.copy()
    for cluster in range(len(previous)):
        members = vectors[assignment == cluster]
        if len(members):
            total = members.sum(axis=0)
            norm = float(np.linalg.norm(total))
            centres[cluster] = total / norm if norm > 0 else previous[cluster]
    return centres


def _silhouette(vectors: np.ndarray, assignment: np.ndarray, k: int) -> float:
    """Mean silhouette over cosine distances (clusters of one count as 0)."""
    distances = 1.0 - vectors @ vectors.T
    membership = np.eye(k, dtype=np.float32)[assignment]
    sizes = membership.sum(axis=0)
    sums = distances @ membership
    own_size = sizes[assignment]
    own = np.where(own_size > 1, sums[np.arange(len(vectors)), assignment] / np.maximum(own_size - 1, 1), 0.0)
    others = np.where(membership > 0, np.inf, sums / np.maximum(sizes, 1))
    others[:, sizes == 0] = np.inf
    nearest = others.min(axis=1)
    score = np.where(own_size > 1, (nearest - own) / np.maximum(np.maximum(nearest, own), 1e-9), 0.0)
    return float(score.mean())


def cluster(vectors: np.ndarray) -> np.ndarray:
    """A topic per row (0..k-1); k chosen by the best silhouette over a fixed-seed sample, 1 below MIN_SILHOUETTE."""
    count = len(vectors)
    largest = min(MAX_TOPICS, count // MIN_TOPIC_SIZE)
    if largest < 2:
        return np.zeros(count, dtype=int)
    rng = np.random.default_rng(SEED)
    sample = np.sort(rng.choice(count, TOPIC_SAMPLE, replace=False)) if count > TOPIC_SAMPLE else np.arange(count)
    best = (MIN_SILHOUETTE, None)
    for k in range(2, largest + 1):
        rng = np.random.default_rng(SEED)
        runs = [_kmeans(vectors[sample], k, rng) for _ in range(KMEANS_RESTARTS)]
        runs = [run for run in runs if len(np.unique(run[1])) == k]
        if not runs:
            continue
        # The tightest of the restarts: the largest sum of each row's similarity to its centre.
        centres, assignment = max(runs, key=lambda run: round(float(
            (vectors[sample] * run[0][run[1]]).sum()), 4))
        score = _silhouette(vectors[sample], assignment, k)
        if score > best[0] + 1e-6:
            best = (score, centres)
    if best[1] is None:
        return np.zeros(count, dtype=int)
    centres = best[1]
    assignment = np.argmax(vectors @ centres.T, axis=1)
    for _ in range(3):  # settle on every row, not only the sample
        centres = _centres(vectors, assignment, centres)
        assignment = np.argmax(vectors @ centres.T, axis=1)
    return assignment


def _topics(agent) -> tuple[int, list[dict]]:
    rows = list(
        Memory.objects.current().filter(agent=agent, embedding_status=EmbeddingStatus.READY)
        .embedded_by_configured_model().order_by("pk").values_list("pk", "content", VECTOR)
    )
    if not rows:
        return 0, []
    vectors = np.asarray([vector for _, _, vector in rows], dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    assignment = cluster(vectors)
    topics = []
    for topic in range(int(assignment.max()) + 1):
        members = np.flatnonzero(assignment == topic)
        if not len(members):
            continue
        centre = vectors[members].sum(axis=0)
        closeness = vectors[members] @ (centre / max(float(np.linalg.norm(centre)), 1e-12))
        ordered = [int(i) for i in members[np.lexsort((members, -np.round(closeness, 5)))]]
        topics.append(ordered)
    labels = label_topics([[rows[i][1] for i in members] for members in topics])
    result = [{"labels": words, "size": len(members), "memory_ids": [str(rows[i][0]) for i in members]}
              for words, members in zip(labels, topics, strict=True)]
    result.sort(key=lambda topic: (-topic["size"], topic["labels"], topic["memory_ids"][0]))
    return len(rows), result


# --- Stale memories ---------------------------------------------------------------------------------


def _stale(agent, end) -> dict:
    before = end - timedelta(days=STALE_DAYS)
    stale = (Memory.objects.current().filter(agent=agent, created_at__lt=before, usage__isnull=True)
             .order_by("created_at", "pk"))
    return {"days": STALE_DAYS, "count": stale.count(),
            "memory_ids": [str(pk) for pk in stale.values_list("pk", flat=True)[:MAX_LISTED]]}


# --- Missed by members -----------------------------------------------------------------------------


def _members(agent) -> list:
    """Other active agents of the agent's home namespace (home or granted membership)."""
    grants = NamespaceUserObjectPermission.objects.filter(
        content_object_id=agent.namespace_id, permission__codename__in=["member_namespace", "admin_namespace"]
    ).values("user_id")
    return list(Agent.objects.filter(Q(namespace_id=agent.namespace_id) | Q(user_id__in=grants), is_active=True)
                .exclude(pk=agent.pk).values_list("pk", flat=True))


def _missed_by_members(agent, start, end) -> list[dict]:
    """The agent's private memories close to what other members searched for and used nothing of."""
    members = _members(agent)
    if not members:
        return []
    private = list(
        Memory.objects.current().filter(agent=agent, access_level=AccessLevel.PRIVATE,
                                        embedding_status=EmbeddingStatus.READY)
        .embedded_by_configured_model().order_by("pk").values_list("pk", VECTOR)
    )
    if not private:
        return []
    searches = list(
        UsageEvent.objects.filter(agent_id__in=members, kind=UsageKind.SEARCH, at__gte=start, at__lt=end,
                                  result_count__gt=0)
        .order_by("-at", "-id").values_list("agent_id", "at", IDS)[:MAX_MISSED_SEARCHES]
    )
    uses = defaultdict(list)
    follow_ups = (UsageEvent.objects.filter(agent_id__in=members, at__gte=start, at__lt=end + USE_WINDOW)
                  .exclude(kind=UsageKind.SEARCH).values_list("agent_id", "at", IDS))
    for member, at, ids in follow_ups.iterator(chunk_size=EVENT_CHUNK):
        if ids:
            uses[(member, ids[0])].append(at)
    missed = [
        (member, ids[:MISSED_PROXY_DEPTH]) for member, at, ids in searches
        if not any(at <= used <= at + USE_WINDOW for pk in ids for used in uses.get((member, pk), ()))
    ]
    if not missed:
        return []
    wanted = {pk for _, ids in missed for pk in ids}
    vectors = {str(pk): vector for pk, vector in Memory.objects.filter(pk__in=wanted).embedded_by_configured_model()
               .values_list("pk", VECTOR)}
    proxies, askers = [], []
    for member, ids in missed:
        found = [vectors[pk] for pk in ids if pk in vectors]
        if found:
            centre = np.asarray(found, dtype=np.float32).sum(axis=0)
            proxies.append(centre / max(float(np.linalg.norm(centre)), 1e-12))
            askers.append(member)
    if not proxies:
        return []
    own = np.asarray([vector for _, vector in private], dtype=np.float32)
    own /= np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12)
    hits = np.zeros(len(private), dtype=int)
    agents: list[set] = [set() for _ in private]
    proxies = np.asarray(proxies, dtype=np.float32)
    for begin in range(0, len(proxies), 256):
        close = (proxies[begin:begin + 256] @ own.T) >= MISSED_SIMILARITY
        hits += close.sum(axis=0)
        for row, column in zip(*np.nonzero(close), strict=True):
            agents[int(column)].add(askers[begin + int(row)])
    result = [{"id": str(private[i][0]), "searches": int(hits[i]), "agents": len(agents[i])}
              for i in np.flatnonzero(hits >= MISSED_MIN_SEARCHES)]
    result.sort(key=lambda item: (-item["searches"], item["id"]))
    return result[:MAX_LISTED]


# --- The job -----------------------------------------------------------------------------------------


def compute_patterns(agent, now=None) -> dict:
    """Every pattern of `agent` over the window ending at the last midnight before `now` (nothing is stored)."""
    start, end = window(now)
    usage = _read_usage(agent, start, end)
    memories, topics = _topics(agent)
    returned, unused = _returned(usage)
    return {
        "window_start": start,
        "window_end": end,
        "events": usage.events,
        "memories": memories,
        "topics": topics,
        "co_access": usage.co_access(),
        "search_categories": _search_categories(usage),
        "active_hours": usage.hours,
        "stale": _stale(agent, end),
        "returned": returned,
        "returned_unused": unused,
        "missed_by_members": _missed_by_members(agent, start, end),
    }


def learn_patterns(agent, now=None) -> tuple[LearningPattern, bool]:
    """Compute and store the agent's patterns; returns (pattern, whether anything changed).

    A result equal to the stored one writes nothing (computed_at included): running twice changes nothing.
    """
    values = compute_patterns(agent, now)
    with transaction.atomic():
        stored = LearningPattern.objects.select_for_update().filter(agent=agent).first()
        if stored is not None and all(getattr(stored, name) == values[name] for name in PATTERN_FIELDS):
            return stored, False
        pattern = stored or LearningPattern(agent=agent)
        for name, value in values.items():
            setattr(pattern, name, value)
        pattern.computed_at = timezone.now()
        pattern.save()
    _signals.pop(agent.pk, None)
    return pattern, True


def agents_to_learn(now=None):
    """Active agents whose pattern does not yet cover the current window (the nightly job resumes with these)."""
    _, end = window(now)
    done = LearningPattern.objects.filter(window_end__gte=end).values("agent_id")
    return Agent.objects.filter(is_active=True).exclude(pk__in=done).order_by("pk")


# --- Reading patterns ------------------------------------------------------------------------------

LISTED_TOPIC_IDS = 10


def get_pattern(actor, agent) -> LearningPattern | None:
    """The stored pattern of an agent the actor may analyse (access.can_analyse is the caller's business)."""
    with service_role():  # the table holds no grant for the agent role: access decided above
        return LearningPattern.objects.filter(agent=agent).first()


def pattern_for(actor, agent) -> dict:
    """The agent's stored patterns as `actor` may see them: only memories it may read are named or counted."""
    pattern = get_pattern(actor, agent)
    if pattern is None:
        return {"agent_id": agent.agent_id, "computed_at": None, "window_start": None, "window_end": None,
                "events": 0, "memories": 0, "topics": [], "co_access": [], "search_categories": {},
                "active_hours": [0] * 24, "stale": {"days": STALE_DAYS, "count": 0, "memory_ids": []},
                "returned_unused": [], "missed_by_members": []}
    referenced = set()
    for topic in pattern.topics:
        referenced.update(topic["memory_ids"])
    for pair in pattern.co_access:
        referenced.update(pair["memory_ids"])
    referenced.update(row[0] for row in pattern.returned)
    referenced.update(pattern.stale.get("memory_ids", []))
    referenced.update(item["id"] for item in pattern.returned_unused)
    referenced.update(item["id"] for item in pattern.missed_by_members)
    readable = dict(
        Memory.objects.visible_to(actor).filter(pk__in=list(referenced)).order_by()
        .values_list("pk", "memory_category")
    )
    readable = {str(pk): category for pk, category in readable.items()}
    return {
        "agent_id": agent.agent_id,
        "computed_at": pattern.computed_at,
        "window_start": pattern.window_start,
        "window_end": pattern.window_end,
        "events": pattern.events,
        "memories": pattern.memories,
        "topics": _readable_topics(pattern.topics, readable),
        "co_access": [pair for pair in pattern.co_access if all(pk in readable for pk in pair["memory_ids"])],
        "search_categories": _readable_categories(pattern, readable),
        "active_hours": pattern.active_hours,
        "stale": _readable_stale(pattern.stale, readable),
        "returned_unused": [item for item in pattern.returned_unused if item["id"] in readable],
        "missed_by_members": [item for item in pattern.missed_by_members if item["id"] in readable],
    }


def _readable_topics(topics: list[dict], readable: dict) -> list[dict]:
    kept = [[pk for pk in topic["memory_ids"] if pk in readable] for topic in topics]
    if all(len(ids) == topic["size"] for ids, topic in zip(kept, topics, strict=True)):
        return [{"labels": topic["labels"], "size": topic["size"], "memory_ids": topic["memory_ids"][:LISTED_TOPIC_IDS]}
                for topic in topics]
    # Words only from what the reader may read: the labels are worked out again over its part of each topic.
    kept = [ids for ids in kept if ids]
    contents = dict(Memory.objects.filter(pk__in=[pk for ids in kept for pk in ids]).values_list("pk", "content"))
    contents = {str(pk): text for pk, text in contents.items()}
    labels = label_topics([[contents[pk] for pk in ids if pk in contents] for ids in kept])
    result = [{"labels": words, "size": len(ids), "memory_ids": ids[:LISTED_TOPIC_IDS]}
              for words, ids in zip(labels, kept, strict=True)]
    result.sort(key=lambda topic: (-topic["size"], topic["labels"], topic["memory_ids"][0]))
    return result


def _readable_categories(pattern: LearningPattern, readable: dict) -> dict:
    listed = {row[0] for row in pattern.returned}
    if listed and listed <= set(readable) and sum(row[2] for row in pattern.returned) == sum(
            pattern.search_categories.values()):
        return pattern.search_categories
    categories = Counter()
    for pk, _, first, _ in pattern.returned:
        if pk in readable and first:
            categories[readable[pk]] += first
    return dict(sorted(categories.items(), key=lambda item: (-item[1], item[0])))


def _readable_stale(stale: dict, readable: dict) -> dict:
    ids = [pk for pk in stale.get("memory_ids", []) if pk in readable]
    count = stale.get("count", 0) if len(ids) == len(stale.get("memory_ids", [])) else len(ids)
    return {"days": stale.get("days", STALE_DAYS), "count": count, "memory_ids": ids}


# --- Signals for search -----------------------------------------------------------------------------

SIGNAL_CACHE_SECONDS = 60
_signals: dict = {}


class Signals:
    """What learned ranking reads of one agent's pattern: co-access strengths and memories returned but unused."""

    __slots__ = ("co_access", "unused")

    def __init__(self, co_access: dict, unused: frozenset):
        self.co_access = co_access  # memory id -> {other id: strength 0-1}
        self.unused = unused


EMPTY_SIGNALS = Signals({}, frozenset())


def signals(agent) -> Signals:
    """The agent's ranking signals, kept for SIGNAL_CACHE_SECONDS per process (they change nightly)."""
    import time

    now = time.monotonic()
    cached = _signals.get(agent.pk)
    if cached is not None and now - cached[0] < SIGNAL_CACHE_SECONDS:
        return cached[1]
    with service_role():
        row = LearningPattern.objects.filter(agent=agent).values_list("co_access", "returned_unused").first()
    if row is None:
        found = EMPTY_SIGNALS
    else:
        pairs, unused = row
        strongest = max((pair["count"] for pair in pairs), default=1)
        links: dict = defaultdict(dict)
        for pair in pairs:
            first, second = pair["memory_ids"]
            links[first][second] = links[second][first] = pair["count"] / strongest
        found = Signals(dict(links), frozenset(item["id"] for item in unused))
    _signals[agent.pk] = (now, found)
    return found


def learn_all(now=None, log=None) -> dict:
    """Learn the pattern of every active agent not yet done for this window, each in its own transaction.

    Resumable: an agent done is skipped by the next run; one agent's failure is logged and the others still run.
    """
    done = changed = failed = 0
    for agent in list(agents_to_learn(now)):
        try:
            _, was_changed = learn_patterns(agent, now)
        except Exception:
            logger.exception("learning the patterns of agent %s failed", agent.agent_id)
            failed += 1
            continue
        done += 1
        changed += was_changed
        if log is not None:
            log(agent, was_changed)
    return {"agents": done, "changed": changed, "failed": failed}
