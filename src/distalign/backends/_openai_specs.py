"""Model specs and server kinds of the OpenAI-compatible backend (no SDK needed here).

A server kind says what a server's software supports beyond plain chat completions; the
backend's capabilities follow from it (see ``SERVER_KINDS`` and ``docs/backends.md``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from distalign.errors import ConfigError

SchemaFormat = Literal["json_schema", "json_object"]


@dataclass(frozen=True)
class ServerKind:
    """What a server's software supports beyond plain chat completions."""

    name: str
    schema_format: SchemaFormat | None  # how response_format carries a JSON schema, if at all
    seed: bool  # honours the ``seed`` parameter
    max_tokens_field: str = "max_tokens"
    # answers ``n`` > 1 with n choices for one prompt, billed once (the multi_sample capability)
    multi_sample: bool = False


SERVER_KINDS: dict[str, ServerKind] = {
    # OpenAI's reasoning models refuse max_tokens; max_completion_tokens works for all of them
    "openai": ServerKind("openai", "json_schema", True, "max_completion_tokens", True),
    "vllm": ServerKind("vllm", "json_schema", True, multi_sample=True),
    # llama.cpp's server refuses n != 1; llama-cpp-python's server silently drops n
    "llamacpp": ServerKind("llamacpp", "json_object", True),
    "generic": ServerKind("generic", None, False),
}

_SCHEMA_FORMATS: dict[str, SchemaFormat | None] = {
    "json_schema": "json_schema",
    "json_object": "json_object",
    "none": None,
}

_MODEL_AT_URLS = re.compile(r"^(?P<model>.+?)@(?P<urls>https?://.+)$")


def parse_compatible_argument(argument: str) -> tuple[str, list[str]]:
    """``"MODEL@URL1,URL2"`` -> ``("MODEL", ["URL1", "URL2"])``."""
    match = _MODEL_AT_URLS.match(argument.strip())
    if match is None:
        raise ConfigError(
            "an 'openai-compatible' spec is MODEL@URL[,URL...], e.g. "
            f"'openai-compatible:my-model@http://127.0.0.1:8000/v1', got {argument!r}"
        )
    urls = [check_url(url) for url in match["urls"].split(",") if url.strip()]
    return match["model"], urls


def check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise ConfigError(f"a base URL starts with http:// or https://, got {url!r}")
    host_part = rest.split("/", 1)[0]
    if "@" in host_part:
        # user:password@host would put a secret into the identity, the cache and the results
        raise ConfigError(
            "a base URL must not contain credentials; put the key into DISTALIGN_API_KEY"
        )
    return url


def check_server_option(options: Mapping[str, Any]) -> None:
    """The ``server`` and ``schema_format`` options name a known kind (see SERVER_KINDS)."""
    server = options.get("server")
    if server is not None and server not in SERVER_KINDS:
        raise ConfigError(
            f"unknown server kind {server!r} (backend option 'server'); "
            f"known: {', '.join(SERVER_KINDS)}"
        )
    schema_format = options.get("schema_format")
    if schema_format is not None and schema_format not in _SCHEMA_FORMATS:
        raise ConfigError(
            f"backend option 'schema_format' is json_schema, json_object or none, "
            f"not {schema_format!r}"
        )


def server_kind(server: str, schema_format: str | None, multi_sample: bool | None) -> ServerKind:
    """The kind ``server`` names, with the ``schema_format`` and ``multi_sample`` overrides."""
    if server not in SERVER_KINDS:
        raise ValueError(f"unknown server kind {server!r}; known: {', '.join(SERVER_KINDS)}")
    kind = SERVER_KINDS[server]
    if multi_sample is not None:
        kind = replace(kind, multi_sample=bool(multi_sample))
    if schema_format is None:
        return kind
    if schema_format not in _SCHEMA_FORMATS:
        raise ValueError(
            f"schema_format must be one of {list(_SCHEMA_FORMATS)}, not {schema_format!r}"
        )
    return replace(kind, schema_format=_SCHEMA_FORMATS[schema_format])
