"""Paper mode must rebuild the paper's Table 1a from its stored outputs (spec §9)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distalign.reference import (
    MAIN_GROUPS,
    MODEL_DISPLAY_NAMES,
    ResultFile,
    baseline_items,
    fit_temperatures,
    load_result_files,
    paper_baselines,
    paper_gap,
    paper_items,
    paper_leaderboard,
    read_results,
    rescale_records,
    scan_results,
)
from distalign.reference.files import Record
from distalign.reference.paper import (
    bootstrap_equal_weight,
    discretization_tv,
    judge,
    majority_prediction,
    positional_tv,
    survey_order_truth,
    temperature_scale,
)
from distalign.results import ITEM_COLUMNS, Status

Results = dict[ResultFile, dict[str, Record]]

# Table 1a of the paper (spec §9.2): mean TV, persona + few-shot, three datasets.
TABLE_1A = {
    ("GPT-4", "verbalize"): 0.229,
    ("GPT-4", "sequence"): 0.278,
    ("GPT-4", "logp"): 0.550,
    ("GPT-4", "ts_logp"): 0.273,
    ("GPT-3.5", "verbalize"): 0.291,
    ("GPT-3.5", "sequence"): 0.318,
    ("GPT-3.5", "logp"): 0.455,
    ("GPT-3.5", "ts_logp"): 0.296,
    ("Claude 3 Opus", "verbalize"): 0.226,
    ("Claude 3 Opus", "sequence"): 0.325,
    ("Claude 3 Haiku", "verbalize"): 0.254,
    ("Claude 3 Haiku", "sequence"): 0.309,
    ("Llama-3-70B", "verbalize"): 0.244,
    ("Llama-3-70B", "sequence"): 0.328,
    ("Llama-3-70B", "logp"): 0.495,
    ("Llama-3-70B", "ts_logp"): 0.469,
}
# Baselines (spec §6.6): mean and 95% CI half-width.
BASELINES = {
    "uniform": (0.363, 0.007),
    "majority": (0.712, 0.013),
    "discretization": (0.115, 0.004),
}

# Spec §5.5: refitted temperatures per (model, dataset, steering).
TEMPERATURES = {
    "gpt-3.5-turbo-0125": {
        ("opinionqa", "persona"): 3.8197,
        ("opinionqa", "fewshot"): 6.2974,
        ("nytimes", "persona"): 10.0,
        ("nytimes", "fewshot"): 10.0,
        ("globalvalues", "persona"): 2.1196,
        ("globalvalues", "fewshot"): 3.8465,
        ("opinionqa", "none"): 3.2179,
        ("nytimes", "none"): 10.0,
    },
    "gpt-4": {
        ("opinionqa", "persona"): 9.6651,
        ("opinionqa", "fewshot"): 9.4569,
        ("nytimes", "persona"): 10.0,
        ("nytimes", "fewshot"): 10.0,
        ("globalvalues", "persona"): 6.3559,
        ("globalvalues", "fewshot"): 7.3295,
        ("opinionqa", "none"): 6.8872,
        ("nytimes", "none"): 10.0,
    },
    "llama3-70b": {
        ("opinionqa", "persona"): 7.1978,
        ("opinionqa", "fewshot"): 7.8209,
        ("nytimes", "persona"): 10.0,
        ("nytimes", "fewshot"): 10.0,
        ("globalvalues", "persona"): 3.8197,
        ("globalvalues", "fewshot"): 3.8197,
        ("opinionqa", "none"): 10.0,
        ("nytimes", "none"): 10.0,
    },
}

# Spec §6.2: unique persona + few-shot items per dataset, and the listed exceptions.
ITEM_COUNTS = {"opinionqa": 1198, "nytimes": 1880, "globalvalues": 600}
ITEM_COUNT_EXCEPTIONS = {
    ("llama3-70b", "verbalize", "opinionqa"): 1197,
    ("gpt-3.5-turbo-0125", "ts_logp", "opinionqa"): 1196,
    ("llama3-70b", "ts_logp", "globalvalues"): 590,
}


@pytest.fixture(scope="module")
def results(reference_dir: Path) -> Results:
    return load_result_files(reference_dir / "results")


@pytest.fixture(scope="module")
def items(reference_dir: Path, results: Results) -> pd.DataFrame:
    return paper_items(reference_dir / "results", reference_dir, results=results)


@pytest.fixture(scope="module")
def leaderboard(items: pd.DataFrame) -> pd.DataFrame:
    return paper_leaderboard(items, n_boot=1000, seed=0)


@pytest.fixture(scope="module")
def baselines(items: pd.DataFrame) -> pd.DataFrame:
    return paper_baselines(items, n_boot=1000, seed=0)


# --- hand-computed rules -------------------------------------------------------------------


def test_positional_tv_hand_cases() -> None:
    assert positional_tv([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5)
    assert positional_tv([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # S3: unnormalised predictions enter as they are: ½(|0−0.6| + |0−0.4|) = 0.5.
    assert positional_tv([0.0, 0.0], [0.6, 0.4]) == pytest.approx(0.5)
    # S1: a length mismatch is NaN (the paper then drops the item).
    assert math.isnan(positional_tv([0.2, 0.3, 0.5], [0.5, 0.5]))


def test_misaligned_keys_are_scored_by_position() -> None:
    # S1: a stored prediction {B: 0.7, A: 0.3} against truth {A: 0.7, B: 0.3} is compared
    # position by position, so it scores as a perfect match rather than TV 0.4.
    pred = {"B": 0.7, "A": 0.3}
    truth = {"A": 0.7, "B": 0.3}
    assert positional_tv(list(pred.values()), list(truth.values())) == 0.0


def test_judge_statuses() -> None:
    assert judge([0.5, 0.5], [1.0, 0.0]) == (Status.OK, "", pytest.approx(0.5))
    assert judge([0.5, 0.5], [])[0] == Status.EMPTY_TRUTH
    assert judge([], [1.0])[0] == Status.NOT_SCORED
    status, detail, tv = judge([0.2, 0.3, 0.5], [0.5, 0.5])
    assert (status, tv) == (Status.NOT_SCORED, None) and detail.startswith("S1")
    assert judge([math.nan, math.nan], [0.5, 0.5])[0] == Status.NOT_SCORED


def test_survey_order_truth_filters_by_prediction_letters() -> None:
    # §6.3: survey order, positions kept only if their letter is predicted, 0 for options the
    # group lacks (here the broken fragment "was a reason").
    counts = {"No": 30.0, "Refused": 10.0, "Yes": 60.0}
    letters, truth = survey_order_truth(
        ["A", "B", "C"], ["Yes", "was a reason", "No", "Refused"], counts
    )
    assert letters == ["A", "B", "C"]
    assert truth == pytest.approx([0.6, 0.0, 0.3])


def test_temperature_scale() -> None:
    # T = 2: sqrt([0.64, 0.36]) = [0.8, 0.6], normalised to [4/7, 3/7].
    assert temperature_scale([0.64, 0.36], 2.0) == pytest.approx([4 / 7, 3 / 7])
    assert all(math.isnan(v) for v in temperature_scale([0.0, 0.0], 2.0))  # R6/T3


def test_majority_prediction_breaks_ties_by_first_letter() -> None:
    assert majority_prediction([0.4, 0.4, 0.2]) == [1.0, 0.0, 0.0]


def test_discretization_tv_of_a_point_mass_is_zero() -> None:
    rng = np.random.default_rng(0)
    assert discretization_tv([0.0, 1.0], rng) == 0.0
    # Renormalised draws against the un-renormalised truth: a point mass at 0.5 scores 0.25.
    assert discretization_tv([0.5, 0.0], rng) == pytest.approx(0.25)


def test_bootstrap_is_equal_weight_and_seeded() -> None:
    lists = {"a": np.full(10, 0.2), "b": np.full(1000, 0.6)}
    replicates = bootstrap_equal_weight(lists, n_boot=50, rng=np.random.default_rng(1))
    assert replicates == pytest.approx(np.full(50, 0.4))  # not the item-weighted 0.596
    noisy = {"a": np.random.default_rng(2).random(40)}
    first = bootstrap_equal_weight(noisy, n_boot=20, rng=np.random.default_rng(3))
    again = bootstrap_equal_weight(noisy, n_boot=20, rng=np.random.default_rng(3))
    assert np.array_equal(first, again) and first.std() > 0


def _synthetic_items(dataset: str, tvs: list[float], **fields: str) -> list[dict[str, object]]:
    base = {"mode": "paper", "model": "m", "method": "verbalize", "steering": "persona"}
    return [
        {**base, "dataset": dataset, "question_id": str(i), "status": "ok", "tv": tv, **fields}
        for i, tv in enumerate(tvs)
    ]


def test_leaderboard_rules_on_synthetic_items() -> None:
    rows = [
        *_synthetic_items("opinionqa", [0.2] * 10),
        *_synthetic_items("globalvalues", [0.6] * 100),
        *_synthetic_items("opinionqa", [0.9] * 5, steering="none"),  # not in Table 1a
        *_synthetic_items("opinionqa", [0.9] * 5, status="not_scored"),
    ]
    board = paper_leaderboard(pd.DataFrame(rows), n_boot=200, seed=0)
    assert board["mean"].item() == pytest.approx(0.4)  # datasets weigh ⅓ each, not by size
    assert (board["n_opinionqa"].item(), board["n_globalvalues"].item()) == (10, 100)


def test_nyt_is_doubled_for_the_ci_only() -> None:
    # S5: 40 NYT items of TV 0 or 1, resampled as 80: half-width ≈ 1.96·√(0.25/80) = 0.110
    # (undoubled it would be 0.155); the mean and the reported count stay those of 40 items.
    board = paper_leaderboard(pd.DataFrame(_synthetic_items("nytimes", [0.0, 1.0] * 20)))
    assert board["mean"].item() == pytest.approx(0.5)
    assert board["n_nytimes"].item() == 40
    assert 0.095 <= board["half_width"].item() <= 0.125


# --- files ---------------------------------------------------------------------------------


def test_scan_maps_names_and_ignores_unused_files(reference_dir: Path) -> None:
    scan = scan_results(reference_dir / "results")
    assert len(scan.files) == 448
    reasons = pd.Series([reason for _, reason in scan.ignored]).value_counts()
    assert reasons.to_dict() == {
        "R1: extra group, in no table": 112,
        "R1: alternative Llama Global-values Log-p run, unused": 6,
    }
    assert {f.method for f in scan.files} == {"verbalize", "sequence", "logp", "ts_logp"}
    assert {f.steering for f in scan.files} == {"none", "persona", "fewshot"}
    assert {f.model_name for f in scan.files} == set(MODEL_DISPLAY_NAMES.values())
    for f in scan.files:
        assert (
            f.group == "NONE=Democrat"
            if f.steering == "none"
            else f.group in MAIN_GROUPS[f.dataset]
        )


def test_bare_nan_tokens_are_read(reference_dir: Path) -> None:
    path = (
        reference_dir / "results/opinionqa/rescaled_model_logprobs/gpt-3.5-turbo-0125/task1"
        "/Pew_American_Trends_Panel_disagreement_100/SEX/Female.json"
    )
    record = read_results(path)["USMILSIZ_W92"]
    assert all(math.isnan(v) for v in record["avg_actual_results"].values())


# --- Table 1a ------------------------------------------------------------------------------


def test_items_table_schema(items: pd.DataFrame) -> None:
    assert list(items.columns) == ITEM_COLUMNS
    assert set(items["mode"]) == {"paper"}
    assert set(items["status"]) == {"ok", "not_scored", "empty_truth"}
    ok = items["status"] == "ok"
    assert items.loc[ok, "tv"].notna().all() and items.loc[~ok, "tv"].isna().all()
    assert (items.loc[~ok, "detail"].str.len() > 0).all()


@pytest.mark.parametrize(("name", "method"), list(TABLE_1A))
def test_table_1a_mean(leaderboard: pd.DataFrame, name: str, method: str) -> None:
    row = leaderboard[(leaderboard["model_name"] == name) & (leaderboard["method"] == method)]
    assert len(row) == 1
    assert abs(row["mean"].item() - TABLE_1A[(name, method)]) <= 0.005
    # Spec §9.2: the paper's 95% CI half-widths are about 0.006 to 0.009.
    assert 0.005 <= row["half_width"].item() <= 0.010


def test_leaderboard_has_exactly_the_table_1a_rows(leaderboard: pd.DataFrame) -> None:
    assert set(zip(leaderboard["model_name"], leaderboard["method"], strict=True)) == set(TABLE_1A)
    assert set(leaderboard["ci_mode"]) == {"paper"}


def test_unique_item_counts(leaderboard: pd.DataFrame) -> None:
    for row in leaderboard.to_dict("records"):
        for dataset, count in ITEM_COUNTS.items():
            key = (str(row["model"]), str(row["method"]), dataset)
            assert row[f"n_{dataset}"] == ITEM_COUNT_EXCEPTIONS.get(key, count), key


def test_misaligned_and_mismatched_llama_verbalize_items(items: pd.DataFrame) -> None:
    # S1: in Table 1a's items, 2 Llama V OpinionQA items are scored misaligned and 1 has a
    # length mismatch (besides the empty-truth FEM2_W29 Male items).
    steered = items[items["steering"].isin(["persona", "fewshot"])]
    s1 = steered[steered["detail"].str.startswith("S1") | steered["detail"].str.contains("; S1")]
    assert set(s1["model"]) == {"llama3-70b"} and set(s1["method"]) == {"verbalize"}
    assert s1["status"].value_counts().to_dict() == {"ok": 2, "not_scored": 1}


def test_gap_table_is_seq_over_v(leaderboard: pd.DataFrame) -> None:
    gap = paper_gap(leaderboard).set_index("model_name")
    assert len(gap) == 5
    for name in gap.index:
        v = TABLE_1A[(name, "verbalize")]
        seq = TABLE_1A[(name, "sequence")]
        assert gap.loc[name, "gap"] == pytest.approx(seq / v - 1, abs=0.01)
        assert gap.loc[name, "gap"] == gap.loc[name, "sequence"] / gap.loc[name, "verbalize"] - 1


# --- temperature scaling -------------------------------------------------------------------


def test_refit_temperatures(results: Results) -> None:
    fits = fit_temperatures(results)
    found = {(r.model, r.dataset, r.steering): r.temperature for r in fits.itertuples()}
    expected = {
        (model, dataset, steering): t
        for model, table in TEMPERATURES.items()
        for (dataset, steering), t in table.items()
    }
    assert set(found) == set(expected)
    for key, temperature in expected.items():
        assert found[key] == pytest.approx(temperature, abs=1e-3), key
    nan_fits = {(r.model, r.dataset, r.steering) for r in fits.itertuples() if r.nan_objective}
    assert nan_fits == {  # T3: the 3.8197 fallback
        ("gpt-3.5-turbo-0125", "opinionqa", "persona"),
        ("llama3-70b", "globalvalues", "persona"),
        ("llama3-70b", "globalvalues", "fewshot"),
    }


def test_refit_reproduces_the_stored_rescaled_files(results: Results) -> None:
    fits = fit_temperatures(results).set_index(["model", "dataset", "steering"])["temperature"]
    logp = {
        (f.model, f.dataset, f.steering, f.group): r
        for f, r in results.items()
        if f.method == "logp"
    }
    stored = {f: r for f, r in results.items() if f.method == "ts_logp"}
    assert len(stored) == 84  # 3 models x (13 OpinionQA + 9 NYT + 6 GV files)
    for file, records in stored.items():
        key = (file.model, file.dataset, file.steering)
        refit = rescale_records(logp[(*key, file.group)], fits[key])
        for qid, record in records.items():
            want = list(record["avg_actual_results"].values())
            got = list(refit[qid]["avg_actual_results"].values())
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=f"{file} {qid}")


# --- baselines -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(BASELINES))
def test_baseline(baselines: pd.DataFrame, method: str) -> None:
    row = baselines[baselines["method"] == method]
    mean, half_width = BASELINES[method]
    assert abs(row["mean"].item() - mean) <= 0.005
    assert abs(row["half_width"].item() - half_width) <= 0.002


def test_baseline_item_counts(baselines: pd.DataFrame) -> None:
    counts = {
        str(row["method"]): [row["n_opinionqa"], row["n_nytimes"], row["n_globalvalues"]]
        for row in baselines.to_dict("records")
    }
    assert counts == {
        "uniform": [600, 940, 300],
        "majority": [600, 940, 300],
        "discretization": [215, 940, 300],
    }


def test_discretization_early_stop(items: pd.DataFrame) -> None:
    # S9: OpinionQA stops before GROWUPGUN2A_W26 (41st), and before FEM2_W29 (16th) for Male.
    rows = baseline_items(items)
    oqa = rows[(rows["method"] == "discretization") & (rows["dataset"] == "opinionqa")]
    questions = list(dict.fromkeys(items.loc[items["dataset"] == "opinionqa", "question_id"]))
    assert questions.index("GROWUPGUN2A_W26") == 40 and questions.index("FEM2_W29") == 15
    for group, block in oqa.groupby("group"):
        stop = 15 if group == "SEX=Male" else 40
        assert block["question_id"].tolist() == questions[:stop], group


def test_global_values_baselines_keep_the_r3_shifted_truths(items: pd.DataFrame) -> None:
    # R3: GPT-3.5 Sequence persona files 0 and 1 hold countries[1] and countries[2]; the
    # baselines must score against those stored truths, not data.json's slots.
    rows = baseline_items(items)
    gv = rows[(rows["method"] == "majority") & (rows["dataset"] == "globalvalues")]
    r3 = gv[gv["detail"].str.startswith("R3")]
    assert r3["group"].value_counts().to_dict() == {"GV=0": 100, "GV=1": 100}
    assert "countries[1]" in r3.loc[r3["group"] == "GV=0", "detail"].iloc[0]
