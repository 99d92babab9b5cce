"""Standard-mode import of the paper's raw outputs: distalign's own rules on the same replies.

Where paper mode scores the stored parsed predictions with the paper's quirks, standard mode:

* re-parses every raw reply with distalign's parsers (Verbalize, Sequence); Log-p records
  keep their stored per-letter probabilities (the raw top-20 tokens were not saved), are
  renormalised over the letters and record the covered mass;
* maps the letters each prompt showed back to the option texts, and scores against the
  canonical standard-mode truth (survey option order, every option of the question, GV
  groups as the actual countries) — aligned by option, never by position;
* counts parse failures as failures (never scored as 0.5);
* fits TS-Log-p temperatures by cross-fitting over questions;
* includes the unsteered runs, scored against every main group.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.data import Dataset, Group, Question, letters_for
from distalign.datasets import load_dataset
from distalign.datasets.reference import main_groups
from distalign.metrics import baseline_items, score_item
from distalign.metrics.complete import ts_logp_items
from distalign.parsing import Parsed, parse_sequence, parse_verbalized
from distalign.reference.files import (
    Record,
    ResultFile,
    load_result_files,
    read_opinionqa_groups,
)
from distalign.results import Status, items_frame

Results = Mapping[ResultFile, Mapping[str, Record]]


def load_reference_datasets(data_dir: Path) -> dict[str, Dataset]:
    return {name: load_dataset(name, data_dir) for name in ("opinionqa", "nytimes", "globalvalues")}


def standard_items(
    results_dir: Path,
    data_dir: Path,
    *,
    results: Results | None = None,
    temperature_folds: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Every stored reply re-parsed and scored with distalign's standard rules."""
    loaded = results if results is not None else load_result_files(results_dir)
    datasets = load_reference_datasets(data_dir)
    prompt_options = PromptOptions(data_dir, datasets)
    rows: list[dict[str, Any]] = []
    for file, records in loaded.items():
        if file.method == "ts_logp":
            continue  # refit below from the Log-p rows
        dataset = datasets[file.dataset]
        for qid, record in records.items():
            rows.extend(_record_rows(file, dataset, qid, record, prompt_options))
    frame = items_frame(rows)
    # TS-Log-p: refit from the Log-p rows, cross-fit over question folds (as for any run)
    scaled = ts_logp_items(frame, datasets, k=temperature_folds, seed=seed).items
    return pd.concat([frame, scaled], ignore_index=True)


class PromptOptions:
    """Which option text each letter of a stored prompt stood for."""

    def __init__(self, data_dir: Path, datasets: Mapping[str, Dataset]) -> None:
        self._pew = read_opinionqa_groups(data_dir)
        self._datasets = datasets

    def shown(self, file: ResultFile, question: Question) -> list[str]:
        if file.dataset != "opinionqa":
            return list(question.options)  # NYT and GV prompts used the MC order
        # D1/D2: the group's own option keys, alphabetical (the unsteered prompt used the
        # Democrat option set).
        attribute, _, value = file.group.partition("=")
        if attribute == "NONE":
            attribute, value = "POLPARTY", "Democrat"
        return sorted(self._pew[attribute][question.id][value])


def _record_rows(
    file: ResultFile, dataset: Dataset, qid: str, record: Record, options: PromptOptions
) -> Iterator[dict[str, Any]]:
    question = _question(dataset, qid, record)
    shown = options.shown(file, question)
    letters = letters_for(len(shown)) if shown else []
    parsed = _parse(file, record, letters)
    pred = _canonical(parsed, shown, question) if parsed.ok else None
    for group in _groups(file, dataset, question, record):
        target = dataset.target(group, question.id)
        base = {
            "mode": "standard",
            "model": file.model,
            "dataset": file.dataset,
            "steering": file.steering,
            "method": file.method,
            "group": group.key,
            "question_id": question.id,
            "letters": question.letters,
            "raw": _raw(record),
            "covered_mass": parsed.raw_sum if file.method == "logp" else None,
            "detail": parsed.detail,
        }
        if target is None:
            yield {**base, "status": Status.EMPTY_TRUTH, "detail": "no respondents in group"}
        elif pred is None:
            yield {**base, "truth": target.probs.tolist(), "status": Status.PARSE_FAILURE}
        else:
            scores = score_item(pred, target.probs, question.ordinal)
            yield {
                **base,
                "pred": pred,
                "truth": target.probs.tolist(),
                "n": target.n,
                "status": Status.OK,
                **scores,
            }


def _question(dataset: Dataset, qid: str, record: Record) -> Question:
    if dataset.name == "globalvalues":
        from distalign.datasets.reference import globalvalues_id

        return dataset.questions[globalvalues_id(qid)]
    return dataset.questions[qid]


def _raw(record: Record) -> str | None:
    response = record.get("response")
    if isinstance(response, list) and response:
        return str(response[0])
    return None


def _parse(file: ResultFile, record: Record, letters: list[str]) -> Parsed:
    if not letters:
        return Parsed.failure("question has no options for this group")
    if file.method == "logp":
        return _stored_logp(record, letters)
    raw = _raw(record)
    if raw is None:
        return Parsed.failure("no stored reply")
    if file.method == "verbalize":
        return parse_verbalized(raw, letters)
    return parse_sequence(raw, letters, n_expected=30)


def _stored_logp(record: Record, letters: list[str]) -> Parsed:
    """Per-letter probabilities from the stored top-20 merge, renormalised over the letters."""
    stored = record.get("actual_results") or {}
    mass = []
    for letter in letters:
        values = [v for v in stored.get(letter, []) if v is not None and np.isfinite(v)]
        mass.append(float(np.mean(values)) if values else 0.0)
    covered = float(sum(mass))
    if covered <= 0:
        return Parsed.failure("no probability on any option letter in the top 20", raw_sum=0.0)
    probs = [m / covered for m in mass]
    return Parsed.success(probs, f"covered mass {covered:.3f}", raw_sum=covered)


def _canonical(parsed: Parsed, shown: list[str], question: Question) -> list[float]:
    assert parsed.probs is not None
    out = [0.0] * len(question.options)
    for text, prob in zip(shown, parsed.probs, strict=True):
        out[question.options.index(text)] = prob
    return out


def _groups(file: ResultFile, dataset: Dataset, question: Question, record: Record) -> list[Group]:
    if file.steering == "none":
        return main_groups(dataset)  # the unsteered reply is scored against every group
    if file.dataset == "globalvalues":
        return [_country(question, record, dataset)]
    return [Group.parse(file.group)]


def _country(question: Question, record: Record, dataset: Dataset) -> Group:
    """The country whose truth the stored record holds (R3: slots are shifted in one run)."""
    stored = np.asarray(list((record.get("expected_results") or {}).values()), dtype=float)
    best, best_gap = None, np.inf
    for group in dataset.groups:
        target = dataset.target(group, question.id)
        if target is None or len(target.probs) != len(stored):
            continue
        gap = float(np.abs(target.probs - stored / max(stored.sum(), 1e-12)).sum())
        if gap < best_gap:
            best, best_gap = group, gap
    if best is None:
        raise ValueError(f"no country of {question.id} matches the stored truth")
    return best


def standard_baselines(data_dir: Path, seed: int = 0) -> pd.DataFrame:
    """distalign's corrected baselines on the main groups of the three reference datasets."""
    frames = []
    for dataset in load_reference_datasets(data_dir).values():
        frames.append(baseline_items(dataset, main_groups(dataset), seed=seed))
    return pd.concat(frames, ignore_index=True)
