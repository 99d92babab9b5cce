"""Knowledge versus sampling on the paper's stored replies: the simulated sampler, the gap split
and steerability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distalign.metrics.baselines import expected_sampling_tv
from distalign.metrics.bootstrap import paired_replicates
from distalign.metrics.joint import joint_means
from distalign.metrics.knowledge import SIMULATED, knowledge_table, simulated_sampler
from distalign.metrics.steerability import pair_items, steerability_table
from distalign.reference.standard import standard_items
from distalign.results import Status, items_frame, save_items

N_BOOT = 200


@pytest.fixture(scope="module")
def items(reference_dir: Path) -> pd.DataFrame:
    """The standard-mode import of the paper's raw replies (models only)."""
    frame = standard_items(reference_dir / "results", reference_dir, seed=0)
    return frame[frame["model"] != "baseline"].reset_index(drop=True)


@pytest.fixture(scope="module")
def gpt4(items: pd.DataFrame) -> pd.DataFrame:
    return items[items["model"] == "gpt-4"].reset_index(drop=True)


# --- the simulated sampler -------------------------------------------------------------------


def test_sampler_with_many_draws_reproduces_verbalize_tv(gpt4: pd.DataFrame) -> None:
    verbalize = gpt4[(gpt4["method"] == "verbalize") & (gpt4["status"] == Status.OK)]
    sim = simulated_sampler(verbalize, n=200_000, seed=3)
    assert (sim["method"] == SIMULATED).all() and (sim["status"] == Status.OK).all()
    diff = np.abs(sim["tv"].to_numpy() - verbalize["tv"].to_numpy())
    assert len(diff) > 4000
    assert diff.mean() < 0.002 and diff.max() < 0.02


def test_sampler_with_30_draws_adds_the_expected_sampling_error(gpt4: pd.DataFrame) -> None:
    verbalize = gpt4[(gpt4["method"] == "verbalize") & (gpt4["status"] == Status.OK)].head(600)
    sim = simulated_sampler(verbalize, n=30, seed=0)
    pred = [np.asarray(p) for p in verbalize["pred"]]
    drawn = [np.asarray(p) for p in sim["pred"]]
    assert all(np.allclose(d * 30, np.round(d * 30)) for d in drawn)  # counts of 30 draws
    observed = np.mean(
        [0.5 * np.abs(d - p / p.sum()).sum() for d, p in zip(drawn, pred, strict=True)]
    )
    rng = np.random.default_rng(0)
    expected = np.mean([expected_sampling_tv(p, 30, rng, n_sim=200) for p in pred])
    assert abs(observed - expected) < 0.01
    assert sim["tv"].mean() > verbalize["tv"].mean()  # sampling noise costs accuracy


def test_sampler_is_seeded_per_item(gpt4: pd.DataFrame) -> None:
    verbalize = gpt4[gpt4["method"] == "verbalize"]
    full = simulated_sampler(verbalize, seed=1)
    again = simulated_sampler(verbalize.iloc[::7], seed=1)  # a subset draws the same answers
    assert full.iloc[::7]["pred"].tolist() == again["pred"].tolist()
    other = simulated_sampler(verbalize.iloc[::7], seed=2)
    assert other["pred"].tolist() != again["pred"].tolist()
    # unscored Verbalize rows stay unscored, with their status
    failed = verbalize["status"] != Status.OK
    assert (
        full.loc[failed.to_numpy(), "status"].to_numpy() == verbalize.loc[failed, "status"]
    ).all()
    with pytest.raises(ValueError, match="`n` must be a positive integer"):
        simulated_sampler(verbalize, n=0)


# --- the gap split ---------------------------------------------------------------------------


