"""Weight decay: per agent, off by default, toward a floor, only for memories no search returned; no versions."""
from __future__ import annotations

import datetime

import pytest

from access import SYSTEM
from agents.contracts import UpdateAgent
from agents.models import Agent
from agents.services import update_agent
from memories.contracts import StoreMemory
from memories.decay import decay_weights
from memories.models import Memory, MemoryUsage, MemoryVersion, WeightDecay
from memories.services import create_memory

pytestmark = pytest.mark.django_db

DAY = datetime.timedelta(days=1)


def _configure(agent, **configuration):
    return update_agent(SYSTEM, agent, UpdateAgent.parse({"configuration": configuration}))


def _weights(*memories) -> list[float]:
    return [round(Memory.objects.get(pk=m.pk).learning_weight, 6) for m in memories]


@pytest.fixture
def memories(team):
    """Three memories of the owner, created ten days before `start`."""
    owner = team["owner"].agent
    start = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    made = [create_memory(owner, StoreMemory.parse({"content": f"Note {n}.", "learning_weight": weight}))
            for n, weight in ((1, 2.25), (2, 2.25), (3, 0.1))]
    Memory.objects.filter(pk__in=[m.pk for m in made]).update(created_at=start - 10 * DAY)
    return owner, start, made


def test_decay_is_off_by_default(memories):
    _, start, made = memories
    assert decay_weights(start) == {}
    assert decay_weights(start + 30 * DAY) == {}
    assert _weights(*made) == [2.25, 2.25, 0.1]


def test_weights_halve_toward_the_floor_per_half_life_and_returned_memories_decay_less(memories):
    # given: decay on (10-day half-life, floor 0.25); the clock starts at the first run
    owner, start, (idle, returned, low) = memories
    _configure(owner, decay_half_life_days=10)
    assert decay_weights(start) == {"owner-agent": 0}
    MemoryUsage.objects.create(memory=returned, access_count=1, last_accessed_at=start + 9 * DAY)
    # when: ten days later
    changed = decay_weights(start + 10 * DAY)
    # then: idle decays one half-life, the returned one one day only, the one under the floor not at all
    assert changed == {"owner-agent": 2}
    assert _weights(idle, returned, low) == [1.25, round(0.25 + 2.0 * 0.5 ** 0.1, 6), 0.1]


def test_running_twice_at_the_same_moment_changes_nothing(memories):
    owner, start, made = memories
    _configure(owner, decay_half_life_days=10)
    decay_weights(start)
    decay_weights(start + 10 * DAY)
    before = _weights(*made)
    assert decay_weights(start + 10 * DAY) == {"owner-agent": 0}
    assert _weights(*made) == before


def test_decay_adds_no_version(memories):
    owner, start, made = memories
    _configure(owner, decay_half_life_days=10)
    versions = MemoryVersion.objects.count()
    decay_weights(start)
    decay_weights(start + 10 * DAY)
    assert MemoryVersion.objects.count() == versions


def test_an_agents_own_floor_and_other_agents_untouched(memories, team):
    owner, start, (idle, _, _) = memories
    other = create_memory(team["member"].agent, StoreMemory.parse({"content": "Member note.", "learning_weight": 3.0}))
    Memory.objects.filter(pk=other.pk).update(created_at=start - DAY)
    _configure(owner, decay_half_life_days=5, decay_floor=1.0)
    decay_weights(start)
    decay_weights(start + 10 * DAY)
    assert _weights(idle, other) == [1.3125, 3.0]  # 1 + 1.25 * 0.25


def test_turning_decay_off_stops_the_clock(memories):
    owner, start, (idle, _, _) = memories
    _configure(owner, decay_half_life_days=10)
    decay_weights(start)
    _configure(owner)
    decay_weights(start + 5 * DAY)
    assert not WeightDecay.objects.filter(agent=owner).exists()
    _configure(owner, decay_half_life_days=10)
    decay_weights(start + 20 * DAY)  # starts the clock again: the time off does not count
    assert _weights(idle) == [2.25]
    decay_weights(start + 30 * DAY)
    assert _weights(idle) == [1.25]


@pytest.mark.parametrize("value", [0, -1, "ten", True, 40_000, None])
def test_a_bad_half_life_is_refused_and_nothing_changes(team, value):
    owner = team["owner"]
    response = owner.client.patch(f"/api/v2/agents/{owner.agent_id}", {"configuration": {"decay_half_life_days": value}},
                                  format="json")
    if value is None:  # null: off
        assert response.status_code == 200, response.content
        return
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["configuration.decay_half_life_days"]
    assert "decay_half_life_days" not in Agent.objects.get(pk=owner.agent.pk).configuration
