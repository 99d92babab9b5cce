"""The paper's human baseline, rebuilt from the Qualtrics exports (spec §7)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distalign.reference.humans import HUMAN_DIR, human_items, survey_ids, table2


@pytest.fixture(scope="module")
def humans(reference_dir: Path) -> pd.DataFrame:
    return human_items(reference_dir)


def test_every_survey_item_is_scored(humans: pd.DataFrame) -> None:
    counts = humans.groupby(["dataset", "steering"]).size()
    assert set(counts.loc["nytimes"]) == {940}  # 235 books x 4 groups
    assert set(counts.loc["opinionqa"]) == {600}  # 100 questions x 6 groups
    assert (humans["status"] == "ok").all()
    assert humans["tv"].between(0, 1).all()


def test_survey_ids_follow_the_readme() -> None:
    assert survey_ids("nytimes", 235)[:3] == [1, 103, 104]
    assert survey_ids("nytimes", 235)[-1] == 336
    assert survey_ids("opinionqa", 100)[-1] == 102


def test_one_item_recomputed_by_hand(humans: pd.DataFrame, reference_dir: Path) -> None:
    # NYT persona survey, first book (survey id 1), Republicans (block Q135)
    path = (
        reference_dir
        / HUMAN_DIR
        / "Distributional_Alignment_Persona_Steering - NYT_July 3, 2024_10.32.csv"
    )
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))[2:]
    columns = [f"1_Q135_{k}" for k in range(1, 5)]
    complete = [r for r in rows if all(r[c].strip() for c in columns)][:4]
    guess = np.mean([[float(r[c]) for c in columns] for r in complete], axis=0) / 100
    books = json.loads((reference_dir / "nytimes" / "NONE_data.json").read_text())
    first = next(iter(books))
    counts = np.array(list(books[first]["Republican"].values()), dtype=float)
    expected = 0.5 * np.abs(guess - counts / counts.sum()).sum()
    row = humans[
        (humans.dataset == "nytimes")
        & (humans.steering == "persona")
        & (humans.group == "POLPARTY=Republican")
        & (humans.question_id == first)
    ]
    assert row["tv"].item() == pytest.approx(expected)


def test_democrats_are_read_from_the_americans_block(
    humans: pd.DataFrame, reference_dir: Path
) -> None:
    # H2: no Democrat block exists; the persona survey's "Americans" sliders stand in for it
    from distalign.reference.humans import estimate, read_export

    rows = read_export(
        reference_dir
        / HUMAN_DIR
        / "Distributional_Alignment_Persona_Steering_May 21, 2024_19.06.csv"
    )
    americans = estimate(rows, 1, "Q_NoSteering", 7)
    assert americans is not None
    persona = humans[(humans.dataset == "opinionqa") & (humans.steering == "persona")]
    first = persona.iloc[0]["question_id"]
    dem = persona[(persona.group == "POLPARTY=Democrat") & (persona.question_id == first)]
    pred = list(dem["pred"].item())
    assert pred == pytest.approx(americans[: len(pred)])


def test_table2_puts_humans_beside_models(humans: pd.DataFrame, reference_dir: Path) -> None:
    from distalign.reference import paper_items

    paper = paper_items(reference_dir / "results", reference_dir)
    board = table2(paper, humans, n_boot=100)
    assert "Humans" in set(board["model"])
    assert set(board["method"]) == {"verbalize", "human"}
    human = board[board.model == "Humans"].iloc[0]
    steered = humans[humans.steering.isin(["persona", "fewshot"])]
    by_dataset = steered.groupby("dataset")["tv"].mean()
    assert human["mean"] == pytest.approx(by_dataset.mean())


def test_report_table_sets_a_model_beside_humans(reference_dir: Path) -> None:
    from distalign.report.html import humans_table
    from distalign.results import items_frame

    rows = [
        {
            "mode": "paper",
            "model": "my-model",
            "dataset": dataset,
            "steering": steering,
            "method": "verbalize",
            "group": "POLPARTY=Democrat",
            "question_id": f"q{i}",
            "status": "ok",
            "tv": tv,
        }
        for dataset, tv in (("opinionqa", 0.2), ("nytimes", 0.4))
        for steering in ("persona", "fewshot")
        for i in range(5)
    ]
    table = humans_table(items_frame(rows), reference_dir, n_boot=50, seed=0)
    board = table.frame.set_index("model")
    assert board.loc["my-model", "mean"] == pytest.approx(0.3)  # ½ OpinionQA + ½ NYT
    assert "Humans" in board.index
    assert table.headline
