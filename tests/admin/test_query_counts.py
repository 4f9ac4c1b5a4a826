"""Exact query counts of every admin changelist: the same fixed number for a few rows and for more.

Each test opens a changelist over a few rows, adds more, and opens it again under the same exact
count, so a column read once per row (an N+1) and a new constant query both fail here.

What a superuser's agent changelist costs, for example (10):
  1  SAVEPOINT: the request's transaction (ATOMIC_REQUESTS), nested in the test's own transaction;
  2  the session, and 3 its user (authentication);
  4  the user's agent, of which an operator has none (the request log names the agent or operator);
  5  the namespaces agents live in: the choices of the namespace filter (RelatedOnlyFieldListFilter);
  6  COUNT(*) of the rows matching the filters, and 7 of all rows ("8 of 13 selected");
  8  the page of agents, with their home namespaces joined;
  9  RELEASE SAVEPOINT: the view has returned;
 10  the agent types of the agent_type filter, read as the (lazy) template response renders.
"""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from access import SYSTEM
from agents.contracts import RegisterAgent
from agents.models import ApiKey
from agents.services import register_agent
from compat.models import ImportRun, Persona, PersonaLink
from namespaces.contracts import CreateNamespace
from namespaces.services import create_namespace
from tests.query_rows import STEPS, add_memories, add_runs, add_tasks, add_workflows
from workflows import workflow_services
from workflows.definitions import CreateWorkflow

pytestmark = pytest.mark.django_db

NAMESPACES = ["team", "squad", "other"]


def add_groups(team, first: int, count: int) -> None:
    for index in range(first, first + count):
        Group.objects.create(name=f"group-{index}").permissions.add(*Permission.objects.all()[:index + 1])


def add_users(team, first: int, count: int) -> None:
    for index in range(first, first + count):
        get_user_model().objects.create_user(f"user-{index}", email=f"user-{index}@example.com")


def add_namespaces(team, first: int, count: int) -> None:
    for index in range(first, first + count):
        create_namespace(SYSTEM, CreateNamespace.parse({"namespace": f"ns-{index}",
                                                         "parent_namespace": [*NAMESPACES, None][index % 4]}))


def add_agents(team, first: int, count: int) -> None:
    for index in range(first, first + count):
        register_agent(SYSTEM, RegisterAgent.parse({"agent_id": f"extra-{index}", "namespace": NAMESPACES[index % 3],
                                                     "agent_type": f"type-{index}"}))


def add_api_keys(team, first: int, count: int) -> None:
    handles = list(team.values())
    for index in range(first, first + count):
        ApiKey.issue(handles[index % len(handles)].agent.user, name=f"key-{index}")


def add_memory_rows(team, first: int, count: int) -> None:
    add_memories(team, count, word=f"batch{first}")


def add_task_rows(team, first: int, count: int) -> None:
    add_tasks(team, count)


def add_workflow_rows(team, first: int, count: int) -> None:
    add_workflows(team, count)


def add_run_rows(team, first: int, count: int) -> None:
    workflow = workflow_services.create_workflow(
        team["owner"].agent, CreateWorkflow.parse({"name": f"Runs {first}", "steps": STEPS}))
    add_runs(workflow, team, count)


def add_import_runs(team, first: int, count: int) -> None:
    for index in range(first, first + count):
        ImportRun.objects.create(source=f"postgresql://legacy-{index}/tmws", status=["running", "completed"][index % 2])


def add_personas(team, first: int, count: int) -> None:
    """Personas, every other one linked to the agent it became."""
    for index in range(first, first + count):
        persona = Persona.objects.create(name=f"persona-{index}", type="athena", role="strategist")
        if index % 2:
            agent, _ = register_agent(SYSTEM, RegisterAgent.parse({"agent_id": f"persona-{index}", "namespace": "team"}))
            PersonaLink.objects.create(persona=persona, agent=agent)


# changelist: (add rows, exact queries, rows listed after 3 and after 8 added)
CHANGELISTS = {
    "auth.group": (add_groups, 8, (3, 8)),
    "auth.user": (add_users, 9, (13, 18)),
    "namespaces.namespace": (add_namespaces, 9, (7, 12)),
    "agents.agent": (add_agents, 10, (11, 16)),
    "agents.apikey": (add_api_keys, 8, (11, 16)),
    "memories.memory": (add_memory_rows, 10, (3, 8)),
    "workflows.task": (add_task_rows, 10, (3, 8)),
    "workflows.workflow": (add_workflow_rows, 9, (3, 8)),
    "workflows.workflowrun": (add_run_rows, 8, (3, 8)),
    "compat.importrun": (add_import_runs, 8, (3, 8)),
    "compat.persona": (add_personas, 8, (3, 8)),
}


@pytest.fixture
def changelist(django_assert_num_queries):
    """Open a changelist under an exact query count; answer how many rows it lists."""

    def open_page(client, model: str, queries: int) -> int:
        url = reverse(f"admin:{model.replace('.', '_')}_changelist")
        with django_assert_num_queries(queries):
            response = client.get(url)
        assert response.status_code == 200, response.content
        return response.context["cl"].result_count

    return open_page


@pytest.mark.parametrize("model", CHANGELISTS)
def test_superuser_changelist(model, team, superuser_client, changelist):
    # given
    add_rows, queries, (few, many) = CHANGELISTS[model]
    add_rows(team, 0, 3)
    assert changelist(superuser_client, model, queries) == few
    # when
    add_rows(team, 3, 5)
    # then
    assert changelist(superuser_client, model, queries) == many


# A staff operator with view rights on the models, change rights on `team` and view rights on `other`: its
# pages add the operator's namespace scope (guardian rights and the subtree) to each read.
# (Namespaces and API keys list fewer than were added: new top-level namespaces and the keys of
# `company-agent` are outside the operator's scope.)
# changelist: (exact queries, rows listed after 3 and after 8 added)
SCOPED_CHANGELISTS = {
    "namespaces.namespace": (14, (6, 9)),
    "agents.agent": (15, (10, 15)),
    "agents.apikey": (13, (10, 14)),
    "memories.memory": (15, (3, 8)),
    "workflows.task": (15, (3, 8)),
    "workflows.workflow": (14, (3, 8)),
    "workflows.workflowrun": (13, (3, 8)),
}


@pytest.fixture
def scoped_operator(team, make_operator):
    rights = {"team": ["view_namespace", "change_namespace"], "other": ["view_namespace"]}
    client = make_operator("scoped-operator", rights)
    client.user.user_permissions.add(Permission.objects.get(codename="view_workflowrun"))
    return client


@pytest.mark.parametrize("model", SCOPED_CHANGELISTS)
def test_scoped_operator_changelist(model, team, scoped_operator, changelist):
    # given
    add_rows = CHANGELISTS[model][0]
    queries, (few, many) = SCOPED_CHANGELISTS[model]
    add_rows(team, 0, 3)
    assert changelist(scoped_operator, model, queries) == few
    # when
    add_rows(team, 3, 5)
    # then
    assert changelist(scoped_operator, model, queries) == many
