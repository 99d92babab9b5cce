"""Loading the transformers backend's model: where from, which dtype, and its fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from distalign.backends._models import file_sha256
from distalign.backends.base import BackendUnavailableError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` loads from: a folder or model id, and a GGUF file in it."""

    location: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return None if self.gguf_file is None else Path(self.location) / self.gguf_file


def gguf_source(path: Path) -> ModelSource:
    return ModelSource(str(path.resolve().parent), path.name)


def folder_sha256(folder: Path) -> str:
    """One SHA-256 over the names and contents of a model folder's weight files."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name.endswith(WEIGHT_SUFFIXES):
            digest.update(f"{path.relative_to(folder)}={file_sha256(path)}\n".encode())
    return digest.hexdigest()


def load_model(
    source: ModelSource, dtype: torch.dtype, device: torch.device, hint: str
) -> tuple[Any, Any]:
    """Tokenizer and model (in eval mode, on ``device``) from a folder, model id or GGUF file."""
    extra = {} if source.gguf_file is None else {"gguf_file": source.gguf_file}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, **extra)
        model: Any = AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype, **extra)
    except ImportError as error:  # e.g. GGUF loading without the gguf package
        raise BackendUnavailableError(f"{error} ({hint})") from error
    return tokenizer, model.to(device).eval()


def pad_id(tokenizer: Any) -> int:
    # Any id works (padded positions are masked out); EOS is SmolLM2's, as documented.
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    return int(pad or 0)
