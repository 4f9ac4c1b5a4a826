"""Fixtures for the operator UI: a superuser's browser session, a scoped operator, and one row of every model."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from guardian.shortcuts import assign_perm

from agents.models import ApiKey
from memories.contracts import StoreMemory
from memories.services import create_memory
from namespaces.models import Namespace
from workflows.models import StepRun, Task, Workflow, WorkflowRun


@pytest.fixture
def superuser_client(operator_user):
    client = Client()
    client.force_login(operator_user)
    return client


@pytest.fixture
def scoped_tree(make_namespace, make_agent):
    """Namespace `alpha` with child `alpha-sub`, and `beta`; one agent and one shared memory in each."""
    make_namespace("alpha")
    make_namespace("alpha-sub", parent="alpha")
    make_namespace("beta")
    agents = {slug: make_agent(f"{slug}-agent", slug) for slug in ("alpha", "alpha-sub", "beta")}
    memories = {
        slug: create_memory(handle.agent, StoreMemory.parse(
            {"content": f"Fact kept in {slug} namespace.", "access_level": "shared"}))
        for slug, handle in agents.items()
    }
    return {"agents": agents, "memories": memories, "namespaces": {ns.namespace: ns for ns in Namespace.objects.all()}}


MODEL_VIEW_PERMISSIONS = ["view_namespace", "view_memory", "view_agent", "view_apikey", "view_task", "view_workflow"]


@pytest.fixture
def make_operator(db):
    """A staff user (not a superuser) with the model view permissions and guardian rights on namespaces."""

    def make(username: str, rights: dict[str, list[str]]) -> Client:
        user = get_user_model().objects.create_user(username, password="unused-pass-123!", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=MODEL_VIEW_PERMISSIONS))
        for slug, codenames in rights.items():
            for codename in codenames:
                assign_perm(codename, user, Namespace.objects.get(namespace=slug))
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def one_of_each(team):
    """At least one row of every model the admin shows."""
    owner = team["owner"].agent
    memory = create_memory(owner, StoreMemory.parse(
        {"content": "The release train leaves on Thursdays.", "access_level": "shared"}))
    task = Task.objects.create(title="Write the release notes", namespace=owner.namespace, assigned_agent=owner)
    workflow = Workflow.objects.create(
        name="Release", namespace=owner.namespace, steps=[{"name": "notes", "action": "noop"}], created_by=owner
    )
    run = WorkflowRun.objects.create(workflow=workflow, triggered_by=owner, status="completed")
    step = StepRun.objects.create(run=run, index=0, name="notes", action="noop", status="completed")
    return {
        "agent": owner, "namespace": owner.namespace, "memory": memory, "task": task, "workflow": workflow,
        "workflowrun": run, "steprun": step, "apikey": ApiKey.objects.filter(user=owner.user).first(),
    }
