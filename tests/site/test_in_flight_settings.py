"""Who sets an agent's in-flight limit, and how slots behave (real Redis for the shared store)."""
from __future__ import annotations

import pytest
import redis

from agents.contracts import UpdateConfiguration
from agents.models import Agent
from agents.tools import update_configuration
from core import limits
from core.errors import Forbidden

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(make_namespace, make_agent):
    make_namespace("team")
    return make_agent("limited-agent", "team", configuration={"theme": "dark"})


def test_an_operator_sets_an_agents_limit(agent, operator_client, settings):
    # when
    response = operator_client.patch("/api/v2/agents/limited-agent",
                                      {"configuration": {"theme": "dark", "max_in_flight": 2}}, format="json")

    # then
    assert response.status_code == 200, response.content
    stored = Agent.objects.get(pk=agent.agent.pk)
    assert stored.configuration == {"theme": "dark", "max_in_flight": 2}
    assert limits.limit_for(stored) == 2
    assert limits.limit_for(Agent(configuration={})) == settings.TMWS_AGENT_MAX_IN_FLIGHT == 5


@pytest.mark.parametrize("value", [0, -1, "5", 2.5, True, [3]])
def test_an_operator_gives_a_whole_number(agent, operator_client, value):
    # when
    response = operator_client.patch("/api/v2/agents/limited-agent", {"configuration": {"max_in_flight": value}},
                                     format="json")

    # then
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"configuration.max_in_flight": [
        "configuration.max_in_flight must be a whole number of at least 1 (or null for the default)."]}
    assert Agent.objects.get(pk=agent.agent.pk).configuration == {"theme": "dark"}


def test_an_agent_does_not_raise_its_own_limit(agent, operator_client):
    # given
    operator_client.patch("/api/v2/agents/limited-agent", {"configuration": {"max_in_flight": 2}}, format="json")

    # when: over REST and through the MCP tool
    response = agent.client.patch("/api/v2/agents/limited-agent", {"configuration": {"max_in_flight": 50}},
                                  format="json")
    with pytest.raises(Forbidden) as refused:
        update_configuration(Agent.objects.get(pk=agent.agent.pk),
                             UpdateConfiguration.parse({"configuration": {"max_in_flight": 50}}))

    # then
    assert response.status_code == 403
    assert response.json()["error"]["fields"] == {"configuration.max_in_flight": [
        "configuration.max_in_flight is set by operators; an agent does not change its own."]}
    assert refused.value.field == "configuration.max_in_flight"
    assert Agent.objects.get(pk=agent.agent.pk).configuration == {"max_in_flight": 2}


def test_an_agents_own_configuration_changes_keep_the_operators_limit(agent, operator_client):
    # given
    operator_client.patch("/api/v2/agents/limited-agent", {"configuration": {"max_in_flight": 2}}, format="json")

    # when: a merge, then a whole replacement that leaves the key out
    update_configuration(Agent.objects.get(pk=agent.agent.pk),
                         UpdateConfiguration.parse({"configuration": {"auto_categorise": True}}))
    response = agent.client.patch("/api/v2/agents/limited-agent", {"configuration": {"theme": "light"}},
                                  format="json")

    # then
    assert response.status_code == 200
    assert Agent.objects.get(pk=agent.agent.pk).configuration == {"theme": "light", "max_in_flight": 2}


def test_an_agent_may_not_set_a_limit_it_never_had(agent):
    # when
    response = agent.client.patch("/api/v2/agents/limited-agent", {"configuration": {"max_in_flight": 1}},
                                  format="json")

    # then
    assert response.status_code == 403
    assert Agent.objects.get(pk=agent.agent.pk).configuration == {"theme": "dark"}


@pytest.mark.redis
def test_shared_slots_expire_so_a_crashed_process_leaks_none(agent, require_redis, settings):
    # given: the broker's Redis holds the slots; a crashed process left two leases that have run out
    settings.CELERY_BROKER_URL = require_redis
    client = redis.Redis.from_url(require_redis)
    key = limits.SLOTS_KEY.format(agent=agent.agent.pk)
    client.delete(key)
    now = float(client.time()[0])
    client.zadd(key, {"crashed-1": now - 5, "crashed-2": now - 1})
    model = Agent.objects.get(pk=agent.agent.pk)
    model.configuration = {"max_in_flight": 2}

    # when
    first, second = limits.acquire(model), limits.acquire(model)
    with pytest.raises(limits.TooManyInFlight):
        limits.acquire(model)
    leases = client.zrange(key, 0, -1, withscores=True)
    limits.release(first)
    limits.release(second)

    # then: the dead leases were dropped, the live ones run for the lease time and are given back
    assert sorted(name for name, _ in leases) == sorted([first.token.encode(), second.token.encode()])
    assert all(now + limits.LEASE_SECONDS - 2 <= score <= now + limits.LEASE_SECONDS + 2 for _, score in leases)
    assert 0 < client.ttl(key) <= limits.LEASE_SECONDS + 1 or client.exists(key) == 0
    assert client.zcard(key) == 0


def test_without_redis_a_process_counts_for_itself(agent, settings):
    # given
    settings.CELERY_BROKER_URL = ""
    model = Agent.objects.get(pk=agent.agent.pk)
    model.configuration = {"max_in_flight": 1}
    rejected_before = limits.rejected_total()

    # when
    with limits.in_flight(model):
        with pytest.raises(limits.TooManyInFlight) as refused:
            limits.acquire(model)
    after = limits.acquire(model)
    limits.release(after)

    # then
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "1"}
    assert limits.rejected_total() == rejected_before + 1
