"""Step validation and ordering: what a workflow definition may say, and the order a worker runs it in."""
from __future__ import annotations

import pytest

from core.errors import InvalidInput
from workflows import workflow_services
from workflows.definitions import CreateWorkflow, UpdateWorkflow
from workflows.models import Workflow
from workflows.steps import clean_steps, condition_holds, execution_order, resolve


def step(name, action="wait", **extra):
    params = extra.pop("params", {"seconds": 0} if action == "wait" else {})
    return {"name": name, "action": action, "params": params, **extra}


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        ("not a list", "steps", "list"),
        ([["a"]], "steps[0]", "object"),
        ([step("a", action="fail")], "steps[0].action", "Unknown action 'fail'"),
        ([step("a"), step("a")], "steps[1].name", "Two steps are named 'a'"),
        ([step("has space")], "steps[0].name", "step name"),
        ([step("a", depends_on=["ghost"])], "steps[0].depends_on", "unknown step 'ghost'"),
        ([step("a", depends_on=["a"])], "steps[0].depends_on", "itself"),
        ([step("a", depends_on="b"), step("b")], "steps[0].depends_on", "list"),
        ([step("a", colour="red")], "steps[0].colour", "Unknown step key"),
        ([step("a", params=[])], "steps[0].params", "object"),
        ([step("a", params={"seconds": 86_401})], "steps[0].params.seconds", "0 to 86400"),
        ([step("a", params={"seconds": "soon"})], "steps[0].params.seconds", "0 to 86400"),
        ([step("t", action="create_task", params={})], "steps[0].params.title", "needs the param 'title'"),
        ([step("s", action="update_task_status", params={"task_id": "x", "status": "done"})],
         "steps[0].params.status", "status must be one of"),
        ([step("m", action="store_memory", params={"content": "{{ secrets.key }}"})], "steps[0].params", "must start"),
        ([step("m", action="store_memory", params={"content": "{{ steps.ghost.id }}"})], "steps[0].params",
         "unknown step"),
        ([step("a", when={"step": "ghost", "status": "completed"})], "steps[0].when", "unknown step"),
        ([step("a"), step("b", when={"step": "a"})], "steps[1].when", "needs one of"),
        ([step("a"), step("b", when={"step": "a", "result_count_gte": -1})], "steps[1].when.result_count_gte",
         "non-negative"),
        ([step("a"), step("b", when={"step": "a", "status": "running"})], "steps[1].when.status",
         "completed, skipped, failed"),
        ([step("a", when={"input": "flag"})], "steps[0].when", "'equals' or 'exists'"),
        ([step("a", when={"input": "x", "step": "a", "equals": 1})], "steps[0].when", "exactly one"),
        ([step("a", when={"input": "x", "equals": 1}, condition={"input": "x", "equals": 1})], "steps[0].when",
         "either"),
    ],
)
def test_clean_steps_rejects_bad_steps_naming_the_step(steps, field, words):
    # when
    with pytest.raises(InvalidInput) as rejected:
        clean_steps(steps, "hybrid")
    # then
    assert rejected.value.field == field
    assert words in rejected.value.message


def test_cycles_are_refused_in_dag_workflows():
    # given
    steps = [step("a", depends_on=["c"]), step("b", depends_on=["a"]), step("c", depends_on=["b"])]
    # when
    with pytest.raises(InvalidInput) as rejected:
        clean_steps(steps, "parallel")
    # then
    assert "cycle" in rejected.value.message
    assert rejected.value.field == "steps[0].depends_on"


def test_sequential_workflows_may_only_look_back():
    # given
    steps = [step("a", depends_on=["b"]), step("b")]
    # when
    with pytest.raises(InvalidInput) as rejected:
        clean_steps(steps, "sequential")
    # then
    assert "runs later" in rejected.value.message
    assert clean_steps(steps, "hybrid")[0]["depends_on"] == ["b"]


def test_dag_order_is_topological_with_list_order_among_ready_steps():
    # given: d needs b and c; b needs a (through a reference); c has no needs
    steps = clean_steps(
        [
            step("d", depends_on=["b", "c"]),
            step("b", action="store_memory", params={"content": "{{ steps.a.title }}"}),
            step("a", action="create_task", params={"title": "x"}),
            step("c"),
        ],
        "parallel",
    )
    # when
    order = [steps[index]["name"] for index in execution_order(steps, "parallel")]
    # then
    assert order == ["a", "b", "c", "d"]


def test_condition_alias_is_normalised_to_when():
    # when
    cleaned = clean_steps([step("a"), step("b", condition={"step": "a", "status": "completed"})])
    # then
    assert cleaned[1] == {
        "name": "b", "action": "wait", "params": {"seconds": 0}, "depends_on": [],
        "when": {"step": "a", "status": "completed"},
    }


def test_references_resolve_keeping_types_and_interpolating_inside_text():
    # given
    context = {"input": {"topic": "billing", "limit": 3}, "steps": {"find": {"count": 2, "results": [{"id": "m1"}]}}}
    # when
    resolved = resolve(
        {"query": "{{ input.topic }}", "limit": "{{input.limit}}", "title": "Found {{ steps.find.count }} on {{ input.topic }}",
         "ids": ["{{ steps.find.results.0.id }}"]},
        context,
    )
    # then
    assert resolved == {"query": "billing", "limit": 3, "title": "Found 2 on billing", "ids": ["m1"]}
    with pytest.raises(InvalidInput):
        resolve("{{ steps.find.results.5.id }}", context)


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"step": "find", "result_count_gte": 1}, True),
        ({"step": "find", "result_count_gte": 3}, False),
        ({"step": "find", "result_count_eq": 2, "status": "completed"}, True),
        ({"step": "find", "result_count_lte": 1}, False),
        ({"step": "later", "status": "skipped"}, True),
        ({"step": "later", "result_count_gte": 0}, False),
        ({"input": "notify", "equals": True}, True),
        ({"input": "notify", "equals": False}, False),
        ({"input": "missing", "exists": False}, True),
        ({"input": "missing", "equals": None}, False),
    ],
)
def test_condition_holds(condition, holds):
    # given
    statuses = {"find": "completed", "later": "skipped"}
    outputs = {"find": {"count": 2, "results": []}}
    # then
    assert condition_holds(condition, {"notify": True}, statuses, outputs) is holds


@pytest.mark.django_db
def test_create_workflow_stores_normalised_steps_and_update_revalidates(team):
    # given
    owner = team["owner"]
    workflow = workflow_services.create_workflow(owner.agent, CreateWorkflow.parse(
        {"name": "Digest", "workflow_type": "hybrid", "steps": [step("a"), step("b", depends_on=["a"])]}
    ))
    # when
    with pytest.raises(InvalidInput) as rejected:
        workflow_services.update_workflow(owner.agent, workflow, UpdateWorkflow.parse(
            {"steps": [step("a", depends_on=["b"]), step("b", depends_on=["a"])]}))
    # then
    assert "cycle" in rejected.value.message
    workflow.refresh_from_db()
    assert [s["name"] for s in workflow.steps] == ["a", "b"]
    with pytest.raises(InvalidInput):
        workflow_services.update_workflow(owner.agent, workflow, UpdateWorkflow.parse(
            {"workflow_type": "sequential", "steps": [step("a", depends_on=["b"]), step("b")]}
        ))
    assert Workflow.objects.get(pk=workflow.pk).workflow_type == "hybrid"
