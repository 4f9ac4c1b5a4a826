"""Per-agent concurrency limit: one agent has at most N requests (REST and MCP together) in flight.

N is `TMWS_AGENT_MAX_IN_FLIGHT` (default 5), or the agent's `configuration.max_in_flight`, which
operators set (agents may not change their own: agents.services). Over the limit a request is
refused at once with 429 `too_many_in_flight` and `Retry-After`; other agents are unaffected.

With a Redis broker the slots are shared by every web process: one sorted set per agent whose
members are leases that expire on their own (LEASE_SECONDS), so a process that crashes mid-request
frees its slots within the lease. Without Redis, or while Redis does not answer, each process
counts for itself (the limit then holds per process).
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

from .errors import ServiceError
from .redis_client import broker_redis

logger = logging.getLogger(__name__)

CONFIGURATION_KEY = "max_in_flight"
# A request holding a slot longer than this frees it anyway: a crashed process leaks nothing for longer.
LEASE_SECONDS = 60
RETRY_AFTER_SECONDS = 1
SLOTS_KEY = "tmws:in-flight:{agent}"
REJECTED_KEY = "tmws:in-flight:rejected"

# KEYS: slots, rejected counter. ARGV: limit, lease seconds, token. Server time, so machines' clocks do not matter.
_ACQUIRE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  redis.call('INCR', KEYS[2])
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 1)
return 1
"""


class TooManyInFlight(ServiceError):
    status = 429
    code = "too_many_in_flight"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def limit_for(agent) -> int:
    """The agent's own limit when an operator set a positive whole number, else the default."""
    value = (agent.configuration or {}).get(CONFIGURATION_KEY)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return settings.TMWS_AGENT_MAX_IN_FLIGHT


class ProcessSlots:
    """Slots counted in this process only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: Counter = Counter()
        self.rejected = 0

    def acquire(self, agent_pk: str, limit: int, token: str) -> bool:
        with self._lock:
            if self._held[agent_pk] >= limit:
                self.rejected += 1
                return False
            self._held[agent_pk] += 1
            return True

    def release(self, agent_pk: str, token: str) -> None:
        with self._lock:
            self._held[agent_pk] -= 1
            if self._held[agent_pk] <= 0:
                del self._held[agent_pk]


class RedisSlots:
    """Slots shared through Redis by every process that uses the same broker."""

    def __init__(self, client):
        self.client = client

    def acquire(self, agent_pk: str, limit: int, token: str) -> bool:
        keys = [SLOTS_KEY.format(agent=agent_pk), REJECTED_KEY]
        return bool(self.client.eval(_ACQUIRE, 2, *keys, limit, LEASE_SECONDS, token))

    def release(self, agent_pk: str, token: str) -> None:
        self.client.zrem(SLOTS_KEY.format(agent=agent_pk), token)

    def rejected(self) -> int:
        return int(self.client.get(REJECTED_KEY) or 0)


process_slots = ProcessSlots()


def shared_slots() -> RedisSlots | None:
    client = broker_redis()
    return RedisSlots(client) if client is not None else None


@dataclass
class Slot:
    agent_pk: str
    token: str
    store: ProcessSlots | RedisSlots


def acquire(agent) -> Slot:
    """Take one of the agent's slots, or raise TooManyInFlight."""
    agent_pk, token, limit = str(agent.pk), uuid.uuid4().hex, limit_for(agent)
    store = shared_slots()
    if store is not None:
        try:
            taken = store.acquire(agent_pk, limit, token)
        except Exception as exc:  # Redis down: requests go on, limited per process
            logger.warning("in-flight limit: Redis did not answer (%s); counting per process", exc)
            store = None
    if store is None:
        store = process_slots
        taken = store.acquire(agent_pk, limit, token)
    if not taken:
        raise TooManyInFlight(
            f"Agent {agent.agent_id} already has {limit} requests in flight; retry after {RETRY_AFTER_SECONDS} s."
        )
    return Slot(agent_pk, token, store)


def release(slot: Slot) -> None:
    try:
        slot.store.release(slot.agent_pk, slot.token)
    except Exception as exc:  # the lease frees it
        logger.warning("in-flight limit: could not release a slot (%s); its lease frees it", exc)


@contextmanager
def in_flight(agent):
    slot = acquire(agent)
    try:
        yield slot
    finally:
        release(slot)


def rejected_total() -> int:
    """Requests refused for the limit: across processes with Redis, else by this process."""
    store = shared_slots()
    if store is not None:
        try:
            return store.rejected() + process_slots.rejected
        except Exception as exc:
            logger.warning("in-flight limit: Redis did not answer (%s)", exc)
    return process_slots.rejected
