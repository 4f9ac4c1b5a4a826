"""The importer copies persona-era embeddings only into a service running their model (all-MiniLM-L6-v2)."""
from __future__ import annotations

import numpy as np
import psycopg
import pytest

from memories import embeddings
from memories.models import Memory

from .test_import import run_import, run_validation


def _source_vectors(url) -> dict:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, embedding::text FROM memories").fetchall()
    return {pk: np.asarray([float(v) for v in text.strip("[]").split(",")]) for pk, text in rows}


@pytest.mark.django_db(transaction=True)
def test_with_minilm_configured_the_source_embeddings_are_copied(legacy_source, tmp_path):
    # given
    url, ids = legacy_source
    # when
    output = run_import(url, tmp_path / "keys.tsv")
    # then
    assert "  embeddings copied 10, queued for embedding 0" in output.splitlines()
    source = _source_vectors(url)
    for memory in Memory.objects.filter(pk__in=ids["memories"]):
        assert (memory.embedding_model, memory.embedding_status) == ("all-MiniLM-L6-v2", "ready")
        assert np.allclose(memory.embedding, source[memory.pk], atol=1e-6)


@pytest.mark.django_db(transaction=True)
def test_with_another_model_configured_the_memories_are_queued_and_embedded_by_it(
    legacy_source, tmp_path, use_model, second_model_folder
):
    # given: a source embedded by all-MiniLM-L6-v2, a service configured with another model
    url, ids = legacy_source
    use_model(second_model_folder)
    # when
    output = run_import(url, tmp_path / "keys.tsv")
    # then: nothing copied; the background embedding (in process here) used the configured model
    lines = output.splitlines()
    assert "  embeddings copied 0, queued for embedding 10" in lines
    assert ("The source's embeddings come from all-MiniLM-L6-v2, the configured model is minilm-cls: "
            "memories are queued for embedding instead.") in lines
    source = _source_vectors(url)
    memories = list(Memory.objects.filter(pk__in=ids["memories"]))
    assert len(memories) == 10
    expected = embeddings.embed_texts([memory.content for memory in memories])
    for memory, vector in zip(memories, expected, strict=True):
        assert (memory.embedding_model, memory.embedding_status) == ("minilm-cls", "ready")
        assert np.allclose(memory.embedding, vector, atol=1e-5)
        assert not np.allclose(memory.embedding, source[memory.pk], atol=1e-2)
    report, failed = run_validation(url)
    assert not failed, report
    assert "checksums embeddings" not in {check["name"] for check in report["checks"]}
