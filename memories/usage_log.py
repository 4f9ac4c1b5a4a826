"""The usage log read and pruned: retention, and searches per day with their latency (memories.usage records it)."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import UsageEvent


def delete_old_events(now=None) -> int:
    """Delete events older than TMWS_USAGE_RETENTION_DAYS (0 keeps them for ever); returns rows deleted."""
    days = settings.TMWS_USAGE_RETENTION_DAYS
    if days <= 0:
        return 0
    before = (now or timezone.now()) - timedelta(days=days)
    return UsageEvent.objects.filter(at__lt=before).delete()[0]


# Per day (UTC) and mode, and per day over every mode (mode NULL), searches and their latency percentiles, of the
# agents given (NULL: every agent): the operator dashboard's one statement, from the (kind, at) index.
SCOPED_DAILY_SEARCHES_SQL = f"""
SELECT date_trunc('day', at AT TIME ZONE 'UTC')::date AS day, mode, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
  FROM {UsageEvent._meta.db_table}
 WHERE kind = 'search' AND at >= %s AND at < %s
   AND (%s::uuid[] IS NULL OR agent_id = ANY(%s::uuid[]))
 GROUP BY GROUPING SETS ((1, 2), (1))
 ORDER BY 1, 2 NULLS FIRST
"""


def searches_by_day(since, until=None, agent_ids=None) -> list[tuple]:
    """[(day, mode or None for all modes, searches, p50 ms, p95 ms)] of the agents `agent_ids` (None: all)."""
    ids = None if agent_ids is None else [str(pk) for pk in agent_ids]
    with connection.cursor() as cursor:
        cursor.execute(SCOPED_DAILY_SEARCHES_SQL, [since, until or timezone.now(), ids, ids])
        return cursor.fetchall()


# Searches per day with their latency: what an operator's dashboard reads, from the (kind, at) index.
DAILY_SEARCHES_SQL = f"""
SELECT date_trunc('day', at AT TIME ZONE 'UTC')::date AS day, mode, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
  FROM {UsageEvent._meta.db_table}
 WHERE kind = 'search' AND at >= %s AND at < %s
 GROUP BY 1, 2
 ORDER BY 1, 2
"""


def daily_searches(since, until=None) -> list[dict]:
    """[{day, mode, searches, p50_ms, p95_ms}] for the days (UTC) from `since` up to `until` (default now)."""
    with connection.cursor() as cursor:
        cursor.execute(DAILY_SEARCHES_SQL, [since, until or timezone.now()])
        rows = cursor.fetchall()
    return [
        {"day": day.isoformat(), "mode": mode, "searches": count,
         "p50_ms": round(p50, 2) if p50 is not None else None, "p95_ms": round(p95, 2) if p95 is not None else None}
        for day, mode, count, p50, p95 in rows
    ]
