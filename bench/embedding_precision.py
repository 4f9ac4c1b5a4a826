"""What each embedding precision costs and gives on this machine: `python -m bench.embedding_precision`.

    python -m bench.embedding_precision --out bench/results/embedding-precision.json   # LoCoMo dev turns (--data)

Prints one JSON document:

- `cpu`: the model name and the flags that decide ONNX Runtime's 8-bit kernels (avx2, avx512f,
  avx512_vnni, amx), and what `TMWS_EMBEDDING_PRECISION=auto` chooses here and why;
- `throughput`: texts per second at float32 and int8, one text per call (a search's query) and 32
  texts per call (an embedding job), the service's way (each text alone, texts side by side on the
  cores); for comparison, the padded batches of 32 that earlier versions ran (faster or not, their
  int8 vectors moved with the batch);
- `cosine_to_float32`: int8 against float32 vectors of every LoCoMo dev turn (min, p1, mean);
- `batch_independence`: the largest difference between a text embedded alone and the same text
  inside a call of 32 other turns (max absolute difference and min cosine), each precision, and the
  padded batches for comparison.

Interleaved rounds, best of each: the machine is shared and its speed wanders.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.figures import emit

DEFAULT_DATA = "../shared/data/locomo-dev/locomo-dev.json"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="LoCoMo JSON whose turns are embedded (not shipped)")
    parser.add_argument("--texts", type=int, default=512, help="turns timed per round (a fixed random sample)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="also write the JSON here")
    return parser.parse_args(argv)


def padded_batches(encoder, texts: list[str], size: int = 32) -> np.ndarray:
    """Earlier versions' way: texts of similar length padded into one run of the graph per batch, on every core."""
    import onnxruntime
    import torch

    if not hasattr(encoder, "all_cores_session"):
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        encoder.all_cores_session = onnxruntime.InferenceSession(str(encoder.graph), options,
                                                                 providers=["CPUExecutionProvider"])
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    vectors = np.empty((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        features = encoder.model.preprocess([texts[index] for index in chunk])
        (hidden,) = encoder.all_cores_session.run(None, {name: features[name].numpy() for name in encoder.inputs})
        features["token_embeddings"] = torch.from_numpy(hidden)
        with torch.inference_mode():
            for module in encoder.tail:
                features = module(features)
            vectors[chunk] = torch.nn.functional.normalize(features["sentence_embedding"], dim=1).numpy()
    return vectors


def rate(embed, texts: list[str]) -> float:
    started = time.perf_counter()
    embed(texts)
    return len(texts) / (time.perf_counter() - started)


def one_per_call(encoder):
    return lambda texts: [encoder.embed([text]) for text in texts]


def in_calls_of(encoder, size: int):
    return lambda texts: [encoder.embed(texts[start:start + size]) for start in range(0, len(texts), size)]


def independence(embed_alone, embed_batch, texts: list[str], companions: list[str]) -> dict:
    """Each text alone against the same text placed among 31 companions of mixed length."""
    worst_difference, worst_cosine = 0.0, 1.0
    for position, text in enumerate(texts):
        alone = embed_alone([text])[0]
        batch = companions[position:position + 31]
        batch.insert(position % 32, text)
        among = embed_batch(batch)[position % 32]
        worst_difference = max(worst_difference, float(np.abs(alone - among).max()))
        worst_cosine = min(worst_cosine, float(alone @ among))
    return {"texts": len(texts), "max_abs_difference": worst_difference, "min_cosine": round(worst_cosine, 6)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from django.conf import settings

    from bench.locomo import conversations
    from memories import embeddings, precision

    turns = [content for conversation in conversations(args.data) for _, content, _ in conversation["turns"]]
    sample = [turns[index] for index in np.random.default_rng(7).choice(len(turns), args.texts, replace=False)]
    with tempfile.TemporaryDirectory() as scratch:
        settings.DATA_DIR = Path(scratch)  # graphs made afresh: the recipe measured is this code's
        spec, model = embeddings._loaded()
        encoders = {name: embeddings.OnnxEncoder(model, spec, name) for name in ("float32", "int8")}
        for encoder in encoders.values():
            encoder.embed(sample[:64])
        ways = {"one_per_call": one_per_call, "32_per_call": lambda e: in_calls_of(e, 32),
                "padded_batches_of_32": lambda e: lambda texts: padded_batches(e, texts)}
        best = {(name, way): 0.0 for name in encoders for way in ways}
        for _ in range(args.rounds):
            for name, encoder in encoders.items():
                for way, make in ways.items():
                    best[name, way] = max(best[name, way], rate(make(encoder), sample))
        vectors = {name: encoder.embed(turns) for name, encoder in encoders.items()}
        cosines = (vectors["float32"] * vectors["int8"]).sum(axis=1)
        probes, companions = turns[::97][:24], turns[1::7][:24 + 31]
        independent = {
            name: independence(encoder.embed, encoder.embed, probes, companions) for name, encoder in encoders.items()
        }
        independent["int8_padded_batches_of_32"] = independence(
            encoders["int8"].embed, lambda texts: padded_batches(encoders["int8"], texts), probes, companions
        )
        decision = precision.judge(precision.measure(encoders["float32"], encoders["int8"]))
    document = {
        "machine": {"cpu": precision.cpu_model(), "cpu_flags": precision.cpu_flags(), "cores": embeddings.available_cores(),
                    "python": platform.python_version()},
        "auto_chooses": {"precision": decision.precision, "reason": decision.reason},
        "data": f"{args.data}: {len(turns)} turns; {len(sample)} of them timed per round, best of {args.rounds}",
        "throughput_texts_per_second": {
            name: {way: round(best[name, way], 1) for way in ways} for name in encoders
        },
        "int8_speedup_32_per_call": round(best["int8", "32_per_call"] / best["float32", "32_per_call"], 2),
        "cosine_to_float32": {
            "int8": {"min": round(float(cosines.min()), 4), "p1": round(float(np.percentile(cosines, 1)), 4),
                     "mean": round(float(cosines.mean()), 4), "texts": len(turns)},
        },
        "batch_independence": independent,
    }
    emit(document, args.out)
    return document


if __name__ == "__main__":
    main(sys.argv[1:])
