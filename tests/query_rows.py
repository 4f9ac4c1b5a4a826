"""Rows for the query-count tests: each call adds `count` rows of one kind, varied in every relation shown.

The rows differ in owner, namespace, assignee, parent and share, so a relation read once per row
(an N+1) shows up as more queries when more rows are listed.
"""
from __future__ import annotations

from memories.contracts import ShareMemory, StoreMemory
from memories.services import create_memory, share_memory
from workflows import task_services, workflow_services
from workflows.contracts import CreateTask
from workflows.definitions import CreateWorkflow
from workflows.models import StepRun, WorkflowRun


def add_memories(team, count: int, word: str = "harbour") -> None:
    """Memories of several owners and levels the owner can read, some shared with it, some with parents."""
    owner, member, outsider = team["owner"].agent, team["member"].agent, team["outsider"].agent
    parent = create_memory(owner, StoreMemory.parse({"content": f"The {word} plan, parent note.", "access_level": "public"}))
    created = 1
    while created < count:
        writer, level = [(owner, "private"), (member, "shared"), (outsider, "public")][created % 3]
        memory = create_memory(writer, StoreMemory.parse({
            "content": f"The {word} note number {created}.", "access_level": level,
            "context_tags": ["ops", f"n{created}"], "parent_memory_id": str(parent.pk),
        }))
        if writer is member:
            share_memory(member, memory, ShareMemory.parse({"agent_ids": ["owner-agent"]}))
        created += 1


def add_tasks(team, count: int) -> None:
    """Tasks of two creators, assigned to several agents, each after the first one."""
    owner, member = team["owner"].agent, team["member"].agent
    first = task_services.create_task(owner, CreateTask.parse({"title": "First"}))
    for index in range(1, count):
        creator = owner if index % 2 else member
        task_services.create_task(creator, CreateTask.parse({
            "title": f"Task {index}", "assigned_agent_id": ["member-agent", "owner-agent", "squad-agent"][index % 3],
            "dependencies": [str(first.pk)], "tags": ["ops"],
        }))


STEPS = [{"name": "pause", "action": "wait", "params": {"seconds": 0}}]


def add_workflows(team, count: int) -> None:
    for index in range(count):
        creator = (team["owner"] if index % 2 else team["member"]).agent
        workflow_services.create_workflow(
            creator, CreateWorkflow.parse({"name": f"Workflow {index}", "steps": STEPS, "tags": ["ops"]}))


def add_runs(workflow, team, count: int) -> None:
    """Finished runs started by the owner and by a member (whose outputs the owner may not read)."""
    for index in range(count):
        runner = (team["owner"] if index % 2 else team["member"]).agent
        run = WorkflowRun.objects.create(workflow=workflow, triggered_by=runner, status="completed",
                                         output={"note": index})
        StepRun.objects.create(run=run, index=0, name="pause", action="wait", status="completed", output={"n": index})
