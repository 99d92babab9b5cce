"""llama.cpp pieces the backend builds on: loading with the AMX guard, chat templates, logits.

Split from :mod:`distalign.backends.llamacpp` (same import requirements).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import jinja2.sandbox
import numpy as np
import numpy.typing as npt

from distalign.backends.base import Message

try:
    import llama_cpp
    import llama_cpp.llama_cpp as llama_c
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the llama.cpp backend needs llama-cpp-python: pip install 'distalign[local]'"
    ) from error


# Loading patches a llama_cpp module attribute, so loads must not overlap.
_LOAD_LOCK = threading.Lock()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _without_extra_buffers() -> Iterator[None]:
    """While active, new llama.cpp models are loaded with ``use_extra_bufts = False``.

    Why: on CPUs with AMX, llama.cpp puts Q4_1 weights into its AMX "extra" buffer and then
    segfaults on any multi-token decode (llama-cpp-python 0.3.36). ``Llama(...)`` has no
    argument for the field; it builds its model params from ``llama_model_default_params()``
    during construction, so that function is wrapped for the duration. This also turns off the
    AVX2/AVX-512 weight repacking on other CPUs (slower prefill for Q4_K/Q4_0 models).
    """
    original = llama_c.llama_model_default_params

    def default_params_without_extra_buffers() -> llama_c.llama_model_params:
        params = original()
        params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        llama_c.llama_model_default_params = default_params_without_extra_buffers
        try:
            yield
        finally:
            llama_c.llama_model_default_params = original


def load_llama(path: Path, n_ctx: int, n_threads: int, n_threads_batch: int) -> llama_cpp.Llama:
    with _without_extra_buffers():
        llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
            logits_all=False,  # True would allocate n_ctx x n_vocab floats; we read one row
            verbose=False,
        )
    # The params struct handed to llama_model_load_from_file; fail loudly rather than segfault
    # later if a llama-cpp-python upgrade stops using the wrapped function.
    if llm._model.params.use_extra_bufts:
        llm.close()
        raise RuntimeError("could not turn off llama.cpp extra buffers (AMX crash guard)")
    return llm


def quantization_name(file_type: str | None) -> str | None:
    """ "3" -> "Q4_1", from llama.cpp's LLAMA_FTYPE_* constants."""
    if file_type is None:
        return None
    for name in dir(llama_c):
        if name.startswith("LLAMA_FTYPE_") and str(getattr(llama_c, name)) == file_type:
            return name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_")
    return f"file_type {file_type}"


def render_chat(template: str, messages: Sequence[Message], bos: str, eos: str) -> str:
    """Render messages with the model's chat template, ending where the reply starts."""
    prefill = ""
    if messages[-1]["role"] == "assistant":
        prefill = messages[-1]["content"]
        messages = messages[:-1]
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,  # as Hugging Face renders chat templates
    )
    environment.globals["raise_exception"] = _raise_template_error
    rendered = environment.from_string(template).render(
        messages=[dict(m) for m in messages],
        add_generation_prompt=True,
        bos_token=bos,
        eos_token=eos,
    )
    return rendered + prefill


def _raise_template_error(message: str) -> None:
    raise ValueError(f"chat template error: {message}")


def common_prefix_length(cached: npt.NDArray[np.intc], ids: Sequence[int]) -> int:
    n = min(len(cached), len(ids))
    differs = np.flatnonzero(cached[:n] != np.asarray(ids[:n], dtype=cached.dtype))
    return int(differs[0]) if differs.size else n


def log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    shifted = logits.astype(np.float64) - float(logits.max())
    return shifted - np.log(np.exp(shifted).sum())
