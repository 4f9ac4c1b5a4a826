"""The MCP list tools filter with the REST API's FilterSets: the same parameters list the same rows."""
from __future__ import annotations

import pytest

from agents import tools as agent_tools
from core.errors import InvalidInput
from core.tools import filtered
from tests.query_rows import add_tasks
from tmws_site.mcp_server import _call_as_agent
from workflows import tools as task_tools
from workflows.filters import TaskFilter
from workflows.models import Task


@pytest.mark.django_db
@pytest.mark.parametrize("parameters", [
    {"assigned_agent_id": "member-agent"},
    {"tag": "ops", "status": "pending"},
    {"namespace": "team", "priority": "medium"},
    {"assigned_agent_id": "nobody-agent"},
])
def test_list_tasks_lists_what_get_tasks_lists(team, parameters):
    # given
    add_tasks(team, 7)
    owner = team["owner"]
    # when
    api = owner.client.get("/api/v2/tasks", parameters)
    tool = _call_as_agent(task_tools.list_tasks, owner.agent.pk, parameters)
    # then
    assert api.status_code == 200
    assert sorted(task["id"] for task in tool["results"]) == sorted(task["id"] for task in api.json()["results"])
    assert (tool["count"] == 0) == (parameters.get("assigned_agent_id") == "nobody-agent")  # not empty by accident


@pytest.mark.django_db
def test_list_agents_lists_what_get_agents_lists(team):
    # given
    owner = team["owner"]
    # when
    api = owner.client.get("/api/v2/agents", {"namespace": "team", "is_active": "true"})
    tool = _call_as_agent(agent_tools.list_agents, owner.agent.pk, {"namespace": "team"})
    # then
    assert [agent["agent_id"] for agent in tool["results"]] == [agent["agent_id"] for agent in api.json()["results"]]
    assert tool["count"] >= 2


@pytest.mark.django_db
def test_a_value_the_filter_refuses_is_a_400_naming_the_field(team):
    # given
    add_tasks(team, 2)
    # when
    with pytest.raises(InvalidInput) as refused:
        filtered(TaskFilter, Task.objects.all(), status="bogus")
    # then
    assert refused.value.field == "status"
    assert refused.value.message.startswith("status: Select a valid choice. bogus is not one of the available choices.")


@pytest.mark.django_db
def test_an_outsider_naming_a_namespace_it_cannot_read_gets_nothing_through_either_surface(team):
    # given: tasks in `team`, and an outsider that asks for them by name
    add_tasks(team, 4)
    outsider = team["outsider"]
    before = list(Task.objects.order_by("pk").values_list("pk", "status", "updated_at"))
    # when
    api = outsider.client.get("/api/v2/tasks", {"namespace": "team"})
    tool = _call_as_agent(task_tools.list_tasks, outsider.agent.pk, {"namespace": "team", "tag": "ops"})
    agents = _call_as_agent(agent_tools.list_agents, outsider.agent.pk, {"namespace": "team"})
    # then: a filter narrows what the caller may read, it never widens it; nothing changed
    assert (api.status_code, api.json()["results"], tool["results"]) == (200, [], [])
    assert [agent["agent_id"] for agent in agents["results"]] == [
        agent["agent_id"] for agent in outsider.client.get("/api/v2/agents", {"namespace": "team"}).json()["results"]]
    assert Task.objects.count() == 4
    assert list(Task.objects.order_by("pk").values_list("pk", "status", "updated_at")) == before
