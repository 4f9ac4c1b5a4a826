"""The workflow tools through the SDK's real client over stdio: create, list, run, read a run, cancel it."""
from __future__ import annotations

import asyncio

import pytest

from workflows.models import Task

from .conftest import call, stdio_session

pytestmark = pytest.mark.slow


def test_an_agent_creates_runs_reads_and_cancels_a_workflow(mcp_team, make_agent):
    # given: a teammate of agent A who reviews
    make_agent("mcp-reviewer", "team-alpha", capabilities={"review": True})
    steps = [
        {"name": "note", "action": "create_task", "params": {"title": "Triage {{ input.ticket }}"}},
        {"name": "review", "action": "agent_task", "depends_on": ["note"],
         "params": {"title": "Review {{ input.ticket }}", "capability": {"review": True}}},
    ]

    async def scenario():
        async with stdio_session(mcp_team["a"].key) as session:
            created = await call(session, "create_workflow", {"name": "Triage", "workflow_type": "parallel",
                                                              "status": "active", "steps": steps})
            listed = await call(session, "list_workflows", {"status": "active"})
            started = await call(session, "run_workflow", {"workflow_id": created.data["id"],
                                                           "input": {"ticket": "T-1"}})
            running = await call(session, "get_workflow_run", {"run_id": started.data["id"]})
            cancelled = await call(session, "cancel_workflow_run", {"run_id": started.data["id"]})
            again = await call(session, "cancel_workflow_run", {"run_id": started.data["id"]})
            bad = await call(session, "create_workflow", {"name": "Bad", "steps": [
                {"name": "ask", "action": "agent_task", "params": {"title": "Nobody"}}]})
        async with stdio_session(mcp_team["b"].key) as session:
            hidden = await call(session, "get_workflow_run", {"run_id": started.data["id"]})
        return created, listed, started, running, cancelled, again, bad, hidden

    # when
    created, listed, started, running, cancelled, again, bad, hidden = asyncio.run(scenario())

    # then
    assert [workflow["id"] for workflow in listed.data["results"]] == [created.data["id"]]
    assert started.data["status"] == "pending"
    assert running.data["status"] == "running"
    assert [(s["name"], s["status"]) for s in running.data["step_runs"]] == [("note", "completed"),
                                                                             ("review", "waiting")]
    assert cancelled.data["status"] == "cancelled"
    assert again.error and "[run_finished]" in again.text
    assert bad.error and "exactly one of 'agent_id' and a non-empty 'capability'" in bad.text
    assert hidden.error and "[not_found] Workflow run not found." in hidden.text
    review = Task.objects.get(title="Review T-1")
    assert (review.assigned_agent.agent_id, review.status) == ("mcp-reviewer", "cancelled")
