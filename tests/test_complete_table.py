"""The complete table for any run: TS-Log-p, baselines on the run's items, comparable rows.

On real data: one small run of the embedded model (3 OpinionQA questions x 2 groups, Log-p),
the paper's stored GPT-4 replies re-scored in standard mode, and a user survey file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from distalign.cli import app
from distalign.datasets import load_dataset
from distalign.metrics import fit_temperature
from distalign.metrics.baselines import BASELINES
from distalign.metrics.common import ITEM_KEYS, common_items, coverage
from distalign.metrics.complete import (
    COMPLEMENT_FILE,
    TEMPERATURES_FILE,
    complete_items,
    run_baselines,
    ts_logp_items,
)
from distalign.reference.files import load_result_files
from distalign.reference.standard import standard_items
from distalign.report import build_report
from distalign.results import items_frame, load_results, save_items

runner = CliRunner()
N_BOOT = 50
FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
GROUPS = ["POLPARTY=Democrat", "POLPARTY=Republican"]


@pytest.fixture(scope="module")
def run_dir(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the embedded model with Log-p: 3 questions x 2 groups, persona."""
    out = tmp_path_factory.mktemp("complete") / "run"
    args = ["run", "--data-dir", str(reference_dir), "--dataset", "opinionqa"]
    args += [a for g in GROUPS for a in ("--group", g)]
    args += ["--steering", "persona", "--method", "logp", "--questions", "3"]
    args += ["--threads", "1", "--n-boot", str(N_BOOT), "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def gpt4_opinionqa(reference_dir: Path) -> pd.DataFrame:
    """The paper's GPT-4 OpinionQA replies (all methods, 100 questions), standard mode."""
    loaded = load_result_files(reference_dir / "results")
    chosen = {f: r for f, r in loaded.items() if f.model == "gpt-4" and f.dataset == "opinionqa"}
    return standard_items(reference_dir / "results", reference_dir, results=chosen)


def test_a_run_with_logp_saves_ts_logp_rows_and_cross_fit_temperatures(run_dir: Path) -> None:
    items = load_results(run_dir)
    complement = pd.read_parquet(run_dir / COMPLEMENT_FILE)
    temps = pd.read_csv(run_dir / TEMPERATURES_FILE)
    ts = complement[complement["method"] == "ts_logp"]
    logp = items[items["method"] == "logp"]
    assert len(ts) == len(logp) == 6
    # three questions: three folds, each T fit on the other two questions only
    assert list(temps["fold"]) == [0, 1, 2] and set(temps["fit"]) == {"crossfit"}
    assert (temps["n_questions"] == 1).all()
    assert np.isfinite(temps["temperature"]).all() and (temps["temperature"] > 0).all()
    ok = ts[ts["status"] == "ok"]
    assert not ok.empty and ok["detail"].str.startswith("T=").all()
    # each scaled item's T is one of its block's fold temperatures, and scaling moved the TV
    item_t = ok["detail"].str.extract(r"T=([0-9.e+-]+)")[0].astype(float)
    assert set(item_t.round(3)) <= set(temps["temperature"].round(3))
    merged = ok.merge(logp, on=["group", "question_id"], suffixes=("_ts", "_logp"))
    assert not np.allclose(merged["tv_ts"], merged["tv_logp"])


def test_leaderboard_of_a_run_has_ts_logp_baselines_and_temperatures(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tables"
    result = runner.invoke(
        app, ["leaderboard", str(run_dir), "--n-boot", str(N_BOOT), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    board = pd.read_csv(out / "leaderboard_standard.csv")
    assert set(board["method"]) == {"logp", "ts_logp"}
    ts = board[board["method"] == "ts_logp"].iloc[0]
    assert np.isfinite(ts["mean"]) and ts["n_items"] == 6
    baselines = pd.read_csv(out / "baselines_standard.csv")
    assert set(baselines["method"]) == set(BASELINES)  # the noise floor too: OpinionQA has n
    assert (baselines["n_scored"] == 6).all()  # on the run's own 6 items, not the dataset's
    assert baselines["mean"].between(0, 1).all()
    temps = pd.read_csv(out / "temperatures_standard.csv")
    assert len(temps) == 1 and temps["n_scaled"].item() == 6
    assert "TS-Log-p temperatures" in result.output


def test_a_folder_without_a_saved_complement_is_completed_when_loaded(
    run_dir: Path, tmp_path: Path
) -> None:
    """Runs saved before complements existed get the same rows from their manifest's datasets."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("items.parquet", "manifest.json"):
        (old / name).write_bytes((run_dir / name).read_bytes())
    saved = pd.read_parquet(run_dir / COMPLEMENT_FILE)
    report = build_report([old], tmp_path / "r.html", n_boot=N_BOOT)
    tables = {t.name: t.frame for t in report.tables}
    assert set(tables["baselines_standard"]["method"]) == set(BASELINES)
    assert "ts_logp" in set(tables["leaderboard_standard_long"]["method"])
    assert not (old / COMPLEMENT_FILE).exists()  # loading never writes into a results folder
    uniform = tables["baselines_standard"].set_index("method").loc["uniform", "mean"]
    mine = saved[(saved["method"] == "uniform") & (saved["status"] == "ok")]["tv"].mean()
    assert uniform == pytest.approx(mine)


def test_reference_import_ts_logp_is_the_shared_cross_fit(gpt4_opinionqa: pd.DataFrame) -> None:
    ts = gpt4_opinionqa[gpt4_opinionqa["method"] == "ts_logp"]
    logp = gpt4_opinionqa[gpt4_opinionqa["method"] == "logp"]
    again = ts_logp_items(logp)
    assert len(again.items) == len(ts) == len(logp)
    np.testing.assert_allclose(
        again.items["tv"].astype(float), ts["tv"].astype(float), equal_nan=True
    )
    # no question is scaled with a temperature that saw it: refit each fold without it
    persona = again.temperatures[again.temperatures["steering"] == "persona"]
    assert len(persona) == 5 and persona["n_questions"].sum() == 100
    block = logp[(logp["steering"] == "persona") & (logp["status"] == "ok")]
    scaled = again.items[(again.items["steering"] == "persona") & (again.items["status"] == "ok")]
    t_of = dict(zip(scaled["question_id"], scaled["detail"], strict=False))
    for row in persona.itertuples(index=False):
        questions = {q for q, d in t_of.items() if d.startswith(f"T={row.temperature:.4g} ")}
        train = block[~block["question_id"].isin(questions)]
        refit = fit_temperature(
            [np.asarray(p) for p in train["pred"]], [np.asarray(t) for t in train["truth"]]
        )
        assert refit == pytest.approx(row.temperature, rel=1e-6)


def test_baselines_on_a_user_dataset_leave_the_noise_floor_to_known_counts() -> None:
    dataset = load_dataset(FIXTURES / "valid_probability.csv")
    rows = [
        {"mode": "standard", "model": "m", "dataset": dataset.name, "steering": "persona",
         "method": "verbalize", "group": g, "question_id": "q1", "status": "ok"}
        for g in ("PARTY=Blue", "PARTY=Red")
    ]  # fmt: skip
    baselines = run_baselines(items_frame(rows), {dataset.name: dataset})
    assert set(baselines["question_id"]) == {"q1"}  # only the items that were run
    floor = baselines[baselines["method"] == "noise_floor"].set_index("group")
    assert floor.loc["PARTY=Blue", "status"] == "ok" and floor.loc["PARTY=Blue", "tv"] > 0
    assert floor.loc["PARTY=Red", "status"] == "not_scored"  # no respondent count
    other = baselines[baselines["method"] == "other_group"].set_index("group")
    # Blue's "other group" is Red's distribution: TV(Blue, Red) on q1
    assert other.loc["PARTY=Blue", "tv"] == pytest.approx(0.5 * (0.5 + 0.3 + 0.2))


def test_common_items_restrict_to_the_shared_count_and_change_the_mean(
    run_dir: Path, gpt4_opinionqa: pd.DataFrame
) -> None:
    run = load_results(run_dir).assign(source="run")
    ref = gpt4_opinionqa.assign(source="reference")
    items = pd.concat([run, ref], ignore_index=True)
    shared = coverage(items)
    assert shared.differ
    run_keys = set(run[ITEM_KEYS].astype(str).itertuples(index=False, name=None))
    ref_keys = set(
        ref.loc[ref["status"] != "empty_truth", ITEM_KEYS]
        .astype(str)
        .itertuples(index=False, name=None)
    )
    assert set(shared.table["n_common"]) == {len(run_keys & ref_keys)} == {6}
    restricted = common_items(items)
    gpt4 = restricted[(restricted["model"] == "gpt-4") & (restricted["method"] == "verbalize")]
    assert len(gpt4) == 6
    assert set(gpt4["question_id"]) == set(run["question_id"])
    full = ref[(ref["method"] == "verbalize") & ref["steering"].isin(["persona", "fewshot"])]
    assert abs(gpt4["tv"].mean() - full["tv"].mean()) > 1e-3
    assert len(common_items(run)) == len(run)  # one source: nothing to restrict


def test_leaderboard_and_report_say_when_items_differ(
    run_dir: Path, gpt4_opinionqa: pd.DataFrame, tmp_path: Path
) -> None:
    ref = tmp_path / "reference"
    save_items(gpt4_opinionqa, ref, {"mode": "standard", "kind": "reference-import"})
    out = tmp_path / "tables"
    base = ["leaderboard", str(run_dir), str(ref), "--n-boot", str(N_BOOT), "-o", str(out)]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "cover different items" in result.output and "--common-items" in result.output
    everything = pd.read_csv(out / "leaderboard_standard.csv").set_index(["model", "method"])
    assert everything.loc[("GPT-4", "verbalize"), "n_items"] > 6
    result = runner.invoke(app, [*base, "--common-items"])
    assert result.exit_code == 0, result.output
    common = pd.read_csv(out / "leaderboard_standard.csv").set_index(["model", "method"])
    assert (common["n_items"] == 6).all()
    assert common.loc[("GPT-4", "logp"), "mean"] != pytest.approx(
        everything.loc[("GPT-4", "logp"), "mean"]
    )
    # the report restricts by default when the sets differ, and says so
    report = build_report([run_dir, ref], tmp_path / "r.html", n_boot=N_BOOT)
    tables = {t.name: t for t in report.tables}
    assert set(tables["coverage"].frame["n_common"]) == {6}
    assert (tables["leaderboard_standard_long"].frame["n_items"] == 6).all()
    assert "share" in tables["coverage"].note
    html = (tmp_path / "r.html").read_text()
    assert "Items per results folder" in html and "TS-Log-p temperatures" in html
    both = build_report([run_dir, ref], tmp_path / "all.html", n_boot=N_BOOT, common_items=False)
    long = {t.name: t.frame for t in both.tables}["leaderboard_standard_long"]
    assert long["n_items"].max() > 6


def test_compare_says_how_many_items_each_side_covers(
    run_dir: Path, gpt4_opinionqa: pd.DataFrame, tmp_path: Path
) -> None:
    ref = tmp_path / "reference"
    save_items(gpt4_opinionqa, ref, {"mode": "standard"})
    result = runner.invoke(
        app,
        ["compare", f"{run_dir}:method=logp", f"{ref}:method=logp", "--n-boot", str(N_BOOT)],
    )
    assert result.exit_code == 0, result.output
    assert "A covers 6 items, B" in result.output
    assert "mean TV on 6 shared items" in result.output


def test_complete_items_adds_nothing_to_a_complete_import(gpt4_opinionqa: pd.DataFrame) -> None:
    added = complete_items(gpt4_opinionqa)
    assert added.items.empty  # TS-Log-p already there; baselines need datasets
