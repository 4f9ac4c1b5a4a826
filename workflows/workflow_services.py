"""State changes on workflow definitions. Every write checks access first.

Runs are started and cancelled in workflows.runs; tasks change in workflows.task_services.
A workflow's steps are checked against each other (names, references, dependencies, cycles) up front.
"""
from __future__ import annotations

from django.db import transaction

import access
from core.errors import Conflict, Forbidden, InvalidInput
from core.models import find_visible
from memories.services import clean_owned_metadata

from .definitions import CreateWorkflow, UpdateWorkflow
from .models import Workflow
from .steps import check_steps, parse_steps
from .task_services import namespace_for_create


def get_visible_workflow(actor, workflow_id) -> Workflow:
    """A workflow the actor may read, or NotFound."""
    return find_visible(Workflow.objects.visible_to(actor).select_related("created_by", "namespace"), workflow_id,
                        "Workflow")


@transaction.atomic
def create_workflow(actor, data: CreateWorkflow) -> Workflow:
    """Create a workflow; its steps' names, references and dependencies are checked against each other up front."""
    principal = access.Principal.of(actor)
    workflow = Workflow(
        name=data.name,
        description=data.description,
        workflow_type=data.workflow_type,
        status=data.status,
        steps=check_steps(data.steps, data.workflow_type),
        config=dict(data.config),
        tags=list(data.tags),
        metadata=clean_owned_metadata(actor, dict(data.metadata), kind="workflow"),
        created_by=principal.agent,
    )
    workflow.namespace = namespace_for_create(principal, data.namespace)
    workflow.save()
    return workflow


@transaction.atomic
def update_workflow(actor, workflow: Workflow, data: UpdateWorkflow) -> Workflow:
    """Change the fields `data` gives; runs already started keep the steps they started with."""
    if not access.can_change_workflow(actor, workflow):
        raise Forbidden("You may read this workflow but not change it.")
    changes = data.given()
    for name in ("name", "description", "status", "workflow_type"):
        if name in changes:
            setattr(workflow, name, changes[name])
    if "steps" in changes or "workflow_type" in changes:
        steps = data.steps if "steps" in changes else parse_steps(workflow.steps)
        workflow.steps = check_steps(steps, workflow.workflow_type)
    if "config" in changes:
        workflow.config = dict(data.config)
    if "tags" in changes:
        workflow.tags = list(data.tags)
    if "metadata" in changes:
        workflow.metadata = clean_owned_metadata(actor, dict(data.metadata), workflow.metadata, "workflow")
    if "namespace" in changes:
        if data.namespace is None:
            raise InvalidInput("A workflow's namespace cannot be removed.", field="namespace")
        workflow.namespace = namespace_for_create(actor, data.namespace)
    workflow.save()
    return workflow


@transaction.atomic
def delete_workflow(actor, workflow: Workflow) -> None:
    """Delete a workflow and its finished runs; refused while a run is pending or running."""
    if not access.can_change_workflow(actor, workflow):
        raise Forbidden("You may read this workflow but not delete it.")
    if workflow.runs.unfinished().exists():
        raise Conflict("The workflow has unfinished runs; cancel them first.", code="has_active_runs")
    workflow.delete()
