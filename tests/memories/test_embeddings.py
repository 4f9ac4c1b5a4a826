"""Embeddings with the real model: shape, the embed_pending command, and the failure path."""
from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from django.core.management import CommandError, call_command

from memories import embeddings, precision
from memories.embedding_jobs import MAX_EMBEDDING_ATTEMPTS
from memories.models import Memory
from memories.precision import CALIBRATION_TEXTS
from memories.tasks import embed_memories


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


def test_the_int8_graph_is_close_to_pytorch_yet_quantised():
    # given
    model = embeddings.get_model()
    # when
    encoder = embeddings.get_encoder()
    int8 = encoder.embed(TEXTS)
    torch = embeddings.TorchEncoder(model).embed(TEXTS)
    # then
    assert (encoder.backend, encoder.precision) == ("onnx", "int8")
    assert encoder.graph.name.endswith(f"-int8w7-ort{onnxruntime.__version__}.onnx")
    assert int8.shape == (3, 384)
    cosines = (int8 * torch).sum(axis=1)
    assert all(precision.INT8_MIN_COSINE <= cosine < 0.9999 for cosine in cosines)  # close, yet quantised


ALONE = "User prefers dark mode in the editor."
DIALOGUE_TURN = ("Caroline: I went to a support group yesterday and it was really moving, everyone shared their "
                 "stories and I felt accepted for the first time in a long while, so I want to keep going weekly.")


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(precision):
    # given: the text alone, then beside a long turn, beside short words, and in the middle of many texts
    batches = [[ALONE, DIALOGUE_TURN], ["ok", ALONE, "Thanks!"], [*TEXTS, ALONE, *CALIBRATION_TEXTS[:20]]]
    # when
    alone = embeddings.embed_texts([ALONE])[0]
    batched = [embeddings.embed_texts(batch)[batch.index(ALONE)] for batch in batches]
    query = embeddings.embed_query(ALONE)
    # then: equal, not merely close (int8 used to move it to a cosine of 0.97 beside other texts)
    assert embeddings.get_encoder().precision == precision
    for vector in [*batched, query]:
        assert float(np.abs(vector - alone).max()) < 1e-6
        assert float(vector @ alone) >= 0.9999


def test_another_process_gives_the_same_vector(settings):
    # given: a fresh interpreter on the same data directory, embedding the text at the same precision
    script = ("import django, json; django.setup(); from memories.embeddings import embed_texts; "
              f"print(json.dumps([float(x) for x in embed_texts([{ALONE!r}, {DIALOGUE_TURN!r}])[0]]))")
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tmws_site.settings", "DEBUG": "1",
                   "TMWS_EMBEDDING_PRECISION": "int8", "TMWS_DATA_DIR": str(settings.DATA_DIR), "LOG_LEVEL": "ERROR"}
    # when
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                          cwd=Path(__file__).resolve().parents[2], timeout=300, check=True)
    theirs = np.array(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32)
    # then
    ours = embeddings.embed_texts([ALONE])[0]
    assert embeddings.get_encoder().precision == "int8"
    assert float(np.abs(theirs - ours).max()) < 1e-6


def test_onnx_at_float32_agrees_with_pytorch(settings):
    # given
    settings.TMWS_EMBEDDING_PRECISION = "float32"
    model = embeddings.get_model()
    # when
    encoder = embeddings.OnnxEncoder(model)
    onnx = encoder.embed(TEXTS)
    torch = embeddings.TorchEncoder(model).embed(TEXTS)
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
    assert first.name == float32.name.replace(".onnx", f"-int8w7-ort{onnxruntime.__version__}.onnx")
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
    assert float(abs(vectors - embeddings.OnnxEncoder(embeddings.get_model()).embed(TEXTS)).max()) < 1e-4


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
    monkeypatch.setattr(precision, "INT8_MIN_COSINE", 0.99999)
    # when
    with caplog.at_level(logging.WARNING, logger="memories.embeddings"):
        encoder = embeddings.get_encoder()
    # then
    assert (encoder.backend, encoder.precision) == ("onnx", "float32")
    assert "int8" not in encoder.graph.name
    assert ("Embedding model all-MiniLM-L6-v2: onnx backend at float32 (the int8 ONNX graph is unavailable: "
            "the int8 ONNX graph's vectors are at a cosine of 0.9") in caplog.text
    torch = embeddings.TorchEncoder(embeddings.get_model()).embed(TEXTS)
    assert float(abs(encoder.embed(TEXTS) - torch).max()) < embeddings.BACKEND_TOLERANCE


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
    assert "-int8w7-ort" in lines[1] and ".onnx); loaded in " in lines[1] and lines[1].endswith(" ms.")
    assert lines[2] == "Precision int8: set by TMWS_EMBEDDING_PRECISION."


