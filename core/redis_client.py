"""The broker's Redis, shared by every module that keeps a flag, a buffer or a counter there.

The in-flight limit, the embedding drain's flag, the search-hit buffer and the metrics that read
them all use the Redis that Celery uses as its broker: one more service would be one more thing
to run. Without a Redis broker (none, or another kind) there is no client, and each caller has a
fallback that works in one process.
"""
from __future__ import annotations

from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=4)
def client_for(url: str):
    import redis

    # Bounded waits: with Redis unreachable a write's after-commit signal fails in seconds, not minutes.
    return redis.Redis.from_url(
        url, socket_connect_timeout=settings.TMWS_REDIS_TIMEOUT_SECONDS, socket_timeout=settings.TMWS_REDIS_TIMEOUT_SECONDS
    )


def broker_redis():
    """The broker's Redis client, or None (no broker, or a broker other than Redis)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return client_for(url)
