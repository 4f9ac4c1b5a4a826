"""What an embedding model costs: `python -m bench.embedding_models [MODEL ...]` prints one JSON document.

For each model (a TMWS_EMBEDDING_MODEL value: a known name or a folder) it loads the model the
way the service does (ONNX Runtime unless TMWS_EMBEDDING_BACKEND says otherwise) and measures:

- query latency: one short query at a time, as a search embeds it (p50/p95 in ms);
- ingest throughput: a few hundred memory texts embedded in model batches (texts per second).

Both also as CPU time, which holds on a shared machine where wall-clock figures wander.

`--bge-small-stand-in` measures a model of bge-small-en-v1.5's shape (12 BERT layers, 384 wide,
CLS pooling) with random weights, for when its files are not at hand: the cost of a transformer
does not depend on the values of its weights, only its vectors are meaningless.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import emit

# bge-small-en-v1.5's published architecture (its config.json): BERT, 12 layers, 384 wide, 12 heads.
BGE_SMALL_SHAPE = {"num_hidden_layers": 12, "hidden_size": 384, "intermediate_size": 1536,
                   "num_attention_heads": 12, "max_position_embeddings": 512}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["minilm"], help="TMWS_EMBEDDING_MODEL values (default minilm)")
    parser.add_argument("--bge-small-stand-in", action="store_true",
                        help="also measure a random-weight model of bge-small-en-v1.5's shape")
    parser.add_argument("--texts", type=int, default=400, help="memory texts for the throughput run")
    parser.add_argument("--queries", type=int, default=100, help="single queries for the latency run")
    parser.add_argument("--out", help="also write the JSON here")
    return parser.parse_args(argv)


def stand_in_folder(shape: dict, parent: Path) -> Path:
    """A sentence-transformers folder with MiniLM's tokenizer (the same BERT vocabulary) and random weights."""
    import shutil

    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    from memories.embeddings import BGE_QUERY_INSTRUCTION, KNOWN_MODELS

    tokenizer_source = Path(KNOWN_MODELS["minilm"][1]("minilm"))
    weights = parent / "weights"
    weights.mkdir()
    BertModel(BertConfig(vocab_size=30522, **shape)).save_pretrained(weights)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(tokenizer_source / name, weights / name)
    transformer = models.Transformer(str(weights), max_seq_length=512)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="cls")
    folder = parent / "bge-small-shape-random"
    # Its queries carry bge's instruction, so their latency includes the longer input.
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu",
                        prompts={"query": BGE_QUERY_INSTRUCTION, "document": ""}).save(str(folder))
    return folder


def measure(value: str, texts: list[str], queries: list[str]) -> dict:
    from django.conf import settings

    from memories import embeddings

    settings.TMWS_EMBEDDING_MODEL = value
    embeddings.unload()
    started = time.perf_counter()
    ready = embeddings.warm_up()
    load_seconds = time.perf_counter() - started
    timings = []
    cpu_began = time.process_time()
    for query in queries:
        began = time.perf_counter()
        embeddings.embed_query(query)
        timings.append((time.perf_counter() - began) * 1000)
    query_cpu_ms = (time.process_time() - cpu_began) * 1000 / len(queries)
    began, cpu_began = time.perf_counter(), time.process_time()
    embeddings.embed_texts(texts)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    timings.sort()
    return {
        "model": ready["model"], "backend": ready["backend"], "load_seconds_with_export": round(load_seconds, 1),
        "query_ms_p50": round(statistics.median(timings), 2),
        "query_ms_p95": round(timings[int(len(timings) * 0.95) - 1], 2),
        # CPU time (all threads of the process): what a query or a text costs, whatever else runs on the machine.
        "query_cpu_ms_mean": round(query_cpu_ms, 2),
        "ingest_texts_per_second": round(len(texts) / seconds, 1),
        "ingest_texts_per_cpu_second": round(len(texts) / cpu_seconds, 1),
        "threads": settings.TMWS_TORCH_THREADS or os.cpu_count(),
        "batch_size": settings.TMWS_EMBEDDING_BATCH_SIZE,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from bench import corpus

    texts = [row.content for row in corpus.build_rows(args.texts, seed=7)]
    queries = corpus.query_texts(args.queries)
    results = []
    from django.conf import settings

    with tempfile.TemporaryDirectory() as scratch:
        settings.DATA_DIR = Path(scratch)  # ONNX exports go to a scratch folder: load times include them
        values = list(args.models)
        if args.bge_small_stand_in:
            values.append(str(stand_in_folder(BGE_SMALL_SHAPE, Path(scratch))))
        for value in values:
            result = measure(value, texts, queries)
            if value not in args.models:
                result["stand_in_for"] = "bge-small-en-v1.5 (same shape, random weights: cost only)"
            results.append(result)
    document = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "texts": len(texts), "queries": len(queries),
        "mean_text_characters": round(sum(map(len, texts)) / len(texts)),
        "mean_query_characters": round(sum(map(len, queries)) / len(queries)),
        "results": results,
    }
    emit(document, args.out)
    return document


if __name__ == "__main__":
    main(sys.argv[1:])