def test_gap_split_multiplies_to_the_gap(items: pd.DataFrame) -> None:
    table = knowledge_table(items, n_boot=N_BOOT)
    assert set(table["model"]) == {
        "gpt-3.5-turbo-0125",
        "gpt-4",
        "anthropic_haiku",
        "anthropic_opus",
        "llama3-70b",
    }
    np.testing.assert_allclose(
        1 + table["gap"], (1 + table["sampling"]) * (1 + table["model_part"]), rtol=1e-12
    )
    for name in ("gap", "sampling", "model_part"):
        assert (table[f"{name}_low"] <= table[name]).all()
        assert (table[name] <= table[f"{name}_high"]).all()
    pooled = table[table["steering"] == "persona+fewshot"].set_index("model")
    # 30 draws alone cost every model 9-16% on persona + few-shot
    assert pooled["sampling"].between(0.05, 0.2).all()
    assert (pooled["sampling_low"] > 0).all()
    # Opus's sequences are much worse than 30 draws from its own Verbalize answer
    assert pooled.loc["anthropic_opus", "model_part_low"] > 0.2


def test_gap_split_with_many_draws_leaves_the_whole_gap_to_the_model(gpt4: pd.DataFrame) -> None:
    table = knowledge_table(gpt4, n=100_000, n_boot=50).set_index("steering")
    assert table["sampling"].abs().max() < 0.01
    np.testing.assert_allclose(table["model_part"], table["gap"], atol=0.012)


def test_gap_split_takes_the_sequence_length_per_model(gpt4: pd.DataFrame) -> None:
    table = knowledge_table(gpt4, n={"gpt-4": 10}, n_boot=20)
    assert (table["n"] == 10).all()
    longer = knowledge_table(gpt4, n=30, n_boot=20)
    # fewer draws, more sampling error
    assert (table["sampling"].to_numpy() > longer["sampling"].to_numpy()).all()


def test_joint_replicates_match_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(0)
    a = [rng.random((20, 3, 2)), rng.random((15, 4, 1))]
    b = [t + rng.normal(0, 0.1, t.shape) for t in a]
    a[0][2, 1, 0] = np.nan
    joint = joint_means([a, b], n_boot=100, seed=5, mode="cluster")
    reps_a, reps_b = paired_replicates(a, b, n_boot=100, seed=5, mode="cluster")
    np.testing.assert_allclose(joint.replicates[0], reps_a)
    np.testing.assert_allclose(joint.replicates[1], reps_b)
    assert joint.n_shared == 20 * 3 * 2 - 1 + 15 * 4


# --- steerability ----------------------------------------------------------------------------


def test_identical_predictions_for_both_groups_have_zero_steerability(gpt4: pd.DataFrame) -> None:
    persona = gpt4[gpt4["steering"] == "persona"].copy()
    first = persona.groupby(["method", "dataset", "question_id"])["pred"].transform("first")
    persona["pred"] = first
    table = steerability_table(persona, n_boot=N_BOOT)
    assert len(table) == 4  # verbalize, sequence, logp, ts_logp
    assert (table["model_tv"] == 0).all() and (table["ratio"] == 0).all()
    assert (table["ci_high"] == 0).all()
    assert (table["human_tv"] > 0.2).all()


def test_the_unsteered_reply_is_not_steerable(gpt4: pd.DataFrame) -> None:
    # the paper ran each unsteered prompt once and scored it against every group
    table = steerability_table(gpt4, steerings=("none",), n_boot=N_BOOT)
    assert not table.empty and (table["ratio"] == 0).all()


def test_predicting_the_truth_gives_ratio_one(gpt4: pd.DataFrame) -> None:
    oracle = gpt4[gpt4["method"] == "verbalize"].copy()
    oracle["pred"] = oracle["truth"]
    oracle["status"] = Status.OK
    table = steerability_table(oracle, n_boot=N_BOOT)
    np.testing.assert_allclose(table["ratio"], 1.0)
    np.testing.assert_allclose(table["direction"], 1.0)


