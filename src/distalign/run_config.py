"""The configuration of a run: the CLI flags and a TOML config file map onto it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from distalign.steering.orders import order_names


class RunConfig(BaseModel):
    """Everything that defines a run; the CLI flags and a TOML config file map onto it."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=lambda: ["embedded"], description="Model specs.")
    datasets: list[str] = Field(default_factory=lambda: ["opinionqa"])
    groups: list[str] | None = Field(None, description="Group keys; default the main groups.")
    steerings: list[Literal["none", "persona", "fewshot"]] = Field(
        default_factory=lambda: ["persona"]  # type: ignore[arg-type]
    )
    methods: list[str] = Field(default_factory=lambda: ["logp"])
    questions: int | None = Field(None, ge=1, description="Use only the first N questions.")
    seeds: list[int] = Field(default_factory=lambda: [0])
    n: int = Field(30, ge=1, description="Letters per Sequence, answers per Samples item.")
    retries: int = Field(
        2, ge=0, description="Extra attempts (new requests) for a malformed output."
    )
    request_passes: int = Field(
        1, ge=0, description="Extra passes over calls that failed for good, before the run ends."
    )
    prompt_mode: Literal["standard", "paper"] = "standard"
    option_orders: int | list[str] = Field(
        1,
        description="Option orders per item: K (survey, reversed, shift1, ...) or their names.",
    )
    data_dir: str | None = None
    out: str = "results/run"
    cache: str | None = Field(None, description="Cache file; default <out>/cache.sqlite.")
    prices: str | None = Field(None, description="TOML/JSON price file overriding the table.")
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the backend, e.g. n_threads for llama.cpp."
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for llama.cpp models (embedded, gguf:); APIs ignore it.",
    )

    @field_validator("option_orders")
    @classmethod
    def _check_orders(cls, value: int | list[str], info: ValidationInfo) -> int | list[str]:
        if len(order_names(value)) > 1 and info.data.get("prompt_mode") == "paper":
            raise ValueError("paper mode keeps the paper's option order: use one option order")
        return value

    def order_names(self) -> list[str]:
        """The option orders each item is asked in, ``survey`` first."""
        return order_names(self.option_orders)

    def cache_path(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "cache.sqlite"

    def options_for(self, model: str) -> dict[str, Any]:
        """The backend options for one model: ``threads`` reaches llama.cpp models only."""
        options = dict(self.backend_options)
        if self.threads is not None and model.partition(":")[0].strip().lower() in _LLAMACPP:
            options.update(n_threads=self.threads, n_threads_batch=self.threads)
        return options


_LLAMACPP = ("embedded", "gguf")
