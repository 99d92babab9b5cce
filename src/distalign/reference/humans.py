"""The paper's human baseline: people estimating a group's answer distribution (spec §7).

Annotators saw the same questions as the models and set one slider (in percent) per option
for each group. distalign turns those Qualtrics exports into items-table rows with
``model="Humans"`` and ``method="human"``, scored exactly as the paper scored them, so a
model can be set beside humans on the OpinionQA + NYT subset (the paper's Table 2):

* H1: only the first 4 annotators with a complete block are used, in file order;
* H2: the "Democrat" estimate in the persona and few-shot surveys is the "Americans" block;
* H3: estimates are averaged and multiplied by 0.01, never renormalised;
* OpinionQA truths are the stored unsteered truths (alphabetical letters), NYT truths the
  group counts; the estimate is truncated to the truth's length and scored positionally.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.reference.files import OPINIONQA_SUBDIR, read_results
from distalign.results import Status, items_frame

HUMAN_DIR = "results/human_annotations"
N_ANNOTATORS = 4  # H1
SURVEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("nytimes", "none"): (
        "Distributional_Alignment_No_Steering - NYT_July 1, 2024_12.41.csv",
        "Distributional_Alignment_No_Steering - NYT - V2_July 2, 2024_18.52.csv",
    ),
    # H4: the July 2 persona export is not used
    ("nytimes", "persona"): (
        "Distributional_Alignment_Persona_Steering - NYT_July 3, 2024_10.32.csv",
    ),
    ("nytimes", "fewshot"): (
        "Distributional_Alignment_FewShot_Steering - NYT_July 17, 2024_10.52.csv",
    ),
    ("opinionqa", "none"): ("Distributional_Alignment_No_Steering_May 21, 2024_18.01.csv",),
    ("opinionqa", "persona"): ("Distributional_Alignment_Persona_Steering_May 21, 2024_19.06.csv",),
    ("opinionqa", "fewshot"): ("Distributional_Alignment_FewShot_Steering_May 21, 2024_18.00.csv",),
}
# Which slider block holds each group's estimate (H2: Democrats read from "Americans").
BLOCKS = {
    "POLPARTY=Democrat": "Q_NoSteering",
    "POLPARTY=Republican": "Q135",
    "SEX=Male": "Q136",
    "SEX=Female": "Q137",
    "RACE=Black": "Q138",
    "RACE=White": "Q139",
}
GROUPS = {
    "opinionqa": tuple(BLOCKS),
    "nytimes": ("POLPARTY=Democrat", "POLPARTY=Republican", "SEX=Male", "SEX=Female"),
}
N_SLIDERS = {"opinionqa": 7, "nytimes": 4}
NYT_COUNTS = "nytimes/NONE_data.json"  # book order = survey id order
UNSTEERED_V = (
    "results/opinionqa/express_distribution/gpt-3.5-turbo-0125/task0/"
    f"{OPINIONQA_SUBDIR}/NONE/Democrat.json"
)


def read_export(path: Path) -> list[dict[str, str]]:
    """A Qualtrics export without its two extra header rows (labels and ImportIds)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[2:]


def survey_ids(dataset: str, n_questions: int) -> list[int]:
    """Qualtrics question ids in dataset order: 1, then 103.. (NYT) or 4.. (OpinionQA)."""
    start = 103 if dataset == "nytimes" else 4
    return [1, *range(start, start + n_questions - 1)]


def estimate(
    rows: list[dict[str, str]], qid: int, block: str, n_sliders: int
) -> list[float] | None:
    """Mean of the first 4 complete slider rows of a block, times 0.01 (H1, H3)."""
    columns = [f"{qid}_{block}_{k}" for k in range(1, n_sliders + 1)]
    complete = [row for row in rows if all((row.get(c) or "").strip() for c in columns)]
    if not complete:
        return None
    kept = complete[:N_ANNOTATORS]
    values = np.array([[float(row[c]) for c in columns] for row in kept])
    return list(values.mean(axis=0) * 0.01)


