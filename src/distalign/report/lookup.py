"""Question texts, option labels and rebuilt prompts for the report, from the runs' datasets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.errors import DistalignError
from distalign.report.items import Source


class DatasetLookup:
    """Question texts (and, for runs, rebuilt prompts) from the datasets the results name.

    Best effort: the results table does not store question texts or prompts, so they come from
    the datasets the run read, found the way the run found them (:func:`dataset_sources`); a
    dataset that is gone leaves them blank.
    """

    def __init__(self, sources: Iterable[Source]) -> None:
        self.manifests = {str(s.path): s.manifest for s in sources}

    def question(self, source: str, dataset: str, question_id: str) -> Any | None:
        data = self.dataset_of(source, dataset)
        return None if data is None else data.questions.get(question_id)

    def options(self, dataset: str, question_id: str) -> list[str] | None:
        for source in self.manifests:
            data = self.dataset_of(source, dataset)
            if data is not None and question_id in data.questions:
                return list(data.questions[question_id].options)
        return None

    def dataset_of(self, source: str, name: str) -> Any | None:
        """The dataset ``name`` as the results folder ``source`` read it, or None."""
        manifest = self.manifests.get(source, {})
        for spec, data_dir in dataset_sources(Path(source), manifest, name):
            data = self.dataset(spec, data_dir)
            if data is not None:
                return data
        return None

    @staticmethod
    @cache
    def dataset(spec: str, data_dir: str | None) -> Any | None:
        """A registered dataset from ``data_dir`` or a user file (``spec`` a path); None if
        it cannot be read."""
        from distalign.datasets import load_dataset

        try:
            return load_dataset(Path(spec) if data_dir is None else spec, data_dir)
        except (OSError, ValueError, KeyError, DistalignError):
            return None

    def prompt(self, source: str, row: pd.Series) -> str | None:
        """The prompt a run sent, rebuilt with the run's settings (runs only)."""
        manifest = self.manifests.get(source, {})
        if manifest.get("kind") != "run":
            return None
        question = self.question(source, str(row["dataset"]), str(row["question_id"]))
        dataset = self.dataset_of(source, str(row["dataset"]))
        if question is None or dataset is None:
            return None
        return _rebuild_prompt(manifest, dataset, question, row)


def dataset_sources(
    folder: Path, manifest: dict[str, Any], name: str
) -> Iterator[tuple[str, str | None]]:
    """Where the dataset ``name`` of a results folder can be read, most faithful first, as
    ``(spec, data_dir)``: a user file (``data_dir`` None) that the run's configured datasets
    name with this stem, then a registered dataset from the data folder the manifest records,
    then from the folder distalign picks today (``$DISTALIGN_DATA``, else the user cache)."""
    from distalign.datasets import available_datasets
    from distalign.datasets.location import chosen_data_dir

    for entry in manifest.get("config", {}).get("datasets") or []:
        if str(entry) not in available_datasets() and Path(str(entry)).stem == name:
            for path in _user_file(folder, manifest, Path(str(entry))):
                yield str(path), None
    if name not in available_datasets():
        return
    recorded = manifest.get("data_dir") or manifest.get("config", {}).get("data_dir")
    dirs = [Path(str(recorded)).expanduser()] if recorded else []
    for data_dir in dict.fromkeys([*dirs, chosen_data_dir()]):
        if data_dir.is_dir():
            yield name, str(data_dir.resolve())


def _user_file(folder: Path, manifest: dict[str, Any], entry: Path) -> list[Path]:
    """``entry`` as the run saw it: absolute, or relative to the folder the run started in
    (found from the run's ``out`` setting), the working directory or the results folder."""
    if entry.is_absolute():
        return [entry] if entry.is_file() else []
    bases = [Path.cwd(), folder.resolve()]
    out = Path(str(manifest.get("config", {}).get("out") or ""))
    here = folder.resolve()
    if out.parts and not out.is_absolute() and here.parts[-len(out.parts) :] == out.parts:
        bases.insert(0, here.parents[len(out.parts) - 1])
    found = [(base / entry).resolve() for base in bases if (base / entry).is_file()]
    return list(dict.fromkeys(found))


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
