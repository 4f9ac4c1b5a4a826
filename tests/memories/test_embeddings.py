"""Embeddings with the real model: shape, the embed_pending command, and the failure path."""
from __future__ import annotations

import logging
import math
from io import StringIO

import onnxruntime
import pytest
from django.core.management import CommandError, call_command

from memories import embeddings
from memories.models import Memory
from memories.tasks import MAX_EMBEDDING_ATTEMPTS, embed_memories


@pytest.fixture
def owner(make_namespace, make_agent):
    make_namespace("team")
    return make_agent("embedding-owner", "team").agent


def _pending(owner, content: str) -> Memory:
    return Memory.objects.create(content=content, agent=owner, namespace=owner.namespace)


@pytest.fixture
def broken_model(settings):
    """Point the model setting at a folder that does not exist; the real model is restored afterwards."""
    settings.TMWS_EMBEDDING_MODEL = "/nonexistent/tmws-embedding-model"
    embeddings.unload()
    yield
    embeddings.unload()


def test_the_real_model_gives_384_floats_of_unit_norm():
    # when
    vectors = embeddings.embed_texts(["Deploys need approval.", "The cafeteria opens at noon."])
    # then
    assert len(vectors) == 2
    for vector in vectors:
        values = [float(v) for v in vector]
        assert len(values) == 384
        assert math.isclose(math.sqrt(sum(v * v for v in values)), 1.0, abs_tol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones():
    # when
    deploy, release, lunch = embeddings.embed_texts(
        ["Deploying to staging needs approval.", "Releases to the staging server must be approved.",
         "The cafeteria serves soup on Mondays."]
    )
    # then
    assert float(deploy @ release) > float(deploy @ lunch) + 0.2


TEXTS = ["Deploying to staging needs approval.", "ok", "The cafeteria serves soup on Mondays. " * 20]


@pytest.fixture
def fresh_encoder():
    """Load the encoder again from the (changed) settings; the default one is restored afterwards."""
    embeddings.unload()
    yield
    embeddings.unload()


def test_the_default_is_onnx_at_int8_close_to_pytorch():
    # given
    model = embeddings.get_model()
    # when
    encoder = embeddings.get_encoder()
    int8 = encoder.embed(TEXTS, 2)
    torch = embeddings.TorchEncoder(model).embed(TEXTS, 2)
    # then
    assert (encoder.backend, encoder.precision) == ("onnx", "int8")
    assert encoder.graph.name.endswith(f"-int8-ort{onnxruntime.__version__}.onnx")
    assert int8.shape == (3, 384)
    cosines = (int8 * torch).sum(axis=1)
    assert all(embeddings.INT8_MIN_COSINE <= cosine < 0.9999 for cosine in cosines)  # close, yet quantised


def test_onnx_at_float32_agrees_with_pytorch(settings):
    # given
    settings.TMWS_EMBEDDING_PRECISION = "float32"
    model = embeddings.get_model()
    # when
    encoder = embeddings.OnnxEncoder(model)
    onnx = encoder.embed(TEXTS, 2)
    torch = embeddings.TorchEncoder(model).embed(TEXTS, 2)
    # then
    assert encoder.precision == "float32" and "int8" not in encoder.graph.name
    assert float(abs(onnx - torch).max()) < embeddings.BACKEND_TOLERANCE


def test_the_int8_graph_is_made_once_from_the_float32_one(settings, tmp_path, fresh_encoder):
    # given
    settings.DATA_DIR = tmp_path
    model = embeddings.get_model()
    # when
    first = embeddings.onnx_graph(model, precision="int8")
    stamp = first.stat().st_mtime_ns
    second = embeddings.onnx_graph(model, precision="int8")
    # then
    float32 = embeddings.onnx_graph(model)
    assert first == second and second.stat().st_mtime_ns == stamp
    assert first.name == float32.name.replace(".onnx", f"-int8-ort{onnxruntime.__version__}.onnx")
    assert sorted(path.name for path in first.parent.iterdir()) == sorted([float32.name, first.name])
    assert first.stat().st_size < float32.stat().st_size / 2  # 8-bit weights


def test_quantising_silences_only_the_quantiser(settings, tmp_path, caplog, fresh_encoder):
    # given: another thread logging while the int8 graph is made
    import threading

    settings.DATA_DIR = tmp_path
    model = embeddings.get_model()
    embeddings.onnx_graph(model)  # the float32 export first, so the thread below overlaps the quantiser
    done = threading.Event()
    quantising = threading.Thread(target=lambda: (embeddings.onnx_graph(model, precision="int8"), done.set()))
    # when
    with caplog.at_level(logging.INFO):
        quantising.start()
        sent = 0
        while not done.is_set():
            logging.getLogger("tmws.elsewhere").info("still serving %d", sent)
            sent += 1
            done.wait(0.01)
        quantising.join()
    # then: every record of the other logger arrived, none of the quantiser's node-by-node lines
    others = [record for record in caplog.records if record.name == "tmws.elsewhere"]
    assert sent > 0 and len(others) == sent
    assert not [record for record in caplog.records if record.name == "root"]
    assert logging.getLogger().filters == []


def test_int8_and_float32_vectors_are_recorded_as_one_model_and_compare(settings, fresh_encoder):
    # given: a text embedded at float32, a query embedded at int8
    settings.TMWS_EMBEDDING_PRECISION = "float32"
    name32, (stored,) = embeddings.embed_documents(["Deploying to staging needs approval."])
    embeddings.unload()
    settings.TMWS_EMBEDDING_PRECISION = "int8"
    name8, (stored8,) = embeddings.embed_documents(["Deploying to staging needs approval."])
    query = embeddings.embed_query("Who approves staging deploys?")
    # then: the same name, and the similarity barely moves with the stored vector's precision
    assert name32 == name8 == "all-MiniLM-L6-v2"
    assert embeddings.get_encoder().precision == "int8"
    assert abs(float(query @ stored) - float(query @ stored8)) < 0.03


def test_the_onnx_graph_is_exported_once_into_the_data_directory(settings, tmp_path, fresh_encoder):
    # given
    settings.DATA_DIR = tmp_path
    # when
    first = embeddings.onnx_graph(embeddings.get_model())
    stamp = first.stat().st_mtime_ns
    second = embeddings.onnx_graph(embeddings.get_model())
    # then
    assert first == second
    assert first.parent == tmp_path / "models" and first.suffix == ".onnx"
    assert second.stat().st_mtime_ns == stamp
    assert [path.name for path in first.parent.iterdir()] == [first.name]  # no partial file left behind


def test_the_torch_backend_can_be_chosen(settings, fresh_encoder):
    # given
    settings.TMWS_EMBEDDING_BACKEND = "torch"
    settings.TMWS_EMBEDDING_PRECISION = "float32"  # for the ONNX graph it is compared with
    # when
    vectors = embeddings.embed_texts(TEXTS)
    # then
    assert (embeddings.get_encoder().backend, embeddings.get_encoder().precision) == ("torch", "float32")
    assert float(abs(vectors - embeddings.OnnxEncoder(embeddings.get_model()).embed(TEXTS, 2)).max()) < 1e-4


def test_an_export_that_fails_falls_back_to_torch_and_says_why(settings, caplog, fresh_encoder):
    # given: a data directory nothing can be written into
    settings.DATA_DIR = "/proc/tmws-cannot-write-here"
    # when
    with caplog.at_level(logging.WARNING, logger="memories.embeddings"):
        vectors = embeddings.embed_texts(TEXTS[:1])
    # then
    assert embeddings.get_encoder().backend == "torch"
    assert len(vectors[0]) == 384
    assert "Embedding with PyTorch: the ONNX Runtime backend is unavailable" in caplog.text
    assert "/proc/tmws-cannot-write-here" in caplog.text


def test_an_int8_graph_that_fails_its_check_leaves_the_float32_graph_and_says_why(monkeypatch, caplog, fresh_encoder):
    # given: a bar no 8-bit graph reaches (as on a CPU whose 8-bit kernels lose too much)
    monkeypatch.setattr(embeddings, "INT8_MIN_COSINE", 0.99999)
    # when
    with caplog.at_level(logging.WARNING, logger="memories.embeddings"):
        encoder = embeddings.get_encoder()
    # then
    assert (encoder.backend, encoder.precision) == ("onnx", "float32")
    assert "int8" not in encoder.graph.name
    assert ("Embedding at float32: the int8 ONNX graph is unavailable "
            "(the int8 ONNX graph's vectors are at a cosine of 0.9") in caplog.text
    torch = embeddings.TorchEncoder(embeddings.get_model()).embed(TEXTS, 2)
    assert float(abs(encoder.embed(TEXTS, 2) - torch).max()) < embeddings.BACKEND_TOLERANCE


def test_embed_texts_of_nothing_is_nothing():
    # then
    assert embeddings.embed_texts([]) == []


def test_embed_pending_embeds_every_pending_memory_and_reports(owner):
    # given
    first = _pending(owner, "The build uses Python 3.11.")
    second = _pending(owner, "Backups run nightly at two.")
    out = StringIO()
    # when
    call_command("embed_pending", "--batch-size", "1", stdout=out)
    # then
    assert out.getvalue().splitlines() == ["Embedded 2 memories; 0 failed."]
    for memory in (first, second):
        memory.refresh_from_db()
        assert memory.embedding_status == "ready"
        assert len(memory.embedding) == 384
        assert memory.embedding_attempts == 1


def test_embed_pending_with_nothing_to_do(owner):
    # given
    out = StringIO()
    # when
    call_command("embed_pending", stdout=out)
    # then
    assert out.getvalue().strip() == "Nothing to embed: no pending memories."


def test_failed_embedding_keeps_attempts_and_error_until_it_gives_up(owner, broken_model):
    # given
    memory = _pending(owner, "This one will not embed.")
    # when / then: each attempt is counted, the row stays pending until the last one
    for attempt in range(1, MAX_EMBEDDING_ATTEMPTS + 1):
        result = embed_memories.apply(args=[[str(memory.pk)]]).get()
        assert result == {"embedded": 0, "failed": 1}
        memory.refresh_from_db()
        assert memory.embedding_attempts == attempt
        assert "/nonexistent/tmws-embedding-model" in memory.embedding_error
        expected = "failed" if attempt == MAX_EMBEDDING_ATTEMPTS else "pending"
        assert memory.embedding_status == expected
    assert memory.embedding is None
    # a failed row is left alone by further runs
    assert embed_memories.apply(args=[[str(memory.pk)]]).get() == {"embedded": 0, "failed": 0}
    memory.refresh_from_db()
    assert memory.embedding_attempts == MAX_EMBEDDING_ATTEMPTS


def test_embed_pending_reports_failures(owner, broken_model):
    # given
    memory = _pending(owner, "Also will not embed.")
    out = StringIO()
    # when
    call_command("embed_pending", stdout=out)
    # then
    assert out.getvalue().splitlines() == [
        "Embedded 0 memories; 1 failed.",
        "Failed memories keep their error; see the admin or run again with --retry-failed.",
    ]
    memory.refresh_from_db()
    assert (memory.embedding_status, memory.embedding_attempts) == ("pending", 1)


def test_embed_pending_retry_failed_embeds_failed_memories_again(owner):
    # given: a memory that ran out of attempts earlier
    failed = _pending(owner, "Give it another go.")
    Memory.objects.filter(pk=failed.pk).update(
        embedding_status="failed", embedding_attempts=MAX_EMBEDDING_ATTEMPTS, embedding_error="OSError: gone"
    )
    plain = StringIO()
    retry = StringIO()
    # when
    call_command("embed_pending", stdout=plain)
    untouched = Memory.objects.get(pk=failed.pk).embedding_status
    call_command("embed_pending", "--retry-failed", stdout=retry)
    # then
    assert untouched == "failed"
    assert retry.getvalue().splitlines() == ["1 failed memories queued again.", "Embedded 1 memories; 0 failed."]
    failed.refresh_from_db()
    assert (failed.embedding_status, failed.embedding_error, failed.embedding_attempts) == ("ready", "", 1)


def test_prepare_model_loads_the_model_and_says_which_backend_runs_it():
    # given
    out = StringIO()
    # when
    call_command("prepare_model", stdout=out)
    # then
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Loading the embedding model all-MiniLM-L6-v2 from {embeddings.model_path()} ..."
    assert lines[1].startswith("Embedding model ready: onnx backend, int8 (")
    assert "-int8-ort" in lines[1] and ".onnx); loaded in " in lines[1] and lines[1].endswith(" ms.")


def test_prepare_model_fails_clearly_when_the_model_cannot_load(broken_model):
    # when / then
    with pytest.raises(CommandError, match="The embedding model cannot be loaded: .*/nonexistent/tmws-embedding-model"):
        call_command("prepare_model", stdout=StringIO())


def test_gunicorn_workers_load_the_model_before_taking_requests(fresh_encoder):
    # given
    from tmws_site import gunicorn_conf

    assert embeddings.get_encoder.cache_info().currsize == 0
    # when
    gunicorn_conf.post_worker_init(worker=None)
    # then
    assert embeddings.get_encoder.cache_info().currsize == 1
