"""Streamable HTTP at /mcp: the SDK's real client against a live test server, as agents with Bearer keys."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from agents.models import Agent
from agents.services import retire_agent
from memories.contracts import ShareMemory, StoreMemory
from memories.models import Memory
from memories.services import create_memory, share_memory
from workflows.models import Task

from .conftest import call, http_session, run_http

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}


def post_raw(url: str, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(INITIALIZE).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_agent_stores_and_finds_a_memory_over_http(live_server, mcp_team):
    # when
    async def scenario():
        async with http_session(live_server.url, mcp_team["a"].key) as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            return (names, await call(session, "whoami"),
                    await call(session, "store_memory", {"content": "Staging deploys need the team lead's approval.",
                                                         "access_level": "shared", "context_tags": ["deploy"]}),
                    await call(session, "search_memories", {"query": "who approves staging deploys?", "mode": "keyword"}))

    tools, me, stored, found = asyncio.run(scenario())

    # then
    assert {"whoami", "store_memory", "search_memories", "create_task", "recall_memory"} <= tools
    assert me.data["agent_id"] == "mcp-agent-a"
    assert stored.data["namespace"] == "team-alpha"  # the home namespace by default
    assert stored.data["context_tags"] == ["deploy"]
    assert [hit["memory"]["id"] for hit in found.data["results"]] == [stored.data["id"]]
    assert Memory.objects.get(pk=stored.data["id"]).agent == mcp_team["a"].agent


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Authentication required"),
        ({"Authorization": "Bearer not-a-key"}, "Invalid API key."),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "Authentication required"),
    ],
)
def test_http_without_a_valid_key_answers_401(live_server, mcp_team, headers, message):
    # when
    status, body = post_raw(f"{live_server.url}/mcp", headers)
    # then
    assert status == 401
    assert message in body["error"]["message"]


def test_http_refuses_a_retired_agent_and_the_sdk_client_fails(live_server, mcp_team):
    # given
    from django.contrib.auth import get_user_model

    retire_agent(get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456!"), mcp_team["b"].agent)

    # when
    status, body = post_raw(f"{live_server.url}/mcp", {"Authorization": f"Bearer {mcp_team['b'].key}"})

    # then
    assert status == 401
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own transport error
        run_http(live_server.url, mcp_team["b"].key, [("whoami", {})])


OTHER_AGENT_CALLS = [
    ("get_memory", {}),
    ("update_memory", {"content": "overwritten"}),
    ("update_memory", {"importance": 0.9}),
    ("delete_memory", {}),
    ("share_memory", {"agent_ids": ["mcp-agent-b"]}),
    ("memory_feedback", {"useful": False}),
]


@pytest.mark.parametrize(("tool", "arguments"), OTHER_AGENT_CALLS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(OTHER_AGENT_CALLS)])
def test_other_agent_cannot_reach_a_private_memory_by_id(live_server, mcp_team, private_memory_of_a, tool, arguments):
    # given
    before = Memory.objects.values().get(pk=private_memory_of_a.pk)
    # when
    [outcome] = run_http(live_server.url, mcp_team["b"].key, [(tool, {"memory_id": str(private_memory_of_a.pk), **arguments})])
    # then
    assert outcome.error
    assert "[not_found] Memory not found." in outcome.text
    assert Memory.objects.values().get(pk=private_memory_of_a.pk) == before


SEARCH_CALLS = [
    ("search_memories", {"query": "which region does the rollout start in"}),
    ("search_memories", {"query": "rollout EU region", "mode": "keyword", "agent_id": "mcp-agent-a"}),
    ("contextual_search", {"query": "rollout", "conversation_context": [{"role": "user", "content": "EU region"}]}),
    ("recall_memory", {"query": "rollout plan EU", "persona_id": "mcp-agent-a"}),
]


@pytest.mark.parametrize(("tool", "arguments"), SEARCH_CALLS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(SEARCH_CALLS)])
def test_other_agent_never_finds_a_private_memory(live_server, mcp_team, private_memory_of_a, tool, arguments):
    # when
    [outcome] = run_http(live_server.url, mcp_team["b"].key, [(tool, arguments)])
    # then
    assert not outcome.error, outcome
    assert str(private_memory_of_a.pk) not in outcome.text
    assert "secret rollout" not in outcome.text


def test_other_agent_sees_no_private_memory_in_statistics(live_server, mcp_team, private_memory_of_a):
    # when
    [stats] = run_http(live_server.url, mcp_team["b"].key, [("get_memory_stats", {})])
    # then
    assert stats.data["total_memories"] == 0
    assert stats.data["by_persona"] == {}


def test_reader_of_a_shared_memory_may_not_change_it(live_server, mcp_team):
    # given
    memory = create_memory(mcp_team["a"].agent, StoreMemory.parse(
        {"content": "Release notes live in the wiki.", "access_level": "shared",
                                                 "namespace": "team-alpha"}))
    share_memory(mcp_team["a"].agent, memory, ShareMemory.parse({"agent_ids": ["mcp-agent-b"]}))
    # when
    got, changed, deleted = run_http(live_server.url, mcp_team["b"].key, [
        ("get_memory", {"memory_id": str(memory.pk)}),
        ("update_memory", {"memory_id": str(memory.pk), "content": "Release notes are gone."}),
        ("delete_memory", {"memory_id": str(memory.pk)}),
    ])
    # then
    assert got.data["content"] == "Release notes live in the wiki."
    assert changed.error and "[permission_denied] You may read this memory but not change it." in changed.text
    assert deleted.error and "[permission_denied]" in deleted.text
    assert Memory.objects.get(pk=memory.pk).content == "Release notes live in the wiki."


BAD_INPUT = [
    ("store_memory", {"content": ""}, "[invalid] content may not be empty. (field: content)"),
    ("store_memory", {"content": "x", "access_level": "secret"}, "access_level"),
    ("store_memory", {"content": "x", "namespace": "nowhere"}, "Namespace 'nowhere' does not exist."),
    ("store_memory", {"content": "x", "namespace": "team-beta"}, "[permission_denied] Agent 'mcp-agent-a' is not a member"),
    ("store_memory", {"content": "x", "access_level": "system"}, "[permission_denied] Only operators and admin agents"),
    ("store_memory", {"content": "x", "learning_weight": 11}, "learning_weight"),
    ("store_memory", {}, "content"),
    ("search_memories", {"query": "   "}, "[invalid] query may not be empty. (field: query)"),
    ("search_memories", {"query": "x", "limit": 0}, "limit"),
    ("search_memories", {"query": "x", "mode": "psychic"}, "mode"),
    ("get_memory", {"memory_id": "not-a-uuid"}, "[not_found] Memory not found."),
    ("update_memory", {"memory_id": "00000000-0000-0000-0000-000000000000"}, "Nothing to change"),
    ("update_memory", {"memory_id": "00000000-0000-0000-0000-000000000000", "tags": ["a"], "context_tags": ["b"]},
     "not both"),
    ("share_memory", {"memory_id": "00000000-0000-0000-0000-000000000000", "agent_ids": []}, "agent_ids"),
    ("register_agent", {"agent_id": "new-bot", "namespace": "team-alpha"}, "[permission_denied]"),
    ("join_namespace", {"namespace": "team-beta"}, "[not_found]"),
    ("create_memory", {"content": "x", "persona_id": "mcp-agent-b"}, "[permission_denied] Agents store memories only as"),
    ("get_persona", {"persona_id": "nobody"}, "[not_found] Persona 'nobody' not found."),
    ("create_task", {"title": " "}, "[invalid] title may not be empty. (field: title)"),
    ("create_task", {"title": "x", "priority": "urgent"}, "priority"),
    ("assign_task", {"task_id": "00000000-0000-0000-0000-000000000000", "agent_id": "mcp-agent-b"},
     "[not_found] Task not found."),
    ("update_task_status", {"task_id": "00000000-0000-0000-0000-000000000000", "status": "done"}, "status"),
    ("no_such_tool", {}, "no_such_tool"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), BAD_INPUT,
                         ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD_INPUT)])
def test_bad_input_is_a_tool_error_and_writes_nothing(live_server, mcp_team, tool, arguments, message):
    # when
    [outcome] = run_http(live_server.url, mcp_team["a"].key, [(tool, arguments)])
    # then
    assert outcome.error
    assert message in outcome.text
    assert Memory.objects.count() == 0
    assert Task.objects.count() == 0


def test_persona_era_tools_map_onto_agents_and_memories(live_server, mcp_team):
    # when
    created, recalled, persona, capable, personas = run_http(live_server.url, mcp_team["a"].key, [
        ("create_memory", {"content": "Prefer blue-green deploys for the API.", "importance": 1.0,
                           "tags": ["deploy"], "context_type": "decision"}),
        ("recall_memory", {"query": "blue-green deploys", "tags": ["deploy"]}),
        ("get_persona", {"persona_id": "mcp-agent-a"}),
        ("find_personas_by_capability", {"capability": "python"}),
        ("list_personas", {}),
    ])
    # then
    assert created.data["persona_id"] == "mcp-agent-a"
    assert created.data["importance"] == 1.0
    assert created.data["tags"] == ["deploy"]
    assert created.data["context_type"] == "decision"
    assert created.data["access_level"] == "shared"
    stored = Memory.objects.get(pk=created.data["id"])
    assert (stored.learning_weight, stored.memory_category, stored.namespace.namespace) == (2.0, "decision", "team-alpha")
    assert [m["id"] for m in recalled.data["memories"]] == [created.data["id"]]
    assert persona.data["name"] == "mcp-agent-a"
    assert [p["name"] for p in capable.data["personas"]] == ["mcp-agent-a"]
    assert [p["name"] for p in personas.data["personas"]] == ["mcp-admin", "mcp-agent-a", "mcp-agent-b"]


def test_task_lifecycle_with_v2_and_persona_era_parameters(live_server, mcp_team):
    # given
    from namespaces.contracts import AddMember
    from namespaces.models import Namespace
    from namespaces.services import add_member

    add_member(mcp_team["admin"].agent, Namespace.objects.get(namespace="team-alpha"),
               AddMember.parse({"agent_id": mcp_team["b"].agent_id}))
    # when
    [created] = run_http(live_server.url, mcp_team["a"].key, [
        ("create_task", {"title": "Review the EU rollout plan", "priority": "high", "assigned_persona_id": "mcp-agent-b",
                         "tags": ["rollout"]}),
    ])
    task_id = created.data["id"]
    listed, started, completed, reassigned = run_http(live_server.url, mcp_team["b"].key, [
        ("list_tasks", {"assigned_to_me": True}),
        ("update_task_status", {"task_id": task_id, "status": "in_progress", "progress": 0.5}),
        ("complete_task", {"task_id": task_id, "result": {"verdict": "approved"}}),
        ("assign_task", {"task_id": task_id, "persona_id": "mcp-agent-a"}),
    ])
    [outsider_view] = run_http(live_server.url, mcp_team["admin"].key, [("list_tasks", {"status": "completed"})])
    # then
    assert created.data["assigned_agent_id"] == "mcp-agent-b"
    assert created.data["namespace"] == "team-alpha"
    assert [t["id"] for t in listed.data["results"]] == [task_id]
    assert (started.data["status"], started.data["progress"]) == ("in_progress", 0.5)
    assert completed.data["status"] == "completed"
    assert completed.data["result"] == {"verdict": "approved"}
    assert reassigned.data["assigned_persona_id"] == "mcp-agent-a"
    task = Task.objects.get(pk=task_id)
    assert (task.status, task.created_by.agent_id, task.assigned_agent.agent_id) == ("completed", "mcp-agent-a", "mcp-agent-a")
    assert [t["id"] for t in outsider_view.data["results"]] == [task_id]  # admin agents read every task


def test_outsider_cannot_see_or_change_a_task(live_server, mcp_team):
    # given
    [created] = run_http(live_server.url, mcp_team["a"].key, [("create_task", {"title": "Internal audit"})])
    # when
    listed, got, status = run_http(live_server.url, mcp_team["b"].key, [
        ("list_tasks", {}),
        ("get_task", {"task_id": created.data["id"]}),
        ("update_task_status", {"task_id": created.data["id"], "status": "cancelled"}),
    ])
    # then
    assert listed.data["results"] == []
    assert got.error and "[not_found] Task not found." in got.text
    assert status.error and "[not_found]" in status.text
    assert Task.objects.get(pk=created.data["id"]).status == "pending"


def test_agent_joins_an_open_namespace_and_updates_its_capabilities(live_server, mcp_team):
    # when
    before, joined, after, updated = run_http(live_server.url, mcp_team["b"].key, [
        ("list_namespaces", {"member_only": True}),
        ("join_namespace", {"namespace": "community"}),
        ("list_namespaces", {"member_only": True}),
        ("update_capabilities", {"capabilities": {"search": True}, "merge": True}),
    ])
    # then
    assert [ns["namespace"] for ns in before.data["results"]] == ["team-beta"]
    assert joined.data["my_role"] == "member"
    assert [ns["namespace"] for ns in after.data["results"]] == ["community", "team-beta"]
    assert updated.data["capabilities"] == {"search": True}
    mcp_team["b"].agent.refresh_from_db()
    assert mcp_team["b"].agent.capabilities == {"search": True}


def test_agent_opts_in_to_auto_categorisation_through_its_own_configuration_only(live_server, mcp_team):
    # given
    Agent.objects.filter(pk=mcp_team["b"].agent.pk).update(configuration={"editor": "vim"})
    # when
    merged, replaced, refused = run_http(live_server.url, mcp_team["b"].key, [
        ("update_configuration", {"configuration": {"auto_categorise": True}}),
        ("update_configuration", {"configuration": {"auto_categorise": True}, "merge": False}),
        ("update_configuration", {"configuration": ["auto_categorise"]}),
    ])
    # then: only the caller changed; a list is refused and changes nothing
    assert merged.data["configuration"] == {"editor": "vim", "auto_categorise": True}
    assert replaced.data["configuration"] == {"auto_categorise": True}
    assert refused.error and "configuration" in refused.text, refused.text
    mcp_team["b"].agent.refresh_from_db()
    mcp_team["a"].agent.refresh_from_db()
    assert mcp_team["b"].agent.configuration == {"auto_categorise": True}
    assert mcp_team["a"].agent.configuration == {}


def test_admin_agent_registers_an_agent_whose_key_works(live_server, mcp_team):
    # when
    [registered] = run_http(live_server.url, mcp_team["admin"].key, [
        ("register_agent", {"agent_id": "new-bot", "namespace": "team-alpha", "capabilities": {"summaries": True}}),
    ])
    [me] = run_http(live_server.url, registered.data["api_key"], [("whoami", {})])
    # then
    assert registered.data["agent_id"] == "new-bot"
    assert me.data["agent_id"] == "new-bot"
    assert me.data["capabilities"] == {"summaries": True}


def test_http_is_post_only(live_server, mcp_team):
    # given
    request = urllib.request.Request(f"{live_server.url}/mcp", method="GET", headers={
        "Authorization": f"Bearer {mcp_team['a'].key}", "Accept": "text/event-stream"})
    # when
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    # then
    assert refused.value.code == 405
    assert refused.value.headers["Allow"] == "POST"


def test_http_refuses_an_operator_key(live_server, mcp_team):
    # given
    from django.contrib.auth import get_user_model

    from agents.contracts import IssueOperatorKey
    from agents.services import issue_operator_key

    operator = get_user_model().objects.create_user("ops", "ops@example.com", "pw-123456!", is_staff=True)
    key = issue_operator_key(operator, IssueOperatorKey())
    # when
    status, body = post_raw(f"{live_server.url}/mcp", {"Authorization": f"Bearer {key}"})
    # then
    assert status == 401
    assert "belongs to an operator" in body["error"]["message"]


def test_memory_insights_cover_the_callers_own_memories_only(live_server, mcp_team, private_memory_of_a):
    # when
    [theirs] = run_http(live_server.url, mcp_team["b"].key, [("memory_insights", {})])
    [own] = run_http(live_server.url, mcp_team["a"].key, [("memory_insights", {})])
    # then
    assert not theirs.error and not own.error
    assert theirs.data["usage"]["memories"] == 0
    assert str(private_memory_of_a.pk) not in theirs.text
    assert own.data["usage"]["memories"] == 1
    assert own.data["usage"]["by_access_level"] == {"private": 1}


def test_categorise_memories_refuses_a_non_boolean_apply(live_server, mcp_team):
    # when
    [outcome] = run_http(live_server.url, mcp_team["a"].key, [("categorise_memories", {"apply": "everything"})])
    # then
    assert outcome.error


def test_memory_patterns_and_bulk_updates_follow_the_access_rules(live_server, mcp_team, private_memory_of_a):
    # given: agent A's pattern, learned from one search that returned its private memory
    from datetime import UTC, datetime, timedelta

    from memories.hits import record_events
    from memories.patterns import learn_patterns
    from memories.usage import search_event

    a = mcp_team["a"].agent
    at = datetime.now(UTC) - timedelta(days=1)
    record_events([search_event(a, mode="hybrid", duration_ms=4, memory_ids=[private_memory_of_a.pk], at=at)])
    learn_patterns(a, datetime.now(UTC) + timedelta(days=1))
    # when
    own, = run_http(live_server.url, mcp_team["a"].key, [("memory_patterns", {})])
    other, change = run_http(live_server.url, mcp_team["b"].key, [
        ("memory_patterns", {"agent_id": "mcp-agent-a"}),
        ("bulk_update_memories", {"memory_ids": [str(private_memory_of_a.pk)], "learning_weight": 0.1}),
    ])
    admin, = run_http(live_server.url, mcp_team["admin"].key, [("memory_patterns", {"agent_id": "mcp-agent-a"})])
    # then: A sees its search's best result; B is refused; the admin agent sees no private memory of A
    assert not own.error and own.data["agent_id"] == "mcp-agent-a" and own.data["events"] == 1
    assert own.data["search_categories"] == {"general": 1}
    assert other.error and "No right to analyse" in other.text
    assert change.error and "not found" in change.text.lower()
    assert not admin.error and admin.data["search_categories"] == {} and admin.data["topics"] == []
    assert Memory.objects.get(pk=private_memory_of_a.pk).learning_weight == 1.0
