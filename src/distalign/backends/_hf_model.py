"""Loading the transformers backend's model: where from, which dtype, and its fingerprint.

A GGUF file is dequantized by transformers on every load, which takes about 18 s for SmolLM2
on 2 CPU cores; loading the same weights saved as safetensors takes about 1 s. So the first
load of a GGUF file saves the dequantized model and its tokenizer to
``$DISTALIGN_MODEL_CACHE`` (the folder the llama.cpp backend keeps its Q8_0 copy in), named by
the file's SHA-256 and the dtype, and later loads read that copy. The model identity still
names the GGUF file and its SHA-256: the weights are the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from distalign.backends._models import file_sha256
from distalign.backends._requantize import model_cache_dir
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
    saved = None if source.gguf_path is None else dequantized_copy(source.gguf_path, dtype)
    if saved is not None and saved.is_dir():
        source = ModelSource(str(saved))
    extra = {} if source.gguf_file is None else {"gguf_file": source.gguf_file}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, **extra)
        model: Any = AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype, **extra)
    except ImportError as error:  # e.g. GGUF loading without the gguf package
        raise BackendUnavailableError(f"{error} ({hint})") from error
    if saved is not None and source.gguf_file is not None:
        save_copy(model, tokenizer, saved)
    return tokenizer, model.to(device).eval()


def dequantized_copy(gguf: Path, dtype: torch.dtype) -> Path:
    """Where the dequantized copy of a GGUF file is kept (it may not exist yet)."""
    name = str(dtype).removeprefix("torch.")
    return model_cache_dir() / f"{gguf.stem}.{name}.{file_sha256(gguf)[:16]}.hf"


def save_copy(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save model and tokenizer to ``folder``, whole or not at all (a failure only costs time)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        part = Path(tempfile.mkdtemp(dir=folder.parent, suffix=".part"))
    except OSError:
        return  # no writable cache folder: every load dequantizes again
    try:
        # save_pretrained refuses a model loaded from GGUF (it counts as quantized), so the
        # weights, config and generation config are written one by one, without the GGUF note.
        save_model(model, str(part / "model.safetensors"))  # handles the tied embeddings
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (part / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        model.generation_config.save_pretrained(part)
        tokenizer.save_pretrained(part)
        os.replace(part, folder)  # another process may have won the race: then keep theirs
    except OSError:
        pass
    finally:
        shutil.rmtree(part, ignore_errors=True)


def pad_id(tokenizer: Any) -> int:
    # Any id works (padded positions are masked out); EOS is SmolLM2's, as documented.
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    return int(pad or 0)
