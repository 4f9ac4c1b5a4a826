"""The compat/0002 data migration: forward, backward and forward again leave the same data."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from agents.models import Agent
from compat.models import OwnershipKind, Persona, PersonaLink, PersonaOwnership
from memories.models import Memory
from workflows.models import Task, Workflow

BEFORE = [("compat", "0001_initial")]
AFTER = [("compat", "0002_personas_to_agents")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def snapshot() -> dict:
    return {
        "agents": sorted(
            (a.pk, a.agent_id, a.agent_type, a.display_name, a.namespace.namespace, str(a.capabilities),
             str(a.configuration), str(a.metadata), a.user.username)
            for a in Agent.objects.select_related("namespace", "user")
        ),
        "memories": sorted(Memory.objects.values_list("id", "agent_id", "access_level", "updated_at"), key=str),
        "tasks": sorted(Task.objects.values_list("id", "assigned_agent_id"), key=str),
        "workflows": sorted(Workflow.objects.values_list("id", "created_by_id"), key=str),
        "links": sorted(PersonaLink.objects.values_list("persona__name", "agent__agent_id", "agent_created")),
        "ownerships": sorted(PersonaOwnership.objects.values_list("kind", "rewired", "previous_agent_id"), key=str),
    }


@pytest.fixture
def persona_era_rows(make_namespace, make_agent):
    """Persona rows with persona-era links: a system memory, an unassigned task and a workflow without creator."""
    make_namespace("ops")
    operator = make_agent("ops-bot", "ops")
    athena = Persona.objects.create(name="athena", type="athena", role="strategist", display_name="Athena",
                                    specialties=["planning"], capabilities=["analysis"], total_tasks=4)
    hestia = Persona.objects.create(name="hestia", type="hestia", role="auditor", display_name="Hestia")
    Persona.objects.create(name="ops-bot", type="bellona", role="coordinator", display_name="Ops")  # agent exists
    from namespaces.models import Namespace

    ops = Namespace.objects.get(namespace="ops")
    memory = Memory.objects.create(content="Plan the quarter around the search migration.", namespace=ops,
                                   access_level="system", agent=None)
    owned = Memory.objects.create(content="Audit findings for March.", namespace=ops, access_level="shared",
                                  agent=operator.agent)
    task = Task.objects.create(title="Audit the login flow")
    workflow = Workflow.objects.create(name="Release")
    PersonaOwnership.objects.create(persona=athena, kind=OwnershipKind.MEMORY_OWNER, memory=memory)
    PersonaOwnership.objects.create(persona=hestia, kind=OwnershipKind.MEMORY_OWNER, memory=owned)
    PersonaOwnership.objects.create(persona=hestia, kind=OwnershipKind.TASK_ASSIGNEE, task=task)
    PersonaOwnership.objects.create(persona=athena, kind=OwnershipKind.WORKFLOW_CREATOR, workflow=workflow)
    return {"memory": memory, "owned": owned, "task": task, "workflow": workflow, "operator": operator.agent,
            "athena": athena}


@pytest.mark.django_db(transaction=True)
def test_forward_backward_forward_leaves_the_same_data(persona_era_rows):
    # given: the rows were written after compat/0002 ran on an empty table; start from before it
    migrate(BEFORE)
    original = snapshot()

    # when: forward
    migrate(AFTER)
    forward = snapshot()

    # then: personas became agents, links point at them
    athena = Agent.objects.get(agent_id="athena")
    assert athena.pk == persona_era_rows["athena"].pk
    assert athena.agent_type == "persona" and athena.namespace.namespace == "legacy"
    assert athena.capabilities["specialties"] == ["planning"]
    assert Memory.objects.get(pk=persona_era_rows["memory"].pk).agent == athena
    assert Memory.objects.get(pk=persona_era_rows["owned"].pk).agent.agent_id == "hestia"
    assert Task.objects.get(pk=persona_era_rows["task"].pk).assigned_agent.agent_id == "hestia"
    assert Workflow.objects.get(pk=persona_era_rows["workflow"].pk).created_by == athena
    assert Agent.objects.get(agent_id="ops-bot").pk == persona_era_rows["operator"].pk  # linked, not created
    assert forward["links"] == [("athena", "athena", True), ("hestia", "hestia", True), ("ops-bot", "ops-bot", False)]

    # when: backward
    migrate(BEFORE)

    # then: exactly the original data
    assert snapshot() == original

    # when: forward again
    migrate(AFTER)

    # then: the same data as the first forward
    assert snapshot() == forward


@pytest.mark.django_db(transaction=True)
def test_reverse_refuses_to_drop_memories_written_since(persona_era_rows):
    # given
    from compat.conversion import ConversionRefused

    migrate(BEFORE)
    migrate(AFTER)
    athena = Agent.objects.get(agent_id="athena")
    Memory.objects.create(content="Written after the migration.", namespace=athena.namespace, agent=athena,
                          access_level="private")
    before = snapshot()

    # when / then
    with pytest.raises(ConversionRefused, match="Agent 'athena' owns 1 memories"):
        migrate(BEFORE)
    assert snapshot() == before
    Memory.objects.filter(agent=athena).delete()
    migrate(BEFORE)
    migrate(AFTER)
