"""Export and import: a round trip into a second database keeps every memory, its embedding, history and shares,
and every search answers alike; imports resume, map colliding ids and refuse bad lines naming them; agents export
their own memories only."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from guardian.shortcuts import assign_perm

from access import SYSTEM
from agents.models import Agent
from memories.contracts import ShareMemory, StoreMemory, UpdateMemory
from memories.embedding_jobs import embed_batch
from memories.embeddings import configured_model
from memories.expiry import delete_expired_memories
from memories.models import Memory, MemoryUserObjectPermission, MemoryVersion
from memories.services import create_memory, delete_memory, share_memory, update_memory
from memories.transfer import MAPPED_ID_NAMESPACE
from namespaces.models import Namespace
from tests.compat import legacy_db

from . import transfer_probe

pytestmark = pytest.mark.django_db

PROJECT_DIR = Path(__file__).resolve().parents[2]

TURNS = [
    "We agreed to move the harbour crane inspection to Tuesday morning.",
    "The crane's hydraulic pump leaked oil during the last inspection.",
    "Order a replacement seal kit for the hydraulic pump before Tuesday.",
    "The inspector wants the maintenance log printed, not emailed.",
]
FACTS = [
    ("owner", "private", "The staging database is refreshed from production every Sunday night.", ["ops"], 1.0),
    ("owner", "shared", "Deploys to production need approval from the release manager.", ["release"], 2.5),
    ("owner", "public", "Our office cat is called Biscuit and sleeps on the server rack.", [], 0.4),
    ("member", "shared", "The billing service stores invoices in PostgreSQL.", ["billing"], 1.0),
    ("member", "private", "Lunch on Fridays is pizza from the place around the corner.", [], 1.0),
    ("ancestor", "shared", "Company policy: rotate every access key after ninety days.", ["security"], 3.0),
    ("outsider", "private", "The outsider keeps its VPN credentials in the team vault.", ["security"], 1.0),
    ("outsider", "shared", "Release trains leave every second Wednesday.", ["release"], 1.0),
]
QUERIES = ["when is the crane inspection", "who approves a production deploy", "where are invoices stored",
           "access key rotation policy"]


def _store(actor, **body) -> Memory:
    memory = create_memory(actor, StoreMemory.parse(body))
    embed_batch([memory.pk])
    return Memory.objects.get(pk=memory.pk)


def _update(actor, memory, **changes) -> Memory:
    memory = update_memory(actor, Memory.objects.get(pk=memory.pk), UpdateMemory.parse(changes))
    embed_batch([memory.pk])
    return Memory.objects.get(pk=memory.pk)


@pytest.fixture
def corpus(team, make_namespace):
    """Memories of every kind: a conversation, facts at every access level, a system memory, a child of a parent,
    a memory shared one by one, memories with a history, and an expired one."""
    agents = {name: handle.agent for name, handle in team.items()}
    memories = {}
    for index, text in enumerate(TURNS):
        memories[f"turn{index}"] = _store(agents["owner"], content=text, access_level="shared", namespace="team",
                                          context_tags=["harbour"], metadata={"session_id": "crane-1"})
    for index, (owner, level, text, tags, weight) in enumerate(FACTS):
        memories[f"fact{index}"] = _store(agents[owner], content=text, access_level=level,
                                          context_tags=tags, learning_weight=weight, memory_category="fact")
    memories["system"] = _store(SYSTEM, content="Maintenance window: Saturdays 02:00 to 04:00 UTC.",
                                access_level="system", namespace="company")
    memories["child"] = _store(agents["owner"], content="Approval is given in the #releases channel.",
                               access_level="shared", namespace="team", parent_memory_id=str(memories["fact1"].pk))
    # History: the draft was private, then shared; a weight and tags changed.
    memories["fact1"] = _update(agents["owner"], memories["fact1"], content="Deploys to production need approval "
                                "from the release manager on duty.")
    memories["fact3"] = _update(agents["member"], memories["fact3"], context_tags=["billing", "database"])
    share_memory(agents["owner"], memories["fact1"], ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
    share_memory(agents["outsider"], memories["fact7"], ShareMemory.parse({"agent_ids": ["owner-agent"]}))
    expired = _store(agents["owner"], content="This reminder has expired.", ttl_seconds=3600)
    Memory.objects.filter(pk=expired.pk).update(expires_at="2020-01-01T00:00:00Z")
    return team, memories


def _export(tmp_path, *options) -> tuple[Path, list[dict]]:
    path = tmp_path / f"export-{uuid.uuid4().hex[:8]}.jsonl"
    call_command("export_memories", "--output", str(path), *options, stderr=io.StringIO())
    return path, [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _import(path, *options) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_memories", str(path), *options, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _counts() -> dict:
    return {"memories": Memory.objects.count(), "versions": MemoryVersion.objects.count(),
            "shares": MemoryUserObjectPermission.objects.count(), "agents": Agent.objects.count(),
            "namespaces": Namespace.objects.count()}


def _wipe_memories() -> None:
    Memory.objects.update(parent_memory=None)
    Memory.objects.all().delete()


# --- The format ---------------------------------------------------------------------------------------------------

def test_an_export_has_a_header_then_every_live_memory_with_embedding_shares_and_history(corpus, tmp_path):
    # given
    team, memories = corpus
    # when
    _, lines = _export(tmp_path)
    # then
    header, rows = lines[0], {row["id"]: row for row in lines[1:]}
    assert header["format"] == "tmws-memories" and header["version"] == 1
    assert header["embedding_model"] == configured_model().name and header["embedding_dimensions"] == 384
    assert set(rows) == {str(m.pk) for m in memories.values()}  # the expired memory is not there
    fact = rows[str(memories["fact1"].pk)]
    assert fact["agent"]["agent_id"] == "owner-agent" and fact["agent"]["namespace"] == "company/team"
    assert fact["namespace"] == "company/team"
    assert fact["namespaces"]["company"]["access_policy"] == "invite_only"
    assert [s["agent_id"] for s in fact["shares"]] == ["sharee-agent"]
    assert [(v["version"], v["change"], v["content"][:24], v["changed_by"]) for v in fact["history"]] == [
        (1, "create", "Deploys to production ne", "owner-agent"),
        (2, "update", "Deploys to production ne", "owner-agent"),
    ]
    stored = Memory.objects.get(pk=memories["fact1"].pk)
    assert fact["embedding"] == list(stored.embedding) and fact["embedding_model"] == stored.embedding_model
    assert rows[str(memories["child"].pk)]["parent_memory_id"] == str(memories["fact1"].pk)
    assert rows[str(memories["system"].pk)]["agent"] is None


def test_a_deleted_memory_is_absent_from_a_later_export(corpus, tmp_path):
    # given
    team, memories = corpus
    delete_memory(team["owner"].agent, Memory.objects.get(pk=memories["fact0"].pk))
    # when
    path, lines = _export(tmp_path)
    # then
    assert str(memories["fact0"].pk) not in {row["id"] for row in lines[1:]}
    assert "staging database" not in path.read_text(encoding="utf-8")


def test_an_export_narrows_to_a_namespace_subtree_and_an_agent(corpus, tmp_path):
    team, memories = corpus
    _, by_namespace = _export(tmp_path, "--namespace", "team")
    _, by_agent = _export(tmp_path, "--agent", "member-agent")
    assert {row["namespace"] for row in by_namespace[1:]} == {"company/team"}
    assert {row["agent"]["agent_id"] for row in by_agent[1:]} == {"member-agent"}
    with pytest.raises(CommandError, match="Namespace 'nowhere' does not exist"):
        _export(tmp_path, "--namespace", "nowhere")


# --- The round trip -----------------------------------------------------------------------------------------------

@pytest.fixture
def second_database():
    name = f"test_transfer_{os.getpid()}"
    legacy_db.create_database(name)
    yield legacy_db.url_for(name)
    legacy_db.drop_database(name)


def _in_second_database(url: str, *arguments: str, timeout: int = 600) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    env.update(DEBUG="1", DATABASE_URL=url, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LOG_LEVEL="WARNING")
    done = subprocess.run([sys.executable, str(PROJECT_DIR / "manage.py"), *arguments], env=env, cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_export_then_import_into_a_fresh_installation_gives_identical_search_results(corpus, tmp_path,
                                                                                    second_database):
    # given: an export, and the searches as the system and as agents with different rights, in every mode
    team, memories = corpus
    path, _ = _export(tmp_path)
    # Search ranks an expired memory the job has not deleted yet, then leaves it out of its page (a page one
    # short): the job runs here first, as it will have run by the time anyone compares.
    assert delete_expired_memories() == 1
    searches = [(actor, {"query": query, "mode": mode, "limit": 8})
                for actor in ("system", "owner-agent", "member-agent", "sharee-agent", "outsider-agent", "company-agent")
                for query in QUERIES for mode in ("hybrid", "semantic", "keyword")]
    searches += [("owner-agent", {"query": "crane", "namespace": "team", "context_tags": ["harbour"]}),
                 ("system", {"query": "security", "mode": "keyword", "access_levels": ["private", "shared"]})]
    spec = _write(tmp_path / "spec.json", [])
    spec.write_text(json.dumps({"searches": searches}), encoding="utf-8")
    expected_ids = transfer_probe.search_ids(searches)
    expected_state = transfer_probe.state()
    # when: a fresh installation is migrated, imports the file and answers the same searches
    _in_second_database(second_database, "migrate", "-v0")
    summary = _in_second_database(second_database, "import_memories", str(path))
    answer = json.loads(_in_second_database(
        second_database, "shell", "--no-imports", "-c",
        f"from tests.memories.transfer_probe import main; main({str(spec)!r})").splitlines()[-1])
    # then
    assert f"Imported {len(memories)} memories (0 under a new id" in summary
    differing = [(search, here, there) for search, here, there in zip(searches, expected_ids, answer["searches"],
                                                                      strict=True) if here != there]
    assert differing == []
    assert sum(len(found) for found in expected_ids) > 100
    assert answer["state"] == expected_state


# --- Resume, conflicts, models ----------------------------------------------------------------------------------

def test_importing_into_the_installation_it_came_from_changes_nothing(corpus, tmp_path):
    path, _ = _export(tmp_path)
    before, state = _counts(), transfer_probe.state()
    summary = _import(path)
    assert f"Skipped {len(corpus[1])} already here" in summary
    assert "Agents created: 0; namespaces created: 0." in summary
    assert _counts() == before and transfer_probe.state() == state


def test_a_bad_line_stops_the_import_naming_it_and_a_second_run_imports_the_rest_once(corpus, tmp_path):
    # given: an export whose fifth line (the fourth memory) is broken, imported in batches of two
    path, lines = _export(tmp_path)
    expected = transfer_probe.state()
    _wipe_memories()
    broken = [*lines[:4], {**lines[4], "content": "   "}, *lines[5:]]
    # when
    with pytest.raises(CommandError, match=r"^line 5: content may not be empty\.$"):
        _import(_write(tmp_path / "broken.jsonl", broken), "--batch-size", "2")
    # then: the first batch (lines 2-3) is in, nothing of the batch holding line 5
    assert set(Memory.objects.values_list("pk", flat=True)) == {uuid.UUID(line["id"]) for line in lines[1:3]}
    # when: the fixed file is imported, twice
    first = _import(path, "--batch-size", "2")
    second = _import(path, "--batch-size", "2")
    # then: the rest came in once, with history, shares and parents as they were
    assert f"Imported {len(lines) - 3} memories" in first and "Skipped 2 already here" in first
    assert "Imported 0 memories" in second and f"Skipped {len(lines) - 1} already here" in second
    assert transfer_probe.state() == expected


def test_a_child_imported_before_its_parent_points_at_it(corpus, tmp_path):
    team, memories = corpus
    path, lines = _export(tmp_path)
    _wipe_memories()
    child = next(line for line in lines[1:] if line["parent_memory_id"])
    reordered = [lines[0], child, *(line for line in lines[1:] if line is not child)]
    _import(_write(tmp_path / "reordered.jsonl", reordered), "--batch-size", "1")
    assert Memory.objects.get(pk=child["id"]).parent_memory_id == memories["fact1"].pk


def test_an_id_taken_by_other_content_is_mapped_to_a_derived_id_once(corpus, tmp_path):
    # given: after the export, the parent memory's content changed here
    team, memories = corpus
    path, lines = _export(tmp_path)
    parent = memories["fact1"]
    _update(team["owner"].agent, parent, content="Deploys need two approvals now.")
    Memory.objects.filter(pk=memories["child"].pk).delete()
    # when
    summary = _import(path)
    again = _import(path)
    # then: the exported parent came in under a derived id, with its history, shares and its child pointing at it
    copy_id = uuid.uuid5(MAPPED_ID_NAMESPACE, str(parent.pk))
    copy = Memory.objects.get(pk=copy_id)
    assert copy.content.startswith("Deploys to production need approval")
    assert Memory.objects.get(pk=parent.pk).content == "Deploys need two approvals now."
    assert Memory.objects.get(pk=memories["child"].pk).parent_memory_id == copy_id
    assert list(MemoryVersion.objects.filter(memory_id=copy_id).order_by("version").values_list(
        "version", "change")) == [(1, "create"), (2, "update")]
    assert MemoryUserObjectPermission.objects.filter(content_object_id=copy_id,
                                                     user__agent__agent_id="sharee-agent").exists()
    assert "Imported 2 memories (1 under a new id" in summary
    assert "Imported 0 memories (0 under a new id" in again


def test_a_line_repeated_in_the_file_is_imported_once(corpus, tmp_path):
    path, lines = _export(tmp_path)
    _wipe_memories()
    summary = _import(_write(tmp_path / "twice.jsonl", [lines[0], lines[1], lines[2], lines[1]]))
    assert "Imported 2 memories (0 under a new id" in summary and "Skipped 1 already here" in summary
    assert Memory.objects.count() == 2


def test_on_conflict_skip_leaves_a_colliding_memory_out(corpus, tmp_path):
    team, memories = corpus
    path, _ = _export(tmp_path)
    _update(team["owner"].agent, memories["fact0"], content="The staging database is gone.")
    before = _counts()
    summary = _import(path, "--on-conflict", "skip")
    assert "1 whose id is taken here (--on-conflict skip)" in summary
    assert _counts() == before


def test_agents_and_namespaces_missing_here_are_created_with_their_policy_and_memberships(team, tmp_path):
    # given: an export of a memory in a closed namespace, owned by an agent that is also admin of another
    company = Namespace.objects.get(namespace="company")
    from namespaces.contracts import AddMember, CreateNamespace
    from namespaces.services import add_member, create_namespace
    create_namespace(SYSTEM, CreateNamespace.parse({"namespace": "vault", "access_policy": "closed",
                                                    "parent_namespace": "company"}))
    from agents.contracts import RegisterAgent
    from agents.services import register_agent
    keeper, _ = register_agent(SYSTEM, RegisterAgent.parse({"agent_id": "keeper", "namespace": "vault",
                                                            "capabilities": {"vault": True}}))
    add_member(SYSTEM, Namespace.objects.get(namespace="squad"), AddMember.parse({"agent_id": "keeper",
                                                                                   "role": "admin"}))
    _store(keeper, content="The vault code changes monthly.", access_level="shared")
    path, _ = _export(tmp_path, "--agent", "keeper")
    # when: imported where neither the agent nor its namespace exists
    _wipe_memories()
    keeper_user = keeper.user
    keeper.delete()
    keeper_user.delete()
    Namespace.objects.filter(namespace="vault").delete()
    summary = _import(path)
    # then
    assert "Agents created: 1; namespaces created: 1." in summary
    vault = Namespace.objects.get(namespace="vault")
    assert (vault.parent_id, vault.access_policy) == (company.pk, "closed")
    keeper = Agent.objects.get(agent_id="keeper")
    assert keeper.namespace_id == vault.pk and keeper.capabilities == {"vault": True}
    from access import admin_namespace_ids
    assert Namespace.objects.get(namespace="squad").pk in admin_namespace_ids(keeper)
    assert Memory.objects.get(agent=keeper).content == "The vault code changes monthly."


def test_embeddings_of_another_model_are_left_out_and_embedded_again_with_a_warning(corpus, tmp_path):
    # given: an export whose vectors another model made
    path, lines = _export(tmp_path)
    _wipe_memories()
    other = [{**lines[0], "embedding_model": "other-model", "embedding_dimensions": 768}]
    other += [{**line, "embedding_model": "other-model", "embedding": [0.1] * 768} for line in lines[1:]]
    # when
    summary = _import(_write(tmp_path / "other.jsonl", other))
    # then
    assert "Warning: The file's embeddings were made by other-model (768 dimensions); this installation embeds " \
           f"with {configured_model().name} (384 dimensions)" in summary
    assert f"{len(lines) - 1} memories were imported without an embedding" in summary
    assert set(Memory.objects.values_list("embedding_status", flat=True)) == {"pending"}
    assert not Memory.objects.filter(embedding__isnull=False).exists()


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda lines: [lines[0], *lines[1:3], "{not json"], r"^line 4: not valid JSON"),
    (lambda lines: [lines[0], {**lines[1], "access_level": "secret"}], r"^line 2: access_level must be one of"),
    (lambda lines: [lines[0], {**lines[1], "id": "nope"}], r"^line 2: id must be a UUID\.$"),
    (lambda lines: [lines[0], {**lines[1], "embedding": [0.5] * 3}], r"^line 2: embedding has 3 numbers; the "),
    (lambda lines: [lines[0], {**lines[1], "history": [{"version": 1}]}], r"^line 2: history\[0\]\.change is"),
    (lambda lines: [{**lines[0], "format": "csv"}, *lines[1:]], r"^line 1: format must be"),
    (lambda lines: [{**lines[0], "version": 9}, *lines[1:]], r"^line 1: version 9 of the format is newer"),
])
def test_a_bad_file_is_refused_naming_the_line_and_nothing_is_written(corpus, tmp_path, mangle, message):
    path, lines = _export(tmp_path)
    _wipe_memories()
    before = _counts()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in mangle(lines)),
                   encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        _import(bad)
    assert _counts() == before


# --- GET /api/v2/memories/export ----------------------------------------------------------------------------------

def _api_export(client, query: str = "") -> tuple[int, list[dict], str]:
    response = client.get(f"/api/v2/memories/export{query}")
    if response.status_code != 200:
        return response.status_code, [], response["Content-Type"]
    body = b"".join(response.streaming_content).decode()
    return 200, [json.loads(line) for line in body.splitlines()], response["Content-Type"]


@pytest.mark.parametrize("who", ["owner", "member", "sharee", "outsider"])
def test_an_agent_exports_the_memories_it_owns_and_nothing_shared_with_it(corpus, who):
    # given
    team, memories = corpus
    agent = team[who].agent
    # when
    status, lines, content_type = _api_export(team[who].client)
    # then
    assert (status, content_type) == (200, "application/x-ndjson")
    assert lines[0]["format"] == "tmws-memories" and lines[0]["exported_by"] == agent.agent_id
    owned = {str(m.pk) for m in memories.values() if m.agent_id == agent.pk}
    assert {line["id"] for line in lines[1:]} == owned
    assert all(line["agent"]["agent_id"] == agent.agent_id for line in lines[1:])


def test_an_agents_export_holds_the_history_it_may_read_and_the_shares_of_its_memories(corpus):
    team, memories = corpus
    _, lines, _ = _api_export(team["owner"].client)
    fact = next(line for line in lines[1:] if line["id"] == str(memories["fact1"].pk))
    assert [version["version"] for version in fact["history"]] == [1, 2]
    assert [share["agent_id"] for share in fact["shares"]] == ["sharee-agent"]
    # The outsider's memory shared with the owner is the outsider's to export.
    _, outsider_lines, _ = _api_export(team["outsider"].client)
    shared = next(line for line in outsider_lines[1:] if line["id"] == str(memories["fact7"].pk))
    assert [share["agent_id"] for share in shared["shares"]] == ["owner-agent"]
    assert str(memories["fact7"].pk) not in {line["id"] for line in lines[1:]}


def test_an_agent_may_not_export_another_agents_memories(corpus):
    team, _ = corpus
    status, _, content_type = _api_export(team["member"].client, "?agent_id=owner-agent")
    assert (status, content_type) == (403, "application/json")
    assert _api_export(team["member"].client, "?agent_id=member-agent")[0] == 200


def test_a_deleted_memory_is_absent_from_a_later_api_export(corpus):
    team, memories = corpus
    team["owner"].client.delete(f"/api/v2/memories/{memories['fact2'].pk}")
    _, lines, _ = _api_export(team["owner"].client)
    assert str(memories["fact2"].pk) not in {line["id"] for line in lines[1:]}
    assert "Biscuit" not in json.dumps(lines)


def test_operators_export_the_memories_of_their_namespaces(corpus, operator_client):
    team, memories = corpus
    staff = get_user_model().objects.create_user("scoped", "scoped@example.com", "pw-123456!", is_staff=True)
    assign_perm("view_namespace", staff, Namespace.objects.get(namespace="other"))
    from rest_framework.test import APIClient
    scoped = APIClient()
    scoped.force_authenticate(staff)
    _, everything, _ = _api_export(operator_client)
    _, other_only, _ = _api_export(scoped)
    assert {line["id"] for line in everything[1:]} == {str(m.pk) for m in memories.values()}
    assert {line["id"] for line in other_only[1:]} == {str(memories["fact6"].pk), str(memories["fact7"].pk)}
    assert everything[0]["exported_by"] == "operator:operator"


def test_an_anonymous_export_is_refused(client):
    response = client.get("/api/v2/memories/export")
    assert response.status_code == 401


def test_the_connection_leaves_the_agents_role_after_a_streamed_export(corpus):
    team, _ = corpus
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        role_before = cursor.fetchone()[0]
    _api_export(team["owner"].client)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == role_before


def test_exports_and_imports_are_in_the_audit_trail(team, tmp_path):
    from audit.models import AuditEntry

    create_memory(team["owner"].agent, StoreMemory.parse({"content": "Audited export."}))
    response = team["owner"].client.get("/api/v2/memories/export")
    assert response.status_code == 200
    b"".join(response.streaming_content)
    path = tmp_path / "export.jsonl"
    call_command("export_memories", "--output", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    call_command("import_memories", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    entries = list(AuditEntry.objects.filter(action__in=["memories.export", "memories.import"]).order_by("id")
                   .values_list("action", "actor", "after"))
    assert entries == [
        ("memories.export", "owner-agent", {"namespace": None, "agent_id": None}),
        ("memories.export", None, {"namespace": None, "agent_id": None}),
        ("memories.import", None, {"imported": 0, "mapped": 0, "skipped": 1, "conflicts": 0, "agents_created": 0,
                                   "namespaces_created": 0}),
    ]