def test_prepare_model_fails_clearly_when_the_model_cannot_load(broken_model):
    # when / then
    with pytest.raises(CommandError, match="The embedding model cannot be loaded: .*/nonexistent/tmws-embedding-model"):
        call_command("prepare_model", stdout=StringIO())


def test_gunicorn_workers_load_the_model_before_taking_requests(fresh_encoder):
    # given
    from tmws_site import gunicorn_conf

    assert not embeddings.is_loaded()
    # when
    gunicorn_conf.post_worker_init(worker=None)
    # then
    assert embeddings.is_loaded()


FIGURES = {"float32_texts_per_second": 120.0, "int8_texts_per_second": 240.0, "cosine_min": 0.958, "cosine_mean": 0.9908}


@pytest.mark.parametrize(("changed", "expected", "reason"), [
    ({}, "int8", "measured on this CPU: int8 2.00x float32's speed, cosine to float32 min 0.958 / mean 0.9908"),
    ({"int8_texts_per_second": 144.0}, "float32",
     "int8 is not faster enough on this CPU (int8 1.20x float32's speed, cosine to float32 min 0.958 / mean 0.9908; "
     "needs 1.25x)"),
    ({"cosine_min": 0.93}, "float32",
     "int8 loses too much on this CPU (int8 2.00x float32's speed, cosine to float32 min 0.930 / mean 0.9908; "
     "needs min 0.95 / mean 0.99)"),
    ({"cosine_mean": 0.98}, "float32",
     "int8 loses too much on this CPU (int8 2.00x float32's speed, cosine to float32 min 0.958 / mean 0.9800; "
     "needs min 0.95 / mean 0.99)"),
])
def test_auto_takes_int8_only_where_it_is_faster_and_close_enough(changed, expected, reason):
    # when
    decision = precision.judge({**FIGURES, **changed})
    # then
    assert (decision.precision, decision.reason) == (expected, reason)
    assert decision.measured == {**FIGURES, **changed}


class Measured:
    """An encoder stand-in for decide(): counts how often the machine would be measured."""

    calls = 0

    def __init__(self, vectors):
        self.vectors = vectors

    def embed(self, texts):
        Measured.calls += 1
        return self.vectors[: len(texts)]


def test_the_decision_is_measured_once_per_machine_and_kept(tmp_path):
    # given: an int8 graph that gives float32's vectors exactly (so the speed decides)
    vectors = embeddings.embed_texts(CALIBRATION_TEXTS)
    graph = tmp_path / "model-int8w7-ort1.onnx"
    Measured.calls = 0
    # when
    first = precision.decide(graph, lambda: (Measured(vectors), Measured(vectors)))
    measured_calls = Measured.calls
    second = precision.decide(graph, lambda: pytest.fail("measured twice"))
    # then
    assert measured_calls == 2 + 2 * 3  # the cosines, then three interleaved rounds of each
    assert first == second
    assert first.measured["cosine_min"] == first.measured["cosine_mean"] == 1.0
    assert first.measured["texts"] == len(CALIBRATION_TEXTS) and first.measured["cpu_flags"] == precision.cpu_flags()
    kept = precision.decision_file(graph)
    assert json.loads(kept.read_text()) == first.as_dict()
    assert sorted(path.name for path in tmp_path.iterdir()) == [kept.name, kept.with_suffix(".lock").name]


def test_processes_starting_together_wait_for_one_measurement(tmp_path):
    # given: the first process is measuring (it holds the decision's lock) when the second asks
    import threading

    vectors = embeddings.embed_texts(CALIBRATION_TEXTS)
    graph = tmp_path / "model-int8w7-ort1.onnx"
    measuring, release = threading.Event(), threading.Event()

    def slow_encoders():
        measuring.set()
        release.wait(30)
        return Measured(vectors), Measured(vectors)

    decisions = {}
    first = threading.Thread(target=lambda: decisions.update(first=precision.decide(graph, slow_encoders)))
    second = threading.Thread(target=lambda: decisions.update(
        second=precision.decide(graph, lambda: pytest.fail("measured twice"))))
    # when
    first.start()
    assert measuring.wait(30)
    second.start()
    release.set()
    first.join(30)
    second.join(30)
    # then: the second read what the first kept (had it measured, it would have failed and set nothing)
    assert decisions["first"] == decisions["second"]


def test_a_damaged_decision_file_is_measured_again(tmp_path):
    # given
    vectors = embeddings.embed_texts(CALIBRATION_TEXTS)
    graph = tmp_path / "model-int8w7-ort1.onnx"
    precision.decision_file(graph).write_text("{not json")
    # when
    decision = precision.decide(graph, lambda: (Measured(vectors), Measured(vectors)))
    # then
    assert decision.precision in ("int8", "float32")
    assert json.loads(precision.decision_file(graph).read_text())["precision"] == decision.precision