def truths(data_dir: Path, dataset: str) -> dict[str, dict[str, list[float]]]:
    """question id -> group key -> truth, in the dataset's (survey id) order."""
    if dataset == "nytimes":
        books = read_results(data_dir / NYT_COUNTS)
        out: dict[str, dict[str, list[float]]] = {}
        for book, record in books.items():
            out[book] = {}
            for key in GROUPS["nytimes"]:
                counts = np.array(list(record[key.partition("=")[2]].values()), dtype=float)
                out[book][key] = list(counts / counts.sum())
        return out
    stored = read_results(data_dir / UNSTEERED_V)
    return {
        qid: {
            key: list(record.get(f"expected_results_{key.replace('=', '_')}", {}).values())
            for key in GROUPS["opinionqa"]
        }
        for qid, record in stored.items()
    }


def human_items(data_dir: Path) -> pd.DataFrame:
    """Every human (dataset, steering, group, question) item, scored as in spec §7.4."""
    rows: list[dict[str, Any]] = []
    for dataset in ("opinionqa", "nytimes"):
        truth = truths(data_dir, dataset)
        ids = dict(zip(truth, survey_ids(dataset, len(truth)), strict=True))
        for steering in ("none", "persona", "fewshot"):
            exports: list[dict[str, str]] = []
            for name in SURVEYS[(dataset, steering)]:
                exports.extend(read_export(data_dir / HUMAN_DIR / name))
            rows.extend(_survey_rows(dataset, steering, exports, truth, ids))
    return items_frame(rows)


def _survey_rows(
    dataset: str,
    steering: str,
    exports: list[dict[str, str]],
    truth: Mapping[str, Mapping[str, list[float]]],
    ids: Mapping[str, int],
) -> Iterator[dict[str, Any]]:
    for question, by_group in truth.items():
        for group in GROUPS[dataset]:
            # in the unsteered surveys every group uses the one "Americans" estimate
            block = "Q_NoSteering" if steering == "none" else BLOCKS[group]
            guess = estimate(exports, ids[question], block, N_SLIDERS[dataset])
            yield _row(dataset, steering, group, question, guess, list(by_group[group]))


def _row(
    dataset: str,
    steering: str,
    group: str,
    question: str,
    guess: list[float] | None,
    truth: list[float],
) -> dict[str, Any]:
    base = {
        "mode": "paper",
        "model": "Humans",
        "dataset": dataset,
        "steering": steering,
        "method": "human",
        "group": group,
        "question_id": question,
        "truth": truth,
    }
    if guess is None:
        return {**base, "status": Status.NOT_SCORED, "detail": "no complete annotation"}
    pred = guess[: len(truth)] if dataset == "opinionqa" else guess
    tv = 0.5 * float(np.abs(np.asarray(pred) - np.asarray(truth)).sum()) if truth else 0.0
    return {**base, "pred": pred, "status": Status.OK, "tv": tv, "detail": "first 4 annotators"}


def table2_humans(items: pd.DataFrame) -> dict[str, float]:
    """The Table 2 human value: ½ OpinionQA + ½ NYT over persona and few-shot items (§7.5)."""
    steered = items[items["steering"].isin(("persona", "fewshot")) & (items["status"] == Status.OK)]
    means = {str(d): float(part["tv"].mean()) for d, part in steered.groupby("dataset")}
    return {**means, "mean": float(np.mean(list(means.values())))}


def table2(
    paper_items: pd.DataFrame, humans: pd.DataFrame, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Table 2: Verbalize per model and the human row on OpinionQA + NYT (½ each, §6.5)."""
    from distalign.reference.paper import paper_leaderboard

    subset = ("opinionqa", "nytimes")
    verbalize = paper_items[
        (paper_items["method"] == "verbalize") & paper_items["dataset"].isin(subset)
    ]
    both = pd.concat([verbalize, humans], ignore_index=True)
    board = paper_leaderboard(both, n_boot=n_boot, seed=seed)
    return board.sort_values("mean").reset_index(drop=True)
