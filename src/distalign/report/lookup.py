"""Question texts, option labels and rebuilt prompts for the report, from the runs' datasets."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.report.items import Source


class DatasetLookup:
    """Question texts (and, for runs, rebuilt prompts) from the datasets the results name.

    Best effort: the results table does not store question texts or prompts, so they come from
    the data folder recorded in each manifest; a folder that is gone leaves them blank.
    """

    def __init__(self, sources: Iterable[Source]) -> None:
        self.manifests = {str(s.path): s.manifest for s in sources}

    def question(self, source: str, dataset: str, question_id: str) -> Any | None:
        data = self.dataset(_data_dir(self.manifests.get(source, {})), dataset)
        return None if data is None else data.questions.get(question_id)

    def options(self, dataset: str, question_id: str) -> list[str] | None:
        for manifest in self.manifests.values():
            data = self.dataset(_data_dir(manifest), dataset)
            if data is not None and question_id in data.questions:
                return list(data.questions[question_id].options)
        return None

    @staticmethod
    @cache
    def dataset(data_dir: str | None, name: str) -> Any | None:
        from distalign.datasets import load_dataset

        if data_dir is None or not Path(data_dir).exists():
            return None
        try:
            return load_dataset(name, data_dir)
        except (OSError, ValueError, KeyError):
            return None

    def prompt(self, source: str, row: pd.Series) -> str | None:
        """The prompt a run sent, rebuilt with the run's settings (runs only)."""
        manifest = self.manifests.get(source, {})
        if manifest.get("kind") != "run":
            return None
        question = self.question(source, str(row["dataset"]), str(row["question_id"]))
        dataset = self.dataset(_data_dir(manifest), str(row["dataset"]))
        if question is None or dataset is None:
            return None
        return _rebuild_prompt(manifest, dataset, question, row)


def _data_dir(manifest: dict[str, Any]) -> str | None:
    value = manifest.get("data_dir") or manifest.get("config", {}).get("data_dir")
    return None if value is None else str(value)


def _rebuild_prompt(
    manifest: dict[str, Any], dataset: Any, question: Any, row: pd.Series
) -> str | None:
    from distalign.data import Group
    from distalign.errors import UnknownNameError
    from distalign.methods import get_method
    from distalign.steering import build_prompt

    config = manifest.get("config", {})
    steering = str(row["steering"])
    try:
        method = get_method("logp" if row["method"] == "ts_logp" else str(row["method"]))
    except UnknownNameError:  # a method registered by the run's own code, not known here
        return None
    seed = row.get("seed")
    prompt = build_prompt(
        dataset,
        question,
        None if steering == "none" else Group.parse(str(row["group"])),
        steering,  # type: ignore[arg-type]
        method,
        mode=config.get("prompt_mode", "standard"),
        n_sequence=int(config.get("n") or 30),
        seed=int(seed) if seed is not None and pd.notna(seed) else 0,
    )
    return messages_text(prompt.messages)


def messages_text(messages: Any) -> str:
    """Chat messages as plain text, one ``[role]`` block per message."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, np.ndarray):
        messages = messages.tolist()
    if isinstance(messages, list):
        return "\n\n".join(
            f"[{m.get('role', '?')}]\n{m.get('content', '')}" if isinstance(m, dict) else str(m)
            for m in messages
        )
    return str(messages)
