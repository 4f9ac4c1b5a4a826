"""Bulk ingest: the bulk endpoint and the import_memories command."""
from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from memories.models import Memory


def write_lines(path, items) -> str:
    path.write_text("\n".join(json.dumps(item) for item in items) + "\n\n", encoding="utf-8")
    return str(path)


@pytest.mark.django_db
def test_import_memories_stores_and_embeds_every_line(team, tmp_path):
    # given
    lines = [
        {"content": f"Imported note number {i}.", "agent_id": "owner-agent", "namespace": "team",
         "access_level": "shared", "context_tags": ["imported"]}
        for i in range(5)
    ]
    path = write_lines(tmp_path / "memories.jsonl", lines)
    # when
    call_command("import_memories", path, "--batch-size", "2")
    # then
    imported = Memory.objects.filter(context_tags__contains=["imported"])
    assert imported.count() == 5
    assert set(imported.values_list("embedding_status", flat=True)) == {"ready"}
    assert set(imported.values_list("agent__agent_id", flat=True)) == {"owner-agent"}


@pytest.mark.django_db
def test_import_memories_as_an_agent_applies_its_access_rules(team, tmp_path):
    # given: the outsider is not a member of team
    path = write_lines(tmp_path / "m.jsonl", [
        {"content": "fine", "namespace": "other"},
        {"content": "not allowed", "namespace": "team"},
    ])
    # when
    with pytest.raises(CommandError) as error:
        call_command("import_memories", path, "--agent", "outsider-agent")
    # then: the whole batch is refused and the line is named
    assert str(error.value).startswith("line 2: ")
    assert Memory.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"content": "ok", "agent_id": "owner-agent", "namespace": "team"}', "{not json"], "line 2: not valid JSON"),
        (['["a list"]'], "line 1: each line must be a JSON object."),
        (['{"content": "", "agent_id": "owner-agent", "namespace": "team"}'], "line 1: content may not be empty."),
    ],
)
def test_import_memories_names_the_bad_line_and_stores_nothing_of_its_batch(team, tmp_path, lines, message):
    # given
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    # when
    with pytest.raises(CommandError) as error:
        call_command("import_memories", str(path))
    # then
    assert str(error.value).startswith(message)
    assert Memory.objects.count() == 0


@pytest.mark.django_db
def test_import_memories_dry_run_stores_nothing(team, tmp_path):
    # given
    path = write_lines(tmp_path / "m.jsonl", [{"content": "x", "agent_id": "owner-agent", "namespace": "team"}])
    # when
    call_command("import_memories", path, "--dry-run")
    # then
    assert Memory.objects.count() == 0


@pytest.mark.django_db
def test_bulk_endpoint_is_all_or_nothing(team):
    # given
    items = [{"content": f"note {i}", "namespace": "team"} for i in range(3)] + [{"content": " ", "namespace": "team"}]
    # when
    response = team["owner"].client.post("/api/v2/memories/bulk", {"memories": items}, format="json")
    # then
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["memories[3].content"]
    assert Memory.objects.count() == 0


@pytest.mark.django_db
def test_bulk_endpoint_stores_and_embeds_a_batch(team, django_capture_on_commit_callbacks):
    # given
    items = [{"content": f"bulk note {i}", "namespace": "team", "access_level": "shared"} for i in range(20)]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = team["owner"].client.post("/api/v2/memories/bulk", {"memories": items}, format="json")
    # then
    assert response.status_code == 201, response.content
    assert response.json()["count"] == 20
    assert Memory.objects.filter(embedding_status="ready").count() == 20


@pytest.mark.django_db
def test_a_large_bulk_write_is_embedded_by_several_tasks(team, django_capture_on_commit_callbacks, monkeypatch):
    # given: tasks of 8 ids, so 20 memories make three tasks for the workers to share
    from memories import tasks

    monkeypatch.setattr(tasks, "EMBEDDING_TASK_SIZE", 8)
    items = [{"content": f"bulk note {i}", "namespace": "team"} for i in range(20)]
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = team["owner"].client.post("/api/v2/memories/bulk", {"memories": items}, format="json")
    # then
    assert response.status_code == 201, response.content
    assert len(callbacks) == 3
    assert Memory.objects.filter(embedding_status="ready").count() == 20


@pytest.mark.django_db
def test_bulk_endpoint_refuses_more_than_a_thousand(team):
    # when
    response = team["owner"].client.post(
        "/api/v2/memories/bulk", {"memories": [{"content": "x"}] * 1001}, format="json"
    )
    # then
    assert response.status_code == 400
    assert Memory.objects.count() == 0
