"""Helpers for the workflows tests: tasks and workflows created through the services, as a given agent."""
from __future__ import annotations

import pytest

from workflows import runs, task_services, workflow_services
from workflows.contracts import CreateTask, StartRun
from workflows.definitions import CreateWorkflow


@pytest.fixture
def make_task(db):
    def make(handle, title: str = "Write the release notes", **data):
        return task_services.create_task(handle.agent, CreateTask.parse({"title": title, **data}))

    return make


@pytest.fixture
def make_workflow(db):
    def make(handle, steps: list, name: str = "Nightly digest", **data):
        return workflow_services.create_workflow(handle.agent, CreateWorkflow.parse({"name": name, "steps": steps, **data}))

    return make


@pytest.fixture
def run_now(django_capture_on_commit_callbacks):
    """Start a run and execute it (the queued Celery task runs eagerly when the block exits)."""

    def run(actor, workflow, run_input=None):
        with django_capture_on_commit_callbacks(execute=True):
            started = runs.start_workflow_run(actor, workflow, StartRun.parse({"input": run_input}))
        started.refresh_from_db()
        return started

    return run
