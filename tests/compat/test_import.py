"""migrate_personas_to_agents and validate_migration against a persona-era database."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import Agent, ApiKey
from compat.adapter import importance_to_learning_weight
from compat.models import ImportedRow, ImportRun, ImportStatus, Persona, PersonaLink
from memories.models import Memory
from workflows.models import Task, Workflow


def run_import(url, keys_file, *extra):
    out = StringIO()
    call_command("migrate_personas_to_agents", "--source-url", url, "--keys-file", str(keys_file), "--no-progress",
                 *extra, stdout=out)
    return out.getvalue()


def run_validation(url=None, as_json=True):
    out = StringIO()
    args = ["--json"] if as_json else []
    if url:
        args += ["--source-url", url]
    try:
        call_command("validate_migration", *args, stdout=out)
        failed = False
    except CommandError:
        failed = True
    text = out.getvalue()
    return (json.loads(text) if as_json else text), failed


def target_snapshot() -> dict:
    return {
        "agents": sorted(Agent.objects.values_list("agent_id", "id")),
        "memories": sorted((str(m.pk), m.content, m.agent_id, m.embedding_status)
                           for m in Memory.objects.all()),
        "tasks": sorted(Task.objects.values_list("id", "assigned_agent_id", "status")),
        "workflows": sorted(Workflow.objects.values_list("id", "created_by_id")),
        "keys": ApiKey.objects.count(),
    }


@pytest.mark.django_db(transaction=True)
def test_import_copies_everything_and_validates(legacy_source, tmp_path):
    # given
    url, ids = legacy_source
    keys_file = tmp_path / "keys.tsv"

    # when
    output = run_import(url, keys_file)

    # then: personas became agents with the persona id as primary key
    assert "tmws_" not in output
    for name, persona_id in ids["personas"].items():
        agent = Agent.objects.get(agent_id=name)
        assert agent.pk == persona_id
        assert agent.agent_type == "persona"
        assert agent.namespace.namespace == "legacy"
    athena = Agent.objects.get(agent_id="athena")
    assert athena.capabilities["persona_type"] == "athena"
    assert athena.capabilities["persona_role"] == "strategist"
    assert athena.capabilities["specialties"] == ["architecture", "planning"]
    assert Persona.objects.count() == 5 and PersonaLink.objects.filter(agent_created=True).count() == 5
    # keys are in the file (one per persona, mode 0600) and they authenticate
    lines = keys_file.read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(ids["personas"])
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    # memories keep id, embedding, timestamps; importance scaled
    assert Memory.objects.count() == 10
    first = Memory.objects.get(pk=ids["memories"][3])
    assert first.embedding_status == "ready"
    assert len(first.embedding) == 384
    assert first.agent.agent_id == "artemis"
    assert first.access_level == "shared"
    assert first.context_tags == ["database"]
    assert first.memory_category == "general"
    assert first.learning_weight == importance_to_learning_weight(0.3)
    assert first.created_at.isoformat() == "2025-03-01T12:00:00+00:00"
    assert first.metadata["legacy"]["importance"] == 0.3
    assert first.metadata["source"] == "chat"
    # the persona-era decay_rate (0.01 per day) becomes the owner's weight decay: half-life ln 2 / 0.01 days
    assert first.agent.configuration["decay_half_life_days"] == 69.31
    # tasks and workflows mapped
    audit, optimise, notes = (Task.objects.get(pk=pk) for pk in ids["tasks"])
    assert audit.assigned_agent.agent_id == "hestia" and audit.status == "completed"
    assert audit.result == {"findings": 2}
    assert notes.assigned_agent is None
    assert sorted(notes.dependencies.values_list("id", flat=True)) == sorted([audit.pk, optimise.pk])
    release, review = (Workflow.objects.get(pk=pk) for pk in ids["workflows"])
    assert release.created_by.agent_id == "athena"
    assert review.created_by.agent_id == "hestia"
    assert release.execution_count == 3
    # validation passes
    report, failed = run_validation(url)
    assert not failed, report
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} >= {
        "count personas", "count memories", "count tasks", "count workflows", "memory owners resolved",
        "checksums memories", "checksums embeddings", "access rules",
    }


@pytest.mark.django_db(transaction=True)
def test_reimport_imports_nothing_twice(legacy_source, tmp_path):
    # given
    url, _ = legacy_source
    keys_file = tmp_path / "keys.tsv"
    run_import(url, keys_file)
    before = target_snapshot()

    # when
    output = run_import(url, keys_file)

    # then
    assert target_snapshot() == before
    assert "memories   source      10  already imported      10  imported       0" in output
    assert len(keys_file.read_text().splitlines()) == 5


@pytest.mark.django_db(transaction=True)
def test_dry_run_writes_nothing(legacy_source, tmp_path):
    # given
    url, _ = legacy_source
    before = target_snapshot()

    # when
    out = StringIO()
    call_command("migrate_personas_to_agents", "--source-url", url, "--dry-run", "--no-progress", stdout=out)

    # then
    assert target_snapshot() == before
    assert ImportRun.objects.count() == 0
    assert "Dry run: nothing written." in out.getvalue()
    assert "memories   source      10  already imported       0  would import      10" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_interrupted_import_resumes(legacy_source, tmp_path):
    # given: a run that stops after its fourth batch of four (two of personas, two of memories)
    from compat.importer import ImportOptions
    from compat.importer import run_import as import_run

    url, ids = legacy_source
    keys_file = tmp_path / "keys.tsv"
    options = ImportOptions(source_url=url, keys_file=str(keys_file), batch_size=4)
    with pytest.raises(Exception, match="interrupted after 4 batch"):
        import_run(options, log=lambda _: None, fail_after_batches=4)
    assert ImportRun.objects.get().status == ImportStatus.FAILED
    assert Memory.objects.count() == 8
    assert ImportedRow.objects.filter(source_table="memories").count() == 8

    # when
    output = run_import(url, keys_file)

    # then
    assert "memories   source      10  already imported       8  imported       2" in output
    assert sorted(Memory.objects.values_list("id", flat=True)) == sorted(ids["memories"])
    assert Task.objects.count() == 3 and Workflow.objects.count() == 2
    assert len(keys_file.read_text().splitlines()) == 5
    report, failed = run_validation(url)
    assert not failed, report


@pytest.mark.django_db(transaction=True)
def test_rollback_removes_the_import(legacy_source, tmp_path, make_namespace, make_agent):
    # given: an agent that existed before the import, and the import
    make_namespace("legacy")
    existing = make_agent("seshat", "legacy")
    before_agents = set(Agent.objects.values_list("agent_id", flat=True))
    url, _ = legacy_source
    run_import(url, tmp_path / "keys.tsv")
    assert Agent.objects.count() == 5

    # when
    out = StringIO()
    call_command("migrate_personas_to_agents", "--rollback", stdout=out)

    # then: only what the import created is gone; the existing agent stays
    assert set(Agent.objects.values_list("agent_id", flat=True)) == before_agents
    assert Agent.objects.get(agent_id="seshat").pk == existing.agent.pk
    assert Memory.objects.count() == 0 and Task.objects.count() == 0 and Workflow.objects.count() == 0
    assert Persona.objects.count() == 0 and ImportedRow.objects.count() == 0
    assert ImportRun.objects.get().status == ImportStatus.ROLLED_BACK
    assert "Rolled back: personas 4, memories 10, tasks 3, workflows 2" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_validation_reports_a_tampered_memory(legacy_source, tmp_path):
    # given
    url, ids = legacy_source
    run_import(url, tmp_path / "keys.tsv")
    Memory.objects.filter(pk=ids["memories"][0]).update(content="something else")
    Memory.objects.filter(pk=ids["memories"][1]).delete()

    # when
    text, failed = run_validation(url, as_json=False)

    # then
    assert failed
    assert "FAIL  count memories" in text
    assert "FAIL  checksums memories" in text
    assert f"1 row(s) whose text differs from the source, e.g. {ids['memories'][0]}" in text
    assert "Migration NOT valid" in text


@pytest.mark.django_db(transaction=True)
def test_memories_without_embeddings_or_personas_migrate_and_validate(persona_era_source, tmp_path):
    # given: a persona-era database where some memories have no embedding and some no persona
    url, ids = persona_era_source
    run_import(url, tmp_path / "keys.tsv", "--unowned-agent", "seshat")

    # when
    out = StringIO()
    call_command("validate_migration", "--source-url", url, stdout=out)  # raises (non-zero exit) if not valid
    text = out.getvalue()
    report, failed = run_validation(url)

    # then: every row is there, copied embeddings match, the computed ones are reported as such
    assert not failed and report["ok"]
    assert "Migration valid: every check passed." in text
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["checksums embeddings"] == {
        "name": "checksums embeddings", "ok": True,
        "detail": "7 embeddings match the source (md5); 3 computed by the import for memories that had none",
    }
    assert Memory.objects.count() == 10
    assert set(Memory.objects.values_list("embedding_status", flat=True)) == {"ready"}
    for memory_id in ids["without_persona"]:
        assert Memory.objects.get(pk=memory_id).agent.agent_id == "seshat"
    assert checks["count memories"]["detail"] == "source 10, imported 10"
    assert checks["memory owners resolved"]["ok"]


@pytest.mark.django_db(transaction=True)
def test_validation_still_reports_a_changed_copied_embedding(persona_era_source, tmp_path):
    # given: a migrated persona-era database, then one copied embedding altered in the target
    url, ids = persona_era_source
    run_import(url, tmp_path / "keys.tsv", "--unowned-agent", "seshat")
    copied = ids["memories"][0]
    memory = Memory.objects.get(pk=copied)
    Memory.objects.filter(pk=copied).update(embedding=[-v for v in memory.embedding])

    # when
    text, failed = run_validation(url, as_json=False)

    # then
    assert failed
    line = next(line for line in text.splitlines() if "checksums embeddings" in line)
    assert line.startswith("FAIL")
    assert line.endswith(f"1 embedding(s) differing from the source, e.g. {copied}")
    assert "Migration NOT valid: 1 of" in text