def test_auto_measures_both_real_graphs_on_this_machine(settings, tmp_path, caplog, fresh_encoder):
    # given
    settings.DATA_DIR = tmp_path
    settings.TMWS_EMBEDDING_PRECISION = "auto"
    # when
    with caplog.at_level(logging.INFO, logger="memories.embeddings"):
        encoder = embeddings.get_encoder()
    # then: which precision wins is this CPU's business; that it was measured and said is not
    measured = encoder.decision.measured
    assert set(measured) == {"cpu", "cpu_flags", "float32_texts_per_second", "int8_texts_per_second",
                             "cosine_min", "cosine_mean", "texts"}
    assert measured["float32_texts_per_second"] > 0 and measured["int8_texts_per_second"] > 0
    assert 0.9 < measured["cosine_min"] <= measured["cosine_mean"] < 0.9999
    assert encoder.decision == precision.judge(measured)
    assert encoder.precision == encoder.decision.precision
    assert (f"Embedding model all-MiniLM-L6-v2: onnx backend at {encoder.precision} ({encoder.decision.reason})."
            in caplog.text)
    int8_graph = embeddings.onnx_graph(embeddings.get_model(), precision="int8")  # made already: returned
    assert json.loads(precision.decision_file(int8_graph).read_text()) == encoder.decision.as_dict()


def test_auto_follows_the_kept_decision_and_warns_when_it_is_float32(settings, tmp_path, caplog, fresh_encoder):
    # given: this machine was measured before, and int8 did not pay
    settings.DATA_DIR = tmp_path
    settings.TMWS_EMBEDDING_PRECISION = "auto"
    int8_graph = embeddings.onnx_graph(embeddings.get_model(), precision="int8")
    kept = precision.Decision("float32", "int8 is not faster enough on this CPU (kept)", {"cosine_min": 0.99})
    precision.decision_file(int8_graph).write_text(json.dumps(kept.as_dict()))
    # when
    with caplog.at_level(logging.WARNING, logger="memories.embeddings"):
        encoder = embeddings.get_encoder()
    # then
    assert (encoder.precision, encoder.decision) == ("float32", kept)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == [
        "Embedding model all-MiniLM-L6-v2: onnx backend at float32 (int8 is not faster enough on this CPU (kept))."
    ]
    assert embeddings.loaded_status() == {
        "model": "all-MiniLM-L6-v2", "backend": "onnx", "precision": "float32",
        "reason": "int8 is not faster enough on this CPU (kept)", "graph": str(encoder.graph),
    }


def test_a_repeated_query_is_embedded_once_and_its_vector_cannot_be_changed(settings):
    embeddings.query_cache.clear()
    first = embeddings.embed_query("Who signs off the quarterly budget?", asker=1)
    again = embeddings.embed_query("Who signs off the quarterly budget?", asker=1)
    assert again is first  # the cached vector itself: the model did not run again
    assert np.array_equal(first, embeddings.embed_queries(["Who signs off the quarterly budget?"])[0])
    with pytest.raises(ValueError):
        first[0] = 1.0
    other = embeddings.embed_query("Where are the deploy keys kept?", asker=1)
    assert other is not first and not np.array_equal(other, first)


def test_the_query_cache_keeps_the_latest_queries_up_to_its_size(settings):
    settings.TMWS_QUERY_CACHE_SIZE = 2
    embeddings.query_cache.clear()
    oldest = embeddings.embed_query("first question", asker=1)
    kept = embeddings.embed_query("second question", asker=1)
    assert embeddings.embed_query("second question", asker=1) is kept
    embeddings.embed_query("third question", asker=1)  # pushes out the least recently used: "first question"
    assert embeddings.embed_query("second question", asker=1) is kept
    again = embeddings.embed_query("first question", asker=1)
    assert again is not oldest and np.array_equal(again, oldest)


def test_the_query_cache_can_be_turned_off(settings):
    settings.TMWS_QUERY_CACHE_SIZE = 0
    embeddings.query_cache.clear()
    first = embeddings.embed_query("no cache for this one", asker=1)
    assert embeddings.embed_query("no cache for this one", asker=1) is not first
    assert len(embeddings.query_cache._entries) == 0


def test_one_callers_cached_query_is_never_anothers(settings):
    """A hit is faster and answers a shorter took_ms: shared entries would tell an agent what another asked."""
    embeddings.query_cache.clear()
    mine = embeddings.embed_query("Is the Berlin office closing?", asker=1)
    theirs = embeddings.embed_query("Is the Berlin office closing?", asker=2)
    assert theirs is not mine and np.array_equal(theirs, mine)
    assert embeddings.embed_query("Is the Berlin office closing?", asker=2) is theirs
    unnamed = embeddings.embed_query("Is the Berlin office closing?")  # no asker: never cached
    assert unnamed is not mine and unnamed is not theirs
    assert len(embeddings.query_cache._entries) == 2
