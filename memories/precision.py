"""Which precision the embedding model runs at on this machine, when TMWS_EMBEDDING_PRECISION=auto.

int8 pays only where the CPU's 8-bit kernels are fast, and its vectors must stay close to float32's
for search to keep its recall. Neither holds on every CPU a service meets, so with `auto` the first
process on a machine measures both graphs on the calibration texts below: int8 is used when it
embeds at least INT8_MIN_SPEEDUP times as many texts per second as float32 and its vectors are
within INT8_MIN_COSINE (each text) and INT8_MIN_MEAN_COSINE (on average) of float32's. The
decision is kept in the data directory, one file per graph and CPU, so later processes (web,
workers) on the machine agree without measuring again. The bars come from the LoCoMo dev split
(docs/search.md, *Precision*): graphs that clear them keep hybrid recall@10 within one point.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "int8", "float32")
INT8_MIN_SPEEDUP = 1.25
INT8_MIN_COSINE = 0.95
INT8_MIN_MEAN_COSINE = 0.99
# The CPU features that decide which 8-bit kernels ONNX Runtime runs (and how fast).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_tile", "asimddp", "i8mm")

# Texts of the kinds a memory service stores: short facts, chat turns, notes and long passages.
CALIBRATION_TEXTS = [
    "ok",
    "Thanks!",
    "dark mode",
    "Deploys to production need an approval from the release owner.",
    "The staging database password rotates every 30 days.",
    "User prefers concise answers with code examples in Python.",
    "The quarterly report is due on the first Friday of April.",
    "Maria: I finally finished the watercolour of the harbour at dawn, it took me three weekends.",
    "Tom: did anyone book the venue for Saturday's meetup or should I call them tomorrow morning?",
    "Remember to rebuild the search index after changing the tokenizer settings.",
    "The API rate limit is 6000 requests per minute per principal; bursts above it get a 429.",
    "Priya asked whether the invoice for the October consulting work was paid; finance says next week.",
    "Our cat Miso hates the vacuum cleaner but loves sleeping on the warm laptop.",
    "Error: connection refused on 127.0.0.1:6379 while the worker started; Redis was restarting.",
    "The customer in Lyon wants the French translation of the onboarding guide before the launch.",
    "Sam: I've been training for the half marathon, up to 18 km on Sundays now, knees holding up.",
    "Decision: we keep PostgreSQL as the only datastore and drop the plan for a separate vector database.",
    "Jenny's daughter starts school in September and she is looking for a part-time position.",
    "git rebase -i HEAD~3 squashes the last three commits; force-push only to your own branch.",
    "The office plants need water twice a week in summer and once a week in winter.",
    "Retro notes: releases slipped twice because integration tests ran only at night; run them per merge.",
    "Alex: my grandmother taught me to bake bread when I was eight, and I still use her recipe every week.",
    "The build uses Python 3.11 and pins torch to the CPU build to keep the image small.",
    "When the disk fills above 90 percent, the nightly backup job pauses and alerts the on-call engineer.",
    "Kim said the conference talk went well and three people asked for the slides afterwards.",
    "Preferred meeting hours for the Tokyo team are 9 to 11 in the morning, Japan time.",
    "The migration from the old persona tables keeps every memory's embedding when the model is unchanged.",
    "Leo: we adopted a rescue dog last month, a shy greyhound called Pepper who is slowly learning to play.",
    "Use the staging bucket for experiments; the production bucket has object lock and cannot be cleaned.",
    "Hiking plan: start at the lake at 7, reach the ridge by noon, come back through the pine forest.",
    "The contract renewal needs signatures from both the CTO and the head of legal before December.",
    "Nadia: honestly the hardest part of moving abroad was not the language but missing my friends' birthdays.",
    "Latency budget for a search request: 30 ms at the median and 60 ms at the 95th percentile.",
    "He mentioned that the garden project at the community centre needs volunteers on weekends.",
    "Customer feedback: the export button is hard to find and CSV files open with broken accents in Excel.",
    ("Meeting summary: the team agreed to split the monolith's reporting module into its own service, "
     "keep the shared database for now, and revisit the queue technology after the load tests in March. "
     "Owners: Ana for the API, Ben for the data migration, Chen for monitoring and alerts."),
    ("Caroline: I went to a support group meeting yesterday and it was really moving, everyone shared "
     "their stories and I felt accepted for the first time in a long while. I think I want to keep going "
     "every week and maybe volunteer to help newcomers feel welcome too."),
    ("Incident report: at 02:14 the primary database ran out of connections because a batch job opened "
     "one per row; requests failed for eleven minutes until the job was stopped. Follow-ups: a connection "
     "pool with a hard limit, an alert on pool saturation, and a review of every job that loops over rows."),
    ("Travel notes: the train from Vienna to Budapest takes about two hours and forty minutes, seats can be "
     "reserved for a small fee, and the dining car accepts cards. In Budapest the metro ticket must be "
     "validated before boarding, inspectors check often, and the fine is high."),
    ("Recipe for the lentil soup Mum makes: onions, carrots and celery softened in olive oil, then red lentils, "
     "cumin, a bay leaf and vegetable stock; simmer twenty minutes, blend half of it, finish with lemon juice "
     "and a handful of chopped parsley. It freezes well for a month."),
]


@dataclass(frozen=True)
class Decision:
    """The precision a process embeds at, why, and what was measured to decide it (when measured)."""

    precision: str
    reason: str
    measured: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_flags() -> list[str]:
    """The CPU features among CPU_FLAGS that this machine has (Linux; elsewhere none are known)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    found = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            found.update(line.split(":", 1)[1].split())
    return [flag for flag in CPU_FLAGS if flag in found]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def judge(measured: dict) -> Decision:
    """int8 when it is clearly faster and close enough to float32; the reason names the figure that decided."""
    speedup = measured["int8_texts_per_second"] / measured["float32_texts_per_second"]
    figures = (f"int8 {speedup:.2f}x float32's speed, cosine to float32 min {measured['cosine_min']:.3f} "
               f"/ mean {measured['cosine_mean']:.4f}")
    if speedup < INT8_MIN_SPEEDUP:
        return Decision("float32", f"int8 is not faster enough on this CPU ({figures}; needs {INT8_MIN_SPEEDUP}x)",
                        measured)
    if measured["cosine_min"] < INT8_MIN_COSINE or measured["cosine_mean"] < INT8_MIN_MEAN_COSINE:
        return Decision("float32", f"int8 loses too much on this CPU ({figures}; needs min {INT8_MIN_COSINE} "
                        f"/ mean {INT8_MIN_MEAN_COSINE})", measured)
    return Decision("int8", f"measured on this CPU: {figures}", measured)


