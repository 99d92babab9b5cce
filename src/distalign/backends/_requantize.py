"""Re-quantize a GGUF model once (llama.cpp's C API) and reuse the file.

Why: SmolLM2's shipped weights are Q4_1, for which llama.cpp has no fast CPU kernel. The same
weights as Q8_0 evaluate prompts about twice as fast on a 2-core AVX2 CPU (measured 500–530 vs
250–290 tokens/s, benchmarks/README.md) and are closer to the Q4_1 values than any 4-bit
format: every Q4_1 weight is one of 16 levels per block of 32, which 8-bit levels resolve
to within 1/254 of the block's range. Quantizing takes about 0.3 s.

The file goes to ``$DISTALIGN_MODEL_CACHE`` (default ``~/.cache/distalign/models``), named by
the source file's SHA-256, written under a temporary name and renamed, so concurrent runs
never read half a file. Its own SHA-256 is kept beside it for the model identity.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

from distalign.backends._models import file_sha256
from distalign.backends.base import BackendUnavailableError

FTYPES = {"Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def model_cache_dir() -> Path:
    if os.environ.get("DISTALIGN_MODEL_CACHE"):
        return Path(os.environ["DISTALIGN_MODEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "distalign" / "models"


def requantized(source: Path, source_sha256: str, target: str) -> tuple[Path, str]:
    """The path and SHA-256 of ``source`` re-quantized to ``target`` (made on first use)."""
    if target not in FTYPES:
        raise ValueError(f"quantization must be one of {sorted(FTYPES)}, got {target!r}")
    folder = model_cache_dir()
    out = folder / f"{source.stem}.{target}.{source_sha256[:16]}.gguf"
    digest = out.with_suffix(".sha256")
    if out.is_file() and digest.is_file():
        return out, digest.read_text().strip()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _quantize(source, out, target)
        sha256 = file_sha256(out)
        _write_atomic(digest, sha256 + "\n")
    except OSError as error:
        raise BackendUnavailableError(
            f"cannot write the {target} copy of {source.name} to {folder} ({error}); set "
            f"DISTALIGN_MODEL_CACHE to a writable folder, or pass quantization='shipped'"
        ) from None
    return out, sha256


def _quantize(source: Path, out: Path, target: str) -> None:
    import llama_cpp.llama_cpp as llama_c
    from llama_cpp._utils import suppress_stdout_stderr

    params = llama_c.llama_model_quantize_default_params()
    params.ftype = getattr(llama_c, FTYPES[target])
    params.allow_requantize = True
    handle, name = tempfile.mkstemp(dir=out.parent, suffix=".part")
    os.close(handle)
    try:
        with suppress_stdout_stderr(disable=False):  # llama.cpp prints every tensor
            code = llama_c.llama_model_quantize(
                str(source).encode(), name.encode(), ctypes.byref(params)
            )
        if code != 0:
            raise BackendUnavailableError(f"llama.cpp could not quantize {source} ({code})")
        os.replace(name, out)
    finally:
        Path(name).unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(name, path)
