"""Locate and read the paper's stored raw outputs (``results/``) and its group data files.

The paper repository names methods, steerings and groups by folder; this module maps them to
distalign's names (spec §0, §2.1) and says explicitly which stored files no table uses (R1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASETS = ("opinionqa", "nytimes", "globalvalues")

METHOD_NAMES: dict[str, str] = {
    "express_distribution": "verbalize",
    "sequence": "sequence",
    "model_logprobs": "logp",
    # Copies of the Log-p files with the temperature-scaled prediction (§5.4); paper mode
    # refits them, the stored copies serve as a check.
    "rescaled_model_logprobs": "ts_logp",
}
STEERING_NAMES: dict[str, str] = {"task0": "none", "task1": "persona", "task3_easy_hard": "fewshot"}
MODEL_DISPLAY_NAMES: dict[str, str] = {
    "gpt-4": "GPT-4",
    "gpt-3.5-turbo-0125": "GPT-3.5",
    "anthropic_opus": "Claude 3 Opus",
    "anthropic_haiku": "Claude 3 Haiku",
    "llama3-70b": "Llama-3-70B",
}

# The groups of the paper's tables (§1, §8), in the order the paper's code walks them.
MAIN_GROUPS: dict[str, tuple[str, ...]] = {
    "opinionqa": (
        "POLPARTY=Democrat",
        "POLPARTY=Republican",
        "SEX=Male",
        "SEX=Female",
        "RACE=Black",
        "RACE=White",
    ),
    "nytimes": ("POLPARTY=Democrat", "POLPARTY=Republican", "SEX=Male", "SEX=Female"),
    # Global values groups are per-question country slots, not countries (D10).
    "globalvalues": ("GV=0", "GV=1", "GV=2"),
}
# Unsteered runs exist once, stored as NONE/Democrat.json, and are scored against every group.
UNSTEERED_GROUP = "NONE=Democrat"

OPINIONQA_DIR = "opinions_qa/data/human_resp/Pew_American_Trends_Panel_disagreement_100"
OPINIONQA_SUBDIR = "Pew_American_Trends_Panel_disagreement_100"

Record = dict[str, Any]


@dataclass(frozen=True)
class ResultFile:
    """One stored results file, named in distalign's terms."""

    dataset: str
    method: str
    model: str
    steering: str
    group: str  # POLPARTY=Democrat, GV=0, or NONE=Democrat for the unsteered file
    path: Path

    @property
    def model_name(self) -> str:
        return MODEL_DISPLAY_NAMES[self.model]


@dataclass(frozen=True)
class ResultScan:
    """The files the paper's tables use, and every other file with the reason it is unused."""

    files: list[ResultFile]
    ignored: list[tuple[Path, str]]


def read_results(path: Path) -> dict[str, Record]:
    """Read a results file: question id -> record, in the file's (the dataset's) order.

    Six rescaled Log-p files hold bare ``NaN`` tokens (§2.2). Python's ``json`` accepts them
    (strict parsers do not), so the NaN survives and the item is dropped at scoring (§6.1).
    """
    with path.open(encoding="utf-8") as handle:
        records: dict[str, Record] = json.load(handle)
    return records


def scan_results(results_dir: Path) -> ResultScan:
    """Enumerate the used results files under ``results_dir``; unknown layouts raise."""
    files: list[ResultFile] = []
    ignored: list[tuple[Path, str]] = []
    for dataset in DATASETS:
        for path in sorted((results_dir / dataset).rglob("*.json")):
            parts = path.relative_to(results_dir / dataset).parts
            found = _classify(dataset, parts, path)
            if isinstance(found, str):
                ignored.append((path, found))
            else:
                files.append(found)
    return ResultScan(files, ignored)


def load_result_files(results_dir: Path) -> dict[ResultFile, dict[str, Record]]:
    """Read every used results file once (about 2 s for all 448 files)."""
    return {file: read_results(file.path) for file in scan_results(results_dir).files}


def _classify(dataset: str, parts: tuple[str, ...], path: Path) -> ResultFile | str:
    """Map one path to a ResultFile, or return why the paper's tables do not use it."""
    method, model, steering, *middle, attribute, leaf = parts
    if method not in METHOD_NAMES or model not in MODEL_DISPLAY_NAMES:
        raise ValueError(f"{path}: unknown method or model folder")
    if steering not in STEERING_NAMES:
        # R1: globalvalues/model_logprobs/llama3-70b/task3_easy_hard_v1 and _v2.
        if steering.startswith("task3_easy_hard_v"):
            return "R1: alternative Llama Global-values Log-p run, unused"
        raise ValueError(f"{path}: unknown steering folder {steering!r}")
    expected_middle = {"opinionqa": [OPINIONQA_SUBDIR], "nytimes": [], "globalvalues": []}
    if middle != expected_middle[dataset]:
        raise ValueError(f"{path}: unexpected folder layout")
    group = f"GV={leaf[:-5]}" if dataset == "globalvalues" else f"{attribute}={leaf[:-5]}"
    steering_name = STEERING_NAMES[steering]
    if steering_name == "none":
        if group != UNSTEERED_GROUP:
            raise ValueError(f"{path}: unsteered runs should be stored as NONE/Democrat.json")
    elif group not in MAIN_GROUPS[dataset]:
        return "R1: extra group, in no table"
    return ResultFile(dataset, METHOD_NAMES[method], model, steering_name, group, path)


def read_opinionqa_groups(data_dir: Path) -> dict[str, dict[str, Record]]:
    """OpinionQA group files of the 100 evaluated questions: attribute -> question -> record.

    Each record has ``MC_options`` (survey order, broken for 14 questions: D4) and one
    option -> count dict per group value (alphabetical keys; absent options omitted: D1, D2).
    """
    folder = data_dir / OPINIONQA_DIR
    return {
        attribute: read_results(folder / f"{attribute}_data.json")
        for attribute in ("POLPARTY", "SEX", "RACE")
    }


@dataclass(frozen=True)
class DatasetFiles:
    """The dataset files paper mode reads besides the results (§6.3 truths, n, the R3 check)."""

    opinionqa: dict[str, dict[str, Record]]  # attribute -> question -> record (100 questions)
    nytimes: dict[str, Record]  # book -> record
    globalvalues: dict[str, Record]  # question text -> record

    @classmethod
    def read(cls, data_dir: Path) -> DatasetFiles:
        opinionqa = read_opinionqa_groups(data_dir)
        # The four zero-filled NYT data files are identical copies (D8).
        nytimes = read_results(data_dir / "nytimes" / "NONE_data.json")
        globalvalues = read_results(data_dir / "Global_Values" / "data" / "data.json")
        return cls(opinionqa, nytimes, globalvalues)

    def counts(self, dataset: str, group: str, question_id: str) -> dict[str, float] | None:
        """Option -> respondent count of a group (``ATTR=value``); None for Global values.

        OpinionQA records also hold ``MC_options`` (survey order, broken for 14 questions: D4)
        and omit options nobody in the group chose; NYT counts are zero-filled.
        """
        attribute, _, value = group.partition("=")
        if dataset == "opinionqa":
            found: dict[str, float] = self.opinionqa[attribute][question_id][value]
            return found
        if dataset == "nytimes":
            found = self.nytimes[question_id][value]
            return found
        return None  # GlobalOpinionQA gives probabilities only