def test_pairs_are_groups_of_one_attribute(gpt4: pd.DataFrame) -> None:
    pairs = pair_items(gpt4[gpt4["method"] == "verbalize"], steerings=("persona",))
    oqa = set(pairs.loc[pairs["dataset"] == "opinionqa", "pair"])
    assert oqa == {
        "POLPARTY=Democrat vs POLPARTY=Republican",
        "SEX=Female vs SEX=Male",
        "RACE=Black vs RACE=White",
    }
    assert set(pairs.loc[pairs["dataset"] == "nytimes", "attribute"]) == {"POLPARTY", "SEX"}
    gv = pairs[pairs["dataset"] == "globalvalues"]
    assert (gv["attribute"] == "COUNTRY").all() and gv["pair"].nunique() > 20


def test_steerability_on_the_reference_import(items: pd.DataFrame) -> None:
    table = steerability_table(items, n_boot=N_BOOT)
    assert len(table) == 5 * 2 * 2 + 3 * 2 * 2  # V, Seq for 5 models; Log-p, TS for 3; 2 steerings
    assert ((table["ci_low"] <= table["ratio"]) & (table["ratio"] <= table["ci_high"])).all()
    verbalize = table[(table["method"] == "verbalize") & (table["steering"] == "persona")]
    assert (verbalize["ratio"] < 1).all()  # persona Verbalize under-separates the groups
    assert (table["direction"] > 0).all()  # but always moves them the right way on average


def test_pairs_over_different_letters_are_left_out() -> None:
    base = {
        "mode": "standard",
        "model": "m",
        "method": "verbalize",
        "dataset": "d",
        "steering": "persona",
        "question_id": "q",
        "status": "ok",
        "tv": 0.1,
    }
    rows = [
        {**base, "group": "A=x", "letters": ["A", "B"], "pred": [1.0, 0.0], "truth": [0.5, 0.5]},
        {
            **base,
            "group": "A=y",
            "letters": ["A", "B", "C"],
            "pred": [0, 0, 1.0],
            "truth": [0, 0, 1],
        },
    ]
    assert pair_items(items_frame(rows)).empty
    rows[1].update(letters=["A", "B"], pred=[0.0, 1.0], truth=[0.25, 0.75])
    pairs = pair_items(items_frame(rows))
    assert pairs[["model_tv", "human_tv", "cosine"]].iloc[0].tolist() == pytest.approx([1, 0.25, 1])


# --- CLI and report --------------------------------------------------------------------------


def test_leaderboard_tables_use_the_runs_n(gpt4: pd.DataFrame, tmp_path: Path) -> None:
    from distalign.cli._knowledge import show_knowledge_tables

    folder = tmp_path / "run"
    save_items(gpt4, folder, {"kind": "run", "mode": "standard", "config": {"n": 12}})
    paper = tmp_path / "paper"
    save_items(gpt4.assign(mode="paper"), paper, {"mode": "paper"})
    show_knowledge_tables([folder, paper], tmp_path / "out", ci="cluster", n_boot=20, seed=0)
    split = pd.read_csv(tmp_path / "out" / "gap_split_run.csv")
    assert (split["n"] == 12).all() and set(split["model"]) == {"gpt-4"}
    steer = json.loads((tmp_path / "out" / "steerability_run.json").read_text())
    assert {row["method"] for row in steer} == {"verbalize", "sequence", "logp", "ts_logp"}
    assert not list((tmp_path / "out").glob("*paper*"))  # paper-mode folders are skipped


def test_report_tables(gpt4: pd.DataFrame, tmp_path: Path) -> None:
    from distalign.report.items import Source
    from distalign.report.knowledge import knowledge_tables

    source = Source(tmp_path, {"config": {"n": 15}}, ["standard"])
    frame = gpt4.assign(source=str(tmp_path))
    tables = knowledge_tables(frame, [source], n_boot=20, seed=0)
    assert [t.name for t in tables] == ["gap_split_standard", "steerability_standard"]
    assert (tables[0].frame["n"] == 15).all()
    assert "model_name" in tables[1].frame
    assert knowledge_tables(frame.assign(mode="paper"), [source], n_boot=20, seed=0) == []
