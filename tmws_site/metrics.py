"""Prometheus metrics for operators: whether the service keeps up, in counts, never content or names."""
from __future__ import annotations

import logging
from typing import NamedTuple

from django.db.models import Sum
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema

import access
from agents.models import Agent
from core import limits
from core.api import BaseAPIView, IgnoreAccept
from core.errors import Forbidden
from core.models import count_by
from core.redis_client import broker_redis
from core.schema import errors
from memories.choices import EmbeddingStatus
from memories.models import Memory, MemoryUsage
from namespaces.models import Namespace
from workflows.models import RunStatus, Task, TaskStatus, WorkflowRun

logger = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metric(NamedTuple):
    name: str
    help: str
    samples: list  # (labels dict, value)
    kind: str = "gauge"


def _by(queryset, field: str, label: str, choices) -> list:
    """One sample per choice, zero included, so a series never disappears from the scrape."""
    counts = count_by(queryset, field)
    return [({label: value}, counts.get(value, 0)) for value in choices.values]


def collect() -> list[Metric]:
    embedding = Memory.objects.embedding_summary()
    pending_since = embedding.get(EmbeddingStatus.PENDING, (0, None))[1]
    active = Agent.objects.filter(is_active=True).count()
    metrics = [
        Metric("tmws_agents", "Registered agents.", [({"state": "active"}, active),
                                                      ({"state": "inactive"}, Agent.objects.count() - active)]),
        Metric("tmws_namespaces", "Namespaces.", [({}, Namespace.objects.count())]),
        Metric("tmws_memories", "Memories by embedding status.",
               [({"embedding_status": status}, embedding.get(status, (0, None))[0]) for status in EmbeddingStatus.values]),
        Metric("tmws_embedding_oldest_pending_seconds",
               "How long the longest-waiting pending memory has waited for its embedding (0: none waits).",
               [({}, (timezone.now() - pending_since).total_seconds() if pending_since else 0.0)]),
        Metric("tmws_memory_search_hits", "Search results returned, summed over the memories that still exist.",
               [({}, MemoryUsage.objects.aggregate(total=Sum("access_count"))["total"] or 0)]),
        Metric("tmws_tasks", "Tasks by status.", _by(Task.objects.all(), "status", "status", TaskStatus)),
        Metric("tmws_workflow_runs", "Workflow runs by status.",
               _by(WorkflowRun.objects.all(), "status", "status", RunStatus)),
    ]
    metrics.append(Metric(
        "tmws_requests_rejected_in_flight_total",
        "Requests refused with 429 because their agent had too many in flight (all web processes with Redis).",
        [({}, limits.rejected_total())], "counter",
    ))
    return metrics + _buffer_metrics()


def _buffer_metrics() -> list[Metric]:
    """What waits in Redis (with a Redis broker); left out, with a warning, when Redis does not answer."""
    from memories.hits import HIT_BUFFER_KEY
    from memories.tasks import EMBEDDING_DRAIN_KEY

    buffer = broker_redis()
    if buffer is None:
        return []
    try:
        pipeline = buffer.pipeline(transaction=False)
        pipeline.llen(HIT_BUFFER_KEY)
        pipeline.exists(EMBEDDING_DRAIN_KEY)
        hits, drain = pipeline.execute()
    except Exception as exc:
        logger.warning("metrics: Redis did not answer (%s)", exc)
        return []
    return [
        Metric("tmws_memory_hits_buffered", "Search hits waiting in Redis to be counted.", [({}, hits)]),
        Metric("tmws_embedding_drain_scheduled", "1 while an embedding drain is on its way or running.", [({}, drain)]),
    ]


def render(metrics: list[Metric]) -> str:
    lines = []
    for metric in metrics:
        lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.kind}"]
        for labels, value in metric.samples:
            label_text = ",".join(f'{key}="{val}"' for key, val in labels.items())
            number = str(value) if isinstance(value, int) else repr(float(value))
            lines.append(f"{metric.name}{{{label_text}}} {number}" if labels else f"{metric.name} {number}")
    return "\n".join(lines) + "\n"


class MetricsView(BaseAPIView):
    """`GET /metrics` in the Prometheus text format, for operators granted `memories.view_metrics`."""

    # The scrape is always text and errors always JSON, whatever a scraper's Accept header asks for.
    content_negotiation_class = IgnoreAccept

    @extend_schema(
        responses={(200, "text/plain"): str, **errors((403, "Only operators granted memories.view_metrics read them."))}
    )
    def get(self, request):
        if not access.can_read_metrics(self.principal):
            raise Forbidden("Metrics are for operators granted memories.view_metrics.")
        return HttpResponse(render(collect()), content_type=CONTENT_TYPE)