def measure(float32, int8, rounds: int = 3) -> dict:
    """Texts per second of both encoders on the calibration texts (best of interleaved rounds) and their cosines."""
    reference = float32.embed(CALIBRATION_TEXTS)
    quantised = int8.embed(CALIBRATION_TEXTS)
    cosines = (reference * quantised).sum(axis=1)
    best = {"float32": 0.0, "int8": 0.0}
    for _ in range(rounds):
        for name, encoder in (("float32", float32), ("int8", int8)):
            started = time.perf_counter()
            encoder.embed(CALIBRATION_TEXTS)
            best[name] = max(best[name], len(CALIBRATION_TEXTS) / (time.perf_counter() - started))
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "float32_texts_per_second": round(best["float32"], 1),
        "int8_texts_per_second": round(best["int8"], 1),
        "cosine_min": round(float(cosines.min()), 4),
        "cosine_mean": round(float(np.mean(cosines)), 4),
        "texts": len(CALIBRATION_TEXTS),
    }


def decision_file(graph: Path) -> Path:
    """Where the decision for this graph on this CPU is kept (beside it): a new CPU, model or runtime decides anew."""
    import onnxruntime

    key = repr((graph.name, cpu_model(), cpu_flags(), onnxruntime.__version__, INT8_MIN_SPEEDUP,
                INT8_MIN_COSINE, INT8_MIN_MEAN_COSINE))
    return graph.parent / f"precision-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def decide(graph: Path, encoders) -> Decision:
    """The kept decision for this graph and CPU, or a new one measured with encoders() -> (float32, int8).

    Processes starting together (gunicorn or Celery workers) take turns: the first measures, the
    others wait for it and read what it kept, so no two processes of a machine disagree.
    """
    path = decision_file(graph)
    try:
        lock = open(path.with_suffix(".lock"), "a")
    except OSError:  # a read-only data directory: nothing can be kept, so there is nothing to wait for
        return _kept(path) or _measured_and_kept(path, encoders)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _kept(path) or _measured_and_kept(path, encoders)


def _kept(path: Path) -> Decision | None:
    try:
        kept = json.loads(path.read_text())
        return Decision(kept["precision"], kept["reason"], kept.get("measured") or {})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _measured_and_kept(path: Path, encoders) -> Decision:
    decision = judge(measure(*encoders()))
    try:
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(decision.as_dict(), indent=2))
        os.replace(partial, path)
    except OSError as exc:  # a read-only data directory: the next process measures again
        logger.warning("The embedding precision decision could not be kept in %s (%s).", path, exc)
    return decision
