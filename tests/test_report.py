"""Reports: tables on hand-made items, figures, paired comparisons, escaping, a real browser."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from distalign.report import build_report, compare, parse_selector, select_configuration
from distalign.report import figures as fig
from distalign.report import tables as tb
from distalign.results import items_frame, save_items

REPO_ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("POLPARTY=Democrat", "POLPARTY=Republican")
QUESTIONS = ("q0", "q1", "q2", "q3")
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
N_BOOT = 50


def row(model: str, method: str, tv: float, **fields: Any) -> dict[str, Any]:
    base = {
        "mode": "standard",
        "model": model,
        "method": method,
        "dataset": "opinionqa",
        "steering": "persona",
        "group": GROUPS[0],
        "question_id": "q0",
        "letters": ["A", "B", "C", "D"],
        "pred": [0.4, 0.3, 0.2, 0.1],
        "truth": [0.3, 0.3, 0.2, 0.2],
        "status": "ok",
        "tv": tv,
    }
    return base | fields


def grid(model: str, method: str, tv: Any, **fields: Any) -> list[dict[str, Any]]:
    """Rows over 2 datasets × 3 steerings × 2 groups × 4 questions; ``tv(dataset, steering,
    group, question)`` gives each row's TV."""
    return [
        row(model, method, tv(d, s, g, q), dataset=d, steering=s, group=g, question_id=q, **fields)
        for d in ("opinionqa", "nytimes")
        for s in ("none", "persona", "fewshot")
        for g in GROUPS
        for q in QUESTIONS
    ]


def by_steering(none: float, persona: float, fewshot: float) -> Any:
    values = {"none": none, "persona": persona, "fewshot": fewshot}
    return lambda d, s, g, q: values[s]


def write_results(folder: Path, rows: list[dict[str, Any]], **manifest: Any) -> Path:
    return save_items(items_frame(rows), folder, {"mode": "standard", **manifest})


# --- loading ---------------------------------------------------------------------------------


def test_results_folders_expands_an_import_root(tmp_path: Path) -> None:
    write_results(tmp_path / "ref" / "paper", [row("m", "verbalize", 0.2, mode="paper")])
    write_results(tmp_path / "ref" / "standard", [row("m", "verbalize", 0.2)])
    assert tb.results_folders(tmp_path / "ref") == [
        tmp_path / "ref" / "paper",
        tmp_path / "ref" / "standard",
    ]
    assert tb.results_folders(tmp_path / "ref" / "paper") == [tmp_path / "ref" / "paper"]
    with pytest.raises(FileNotFoundError):
        tb.results_folders(tmp_path)


def test_same_model_in_two_runs_stays_two_configurations(tmp_path: Path) -> None:
    write_results(tmp_path / "run_a", [row("m", "verbalize", 0.1), row("baseline", "uniform", 0.3)])
    write_results(tmp_path / "run_b", [row("m", "verbalize", 0.5)])
    items, sources = tb.load_items([tmp_path / "run_a", tmp_path / "run_b", tmp_path / "run_a"])
    assert len(sources) == 2  # the repeated folder is loaded once
    assert set(items["model"]) == {"m (run_a)", "m (run_b)", "baseline"}


# --- tables ----------------------------------------------------------------------------------


def test_main_leaderboard_pools_persona_and_fewshot_only() -> None:
    items = items_frame(
        grid("gpt-4", "verbalize", by_steering(0.9, 0.2, 0.4))
        + grid("x", "verbalize", by_steering(0.0, 0.3, 0.3))
    )
    board = tb.main_leaderboard(items, "standard", n_boot=N_BOOT, seed=0).set_index("model")
    assert board.loc["gpt-4", "mean"] == pytest.approx(0.3)  # the unsteered 0.9 is left out
    assert board.loc["x", "mean"] == pytest.approx(0.3)
    assert board.loc["gpt-4", "model_name"] == "GPT-4"
    wide = tb.wide_leaderboard(board.reset_index()).set_index("model")
    assert wide.loc["gpt-4", "datasets"] == "nytimes,opinionqa"
    # Every (question, group) cell averages to 0.3, so no resample can move the mean.
    bounds = [board.loc["gpt-4", "ci_low"], board.loc["gpt-4", "ci_high"]]
    assert bounds == pytest.approx([0.3, 0.3])


def test_wide_leaderboard_has_one_cell_per_method_in_method_order() -> None:
    board = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "method": ["logp", "verbalize", "verbalize"],
            "mean": [0.5, 0.2, 0.25],
            "ci_low": [0.4, 0.1, 0.2],
            "ci_high": [0.6, 0.3, 0.3],
        }
    )
    wide = tb.wide_leaderboard(board).set_index("model")
    assert list(wide.columns) == ["model_name", "verbalize", "logp"]
    assert wide.loc["a", "verbalize"] == "0.200 [0.100, 0.300]"
    assert wide.loc["b", "logp"] == "–"


def test_breakdown_per_dataset_and_steering() -> None:
    def tv(d: str, s: str, g: str, q: str) -> float:
        return {"none": 0.5, "persona": 0.2, "fewshot": 0.1}[s] + (0.01 if d == "nytimes" else 0)

    frame = tb.breakdown(
        items_frame(grid("m", "sequence", tv)),
        "standard",
        ("dataset", "steering"),
        n_boot=N_BOOT,
        seed=0,
    )
    cells = frame.set_index(["dataset", "steering"])["mean"]
    assert len(cells) == 6
    assert cells[("opinionqa", "none")] == pytest.approx(0.5)
    assert cells[("nytimes", "fewshot")] == pytest.approx(0.11)


def test_group_breakdown_pools_steered_rows_and_keeps_baselines() -> None:
    def tv(d: str, s: str, g: str, q: str) -> float:
        return {"none": 0.9, "persona": 0.2, "fewshot": 0.4}[s] + (0.1 if g == GROUPS[1] else 0)

    baseline = [row("baseline", "uniform", 0.35, steering="none", group=g) for g in GROUPS]
    items = items_frame(grid("m", "verbalize", tv) + baseline)
    frame = tb.breakdown(items, "standard", ("dataset", "group"), n_boot=N_BOOT, seed=0)
    mine = frame[(frame["model"] == "m") & (frame["dataset"] == "opinionqa")]
    assert mine.set_index("group")["mean"].to_dict() == pytest.approx(
        {GROUPS[0]: 0.3, GROUPS[1]: 0.4}
    )
    assert (frame["model"] == "baseline").sum() == 2


def test_steering_summary_compares_steerings_on_the_same_configurations() -> None:
    partial = [
        r for r in grid("only_persona", "verbalize", lambda *_: 0.99) if r["steering"] == "persona"
    ]
    items = items_frame(
        grid("a", "verbalize", by_steering(0.5, 0.3, 0.1))
        + grid("b", "verbalize", by_steering(0.3, 0.3, 0.3))
        + partial
    )
    summary = tb.steering_summary(items, "standard", n_boot=N_BOOT, seed=0)
    cells = summary.set_index(["dataset", "steering"])
    assert cells.loc[("opinionqa", "none"), "mean"] == pytest.approx(0.4)
    assert cells.loc[("opinionqa", "persona"), "mean"] == pytest.approx(0.3)  # 0.99s left out
    assert cells.loc[("opinionqa", "fewshot"), "mean"] == pytest.approx(0.2)
    assert set(summary["n_configurations"]) == {2}
    assert list(summary[summary["dataset"] == "nytimes"]["steering"]) == [
        "none",
        "persona",
        "fewshot",
    ]


def test_diagnostics_rates_covered_mass_and_usage() -> None:
    rows = [
        row("m", "logp", 0.2, question_id=f"q{i}", covered_mass=0.9, prompt_tokens=10, cost_usd=0.5)
        for i in range(6)
    ]
    rows += [
        row(
            "m",
            "logp",
            np.nan,
            question_id="p1",
            status="parse_failure",
            covered_mass=0.2,
            prompt_tokens=10,
            cost_usd=0.5,
        )
    ]
    rows += [
        row(
            "m",
            "logp",
            np.nan,
            question_id="p2",
            status="parse_failure",
            covered_mass=0.4,
            prompt_tokens=10,
            cost_usd=0.5,
        )
    ]
    rows += [row("m", "logp", np.nan, question_id="r", status="request_failure")]
    rows += [row("m", "logp", np.nan, question_id="e", status="empty_truth")]
    diag = tb.diagnostics(items_frame(rows)).iloc[0]
    assert diag["items"] == 10 and diag["scored"] == 6 and diag["not_scored"] == 1
    assert diag["parse_failure_rate"] == pytest.approx(2 / 9)
    assert diag["request_failure_rate"] == pytest.approx(1 / 9)
    assert diag["covered_mass_min"] == pytest.approx(0.2)
    assert diag["covered_mass_below_half"] == pytest.approx(2 / 8)
    assert diag["prompt_tokens_total"] == 80
    assert diag["cost_usd_total"] == pytest.approx(4.0)


def test_reliability_bins_and_ece_hand_computed() -> None:
    pred, truth = np.array([0.8, 0.2]), np.array([0.6, 0.4])
    bins = tb.reliability_bins(pred, truth, n_bins=10)
    assert list(bins["count"]) == [1, 1]
    assert tb.expected_calibration_error(bins) == pytest.approx(0.2)
    items = items_frame(
        [
            row("gpt-4", "logp", 0.2, pred=[0.8, 0.2], truth=[0.6, 0.4], letters=["A", "B"]),
            row("gpt-4", "ts_logp", 0.0, pred=[0.6, 0.4], truth=[0.6, 0.4], letters=["A", "B"]),
        ]
    )
    ece = tb.calibration_table(items).set_index("method")["ece"]
    assert ece["logp"] == pytest.approx(0.2)
    assert ece["ts_logp"] == pytest.approx(0.0)


def test_markdown_and_files(tmp_path: Path) -> None:
    frame = pd.DataFrame({"model": ["a|b"], "mean": [0.12345]})
    table = tb.ReportTable("demo", "Demo table", frame, note="a note")
    text = tb.to_markdown(table)
    assert "| a\\|b | 0.123 |" in text and "|---|---:|" in text and "### Demo table" in text
    written = tb.write_tables([table], tmp_path)
    assert {p.name for p in written} == {"demo.csv", "demo.json", "demo.md", "tables.md"}
    assert json.loads((tmp_path / "demo.json").read_text())[0]["mean"] == pytest.approx(0.12345)


def test_build_tables_names_every_table() -> None:
    items = items_frame(
        grid("m", "verbalize", by_steering(0.3, 0.2, 0.1))
        + grid("m", "sequence", by_steering(0.4, 0.3, 0.2))
        + grid("m", "logp", by_steering(0.5, 0.5, 0.5))
        + [row("baseline", "uniform", 0.35, steering="none")]
    )
    names = [t.name for t in tb.build_tables(items, n_boot=N_BOOT)]
    assert names == [
        "leaderboard_standard",
        "leaderboard_standard_long",
        "baselines_standard",
        "gap_standard",
        "steering_standard",
        "breakdown_standard",
        "groups_standard",
        "diagnostics",
        "calibration",
    ]


# --- compare -----------------------------------------------------------------------------------


def test_parse_selector() -> None:
    sel = parse_selector("runs/x:model=GPT-4,steering=persona|fewshot")
    assert sel.path == Path("runs/x")
    assert sel.filters == {"model": ("GPT-4",), "steering": ("persona", "fewshot")}
    assert parse_selector("runs/x").filters == {}
    with pytest.raises(ValueError, match="bad selector"):
        parse_selector("runs/x:colour=red")


def test_selector_matches_display_names_and_needs_one_configuration() -> None:
    items = items_frame(
        grid("gpt-4", "verbalize", by_steering(0.1, 0.2, 0.3))
        + grid("gpt-4", "sequence", by_steering(0.1, 0.2, 0.3))
    )
    chosen = select_configuration(items, parse_selector("x:model=GPT-4,method=verbalize"))
    assert set(chosen["steering"]) == {"persona", "fewshot"}  # default pooling
    with pytest.raises(ValueError, match="selects 2 configurations"):
        select_configuration(items, parse_selector("x:model=gpt-4"))


def test_compare_known_difference(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = {
        (d, s, g, q): float(rng.uniform(0.2, 0.6))
        for d in ("opinionqa", "nytimes")
        for s in ("none", "persona", "fewshot")
        for g in GROUPS
        for q in QUESTIONS
    }
    a = grid("a", "verbalize", lambda *k: base[k])
    b = grid("b", "verbalize", lambda *k: base[k] - 0.05)
    b = [r for r in b if not (r["question_id"] == "q3" and r["dataset"] == "nytimes")]
    write_results(tmp_path / "res", a + b)
    result = compare(f"{tmp_path}/res:model=a", f"{tmp_path}/res:model=b", n_boot=200).result
    assert result.statistic == pytest.approx(-0.05)
    assert result.low == pytest.approx(-0.05) and result.high == pytest.approx(-0.05)
    assert result.p_value == 0.0
    assert result.n_shared == 2 * 2 * 4 + 2 * 2 * 3  # persona+fewshot, q3 of nytimes unshared
    assert (result.wins_a, result.wins_b, result.ties) == (0, result.n_shared, 0)


# --- figures -----------------------------------------------------------------------------------


def test_coin_figure_from_a_small_table(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "experiment": ["coin"] * 4 + ["die"] * 2,
            "method": ["verbalize", "verbalize", "sequence", "sequence", "verbalize", "sequence"],
            "stated_p": [0.2, 0.8, 0.2, 0.8, 0.5, 0.5],
            "produced_mean": [0.3, 0.6, 0.2, 0.75, 0.4, 0.5],
            "produced_std": [0.05] * 6,
        }
    )
    figure = fig.coin_figure(table)
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["coin", "die"]
    assert axes[0].get_xlabel() == "stated probability"
    bars = {c.get_label(): c for c in axes[0].containers if isinstance(c, ErrorbarContainer)}
    assert np.asarray(bars["Verbalize"].lines[0].get_ydata()).tolist() == [0.3, 0.6]
    with pytest.raises(ValueError, match="stated_p"):
        fig.coin_figure(table.drop(columns="stated_p"))
    # `distalign toy` layout: one row per outcome; the coin is shown as P(first outcome).
    toy = pd.DataFrame(
        {
            "experiment": ["coin"] * 4,
            "method": ["sequence"] * 4,
            "outcome": ["H", "T", "H", "T"],
            "stated": [0.3, 0.7, 0.6, 0.4],
            "produced_mean": [0.35, 0.65, 0.5, 0.5],
        }
    )
    (coin,) = fig.coin_figure(toy).get_axes()
    assert coin.get_title() == "coin: P(H)"
    line = [c for c in coin.containers if isinstance(c, ErrorbarContainer)][0].lines[0]
    assert np.asarray(line.get_xdata()).tolist() == [0.3, 0.6]
    paths = fig.save(figure, tmp_path, "coin")
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:400]


def test_stereotype_marginals() -> None:
    items = items_frame(
        [
            row(
                "m",
                "verbalize",
                0.1,
                dataset="nytimes",
                group=GROUPS[0],
                question_id="b1",
                pred=[1.0, 0.0, 0.0, 0.0],
                truth=[0.5, 0.5, 0.0, 0.0],
            ),
            row(
                "m",
                "verbalize",
                0.1,
                dataset="nytimes",
                group=GROUPS[0],
                question_id="b2",
                pred=[0.0, 1.0, 0.0, 0.0],
                truth=[0.5, 0.5, 0.0, 0.0],
            ),
            row(
                "m",
                "verbalize",
                0.1,
                dataset="nytimes",
                group=GROUPS[1],
                question_id="b1",
                pred=[0.0, 0.0, 0.0, 1.0],
                truth=[0.0, 0.0, 0.5, 0.5],
            ),
        ]
    )
    found = fig.marginals(items, GROUPS)
    assert found.produced[GROUPS[0]] == pytest.approx([0.5, 0.5, 0.0, 0.0])
    assert found.produced[GROUPS[1]] == pytest.approx([0.0, 0.0, 0.0, 1.0])
    assert found.true[GROUPS[1]] == pytest.approx([0.0, 0.0, 0.5, 0.5])
    figure = fig.stereotype_figure(items, GROUPS, labels=["1", "2", "3", "4"])
    assert len(figure.get_axes()[0].patches) == 16  # 4 options × 2 groups × (true, persona)


def test_model_colours_are_stable_across_figures() -> None:
    assert fig.model_colour("gpt-4", ["gpt-4"]) == fig.model_colour("gpt-4", ["zz", "gpt-4"])
    assert fig.model_colour("mine", ["mine", "gpt-4"]) == fig.OKABE_ITO[5]
    assert fig.ordered_models(["mine", "llama3-70b", "gpt-4"]) == ["gpt-4", "llama3-70b", "mine"]


# --- the HTML report ---------------------------------------------------------------------------


def report_items() -> list[dict[str, Any]]:
    """Two models, four methods, NYT + OpinionQA, baselines, one failure, hostile text."""
    rows = []
    for model, shift in (("gpt-4", 0.0), ("my-model", 0.05)):
        for method in ("verbalize", "sequence", "logp", "ts_logp"):
            rows += grid(
                model,
                method,
                by_steering(0.3 + shift, 0.25 + shift, 0.2 + shift),
                raw='{"A": 40}',
                prompt=[{"role": "user", "content": "plain prompt"}],
                question_text="plain question",
            )
    hostile = row(
        "my-model",
        "verbalize",
        np.nan,
        status="parse_failure",
        question_id="qx",
        raw=f"I refuse {SCRIPT} {IMG}",
        prompt=[{"role": "user", "content": IMG}],
        question_text=f"Why {SCRIPT}?{IMG}",
        detail=f"could not parse {IMG}",
    )
    baselines = [
        row("baseline", m, v, steering="none", dataset=d, group=g, question_id=q)
        for m, v in (("uniform", 0.36), ("discretization", 0.1))
        for d in ("opinionqa", "nytimes")
        for g in GROUPS
        for q in QUESTIONS
    ]
    return rows + [hostile] + baselines


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    write_results(root / "run", report_items(), kind="run", created="today", seeds=[0], note=SCRIPT)
    toy = pd.DataFrame(
        {
            "experiment": ["coin"] * 2,
            "method": ["verbalize"] * 2,
            "stated_p": [0.3, 0.7],
            "produced_mean": [0.35, 0.6],
        }
    )
    report = build_report([root / "run"], root / "report.html", toy=toy, n_boot=N_BOOT)
    assert {f.name for f in report.figures} == {
        "tv_per_method",
        "tv_per_steering",
        "logp_reliability",
        "majority_scatter",
        "stereotype_nytimes",
        "coin_calibration",
    }
    assert all(p.exists() for p in report.files)
    return report.html


def test_report_escapes_everything_models_and_datasets_wrote(report_html: Path) -> None:
    html = report_html.read_text()
    assert SCRIPT not in html and IMG not in html
    assert "<script" not in html.lower()  # the page has no script of its own either
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert re.search(r"<img[^>]*onerror", html) is None
    # Self-contained: no URL other than embedded data is ever loaded.
    assert re.search(r"""(src|href)=["']?(https?:|//|file:)""", html) is None
    assert html.count("<img ") == 6 and html.count('src="data:image/png;base64,') == 6


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("headless Chromium not found: install it with `apt-get install -y chromium`")


def run_browser(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *args, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


@pytest.fixture(scope="module")
def browser_dom(report_html: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "report.png"
    shot.unlink(missing_ok=True)
    dom = run_browser(report_html, profile, "--dump-dom")
    screenshot = run_browser(
        report_html, profile, "--window-size=1280,2000", f"--screenshot={shot}"
    )
    assert shot.stat().st_size > 20_000, "the screenshot is (nearly) empty"
    for log in (dom.stderr, screenshot.stderr):
        console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
        assert not console, "console messages in the report:\n" + "\n".join(console)
    yield dom.stdout


def test_report_renders_in_a_real_browser(browser_dom: str) -> None:
    for heading in (
        "Leaderboards",
        "Leaderboard [standard mode]",
        "Baselines [standard mode]",
        "Knowledge-to-simulation gap",
        "Figures",
        "Breakdowns and diagnostics",
        "Per-configuration diagnostics",
        "Run manifests",
        "Samples of prompts and raw responses",
    ):
        assert re.search(rf"<h[23][^>]*>{re.escape(heading)}", browser_dom), heading
    assert browser_dom.count("<table") >= 10
    assert browser_dom.count('src="data:image/png;base64,') == 6
    assert "<script" not in browser_dom.lower()
    assert re.search(r"<img[^>]*onerror", browser_dom) is None


def test_figures_are_figures() -> None:
    items = items_frame(report_items())
    assert isinstance(fig.majority_scatter(items), Figure)
    reliability = fig.reliability_figure(items).get_axes()
    assert [ax.get_xlabel() for ax in reliability] == ["mean predicted probability (binned)"] * 2


# --- report polish: dataset lookup, wide tables, details, fewer-items flag ---------------------


def labelled_report(tmp_path: Path, folder: Path, rows: list[dict[str, Any]], **config: Any) -> str:
    """The HTML of a report on one run folder whose manifest records ``config``."""
    manifest = {"kind": "run", "config": {"methods": ["verbalize"], "n": 30, **config}}
    write_results(folder, rows, **manifest)
    report = build_report([folder], tmp_path / "report.html", n_boot=N_BOOT, samples_per_config=2)
    return html_lib.unescape(report.html.read_text())


def test_labels_come_from_the_env_var_data_folder(
    tmp_path: Path, reference_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distalign.datasets import load_dataset

    question = next(iter(load_dataset("opinionqa", reference_dir).questions.values()))
    letters = [chr(ord("A") + i) for i in range(len(question.options))]
    uniform = [1 / len(letters)] * len(letters)
    rows = [
        row("m", "verbalize", 0.1, question_id=question.id, group=g, letters=letters,
            pred=uniform, truth=uniform)
        for g in GROUPS
    ]  # fmt: skip
    monkeypatch.setenv("DISTALIGN_DATA", str(reference_dir))  # no --data-dir in the manifest
    html = labelled_report(tmp_path, tmp_path / "run", rows, datasets=["opinionqa"], data_dir=None)
    assert question.text in html
    for option in question.options:
        assert f"<td>{option}</td>" in html
    assert "rebuilt from the dataset" in html  # the prompt too


@pytest.mark.parametrize("absolute", [False, True])
def test_labels_come_from_a_user_file(tmp_path: Path, absolute: bool) -> None:
    project = tmp_path / "project"
    project.mkdir()
    survey = project / "survey.csv"
    survey.write_text(
        "question_id,question,options,group_attribute,group_value,option,count\n"
        "tea,Do you like tea?,Yes|No|Not sure,AGE,18-29,Yes,30\n"
        "tea,Do you like tea?,Yes|No|Not sure,AGE,18-29,No,10\n"
        "tea,Do you like tea?,Yes|No|Not sure,AGE,65+,Yes,45\n"
    )
    rows = [
        row("m", "verbalize", 0.1, dataset="survey", question_id="tea", group=g,
            letters=["A", "B", "C"], pred=[0.5, 0.3, 0.2], truth=[0.75, 0.25, 0.0])
        for g in ("AGE=18-29", "AGE=65+")
    ]  # fmt: skip
    # As `distalign run --dataset survey.csv --out results/run` started in project/ records it
    # (the report runs elsewhere), or with the absolute path.
    entry = str(survey) if absolute else "survey.csv"
    folder = project / "results" / "run"
    html = labelled_report(tmp_path, folder, rows, datasets=[entry], out="results/run")
    assert "Do you like tea?" in html
    assert all(f"<td>{option}</td>" in html for option in ("Yes", "No", "Not sure"))


def page_measures(page: Path, profile: Path, width: int, height: int) -> dict[str, Any]:
    """Layout measures of the diagnostics table, taken by a script in a copy of ``page`` (the
    report itself forbids scripts)."""
    script = """<script>
    const table = document.querySelector('#table-diagnostics table');
    const box = table.closest('.scroll');
    const body = document.body.getBoundingClientRect();
    const pad = parseFloat(getComputedStyle(document.body).paddingRight);
    const out = {
      overflowX: box && getComputedStyle(box).overflowX,
      boxRight: box && box.getBoundingClientRect().right,
      boxHeight: box && box.getBoundingClientRect().height,
      boxWidth: box && box.clientWidth,
      tableWidth: table.getBoundingClientRect().width,
      contentRight: body.right - pad,
      pageWidth: document.documentElement.scrollWidth,
      viewportWidth: document.documentElement.clientWidth,
      viewportHeight: window.innerHeight,
    };
    const pre = document.createElement('pre');
    pre.id = 'measures';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
    </script>"""
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text())
    probe = page.with_name("measure.html")
    probe.write_text(html.replace("</body>", script + "</body>"))
    dom = run_browser(probe, profile, f"--window-size={width},{height}", "--dump-dom").stdout
    found = re.search(r'<pre id="measures">(.*?)</pre>', dom, re.S)
    assert found, "the measuring script did not run"
    measures: dict[str, Any] = json.loads(html_lib.unescape(found.group(1)))
    return measures


def test_wide_tables_scroll_inside_their_own_box(
    report_html: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    profile = tmp_path_factory.mktemp("chromium-measure")
    m = page_measures(report_html, profile, 760, 600)  # a narrow window: the table is wider
    assert m["overflowX"] in ("auto", "scroll")
    assert m["tableWidth"] > m["boxWidth"]  # it does not fit, so it scrolls inside its box
    assert m["boxRight"] <= m["contentRight"] + 1  # the box stays within the page's column
    assert m["pageWidth"] <= m["viewportWidth"]  # the page itself never scrolls sideways
    assert m["boxHeight"] <= m["viewportHeight"]  # so its scroll bar can be seen on screen
    html = report_html.read_text()
    assert "parse_<wbr>failure_<wbr>rate" in html  # headers may wrap at underscores first


def flag_items(short: bool) -> list[dict[str, Any]]:
    """Two models over 2 datasets × 3 steerings × 2 groups × 4 questions; with ``short``,
    "small" skips q3 of nytimes. Some details carry an old run's leading "; "."""
    full = grid("gpt-4", "verbalize", by_steering(0.3, 0.2, 0.1), detail="; attempts=1")
    full += grid("gpt-4", "logp", by_steering(0.3, 0.2, 0.1), detail="; attempts=1")
    full += grid("gpt-4", "sequence", by_steering(0.3, 0.3, 0.2))
    small = grid("small", "verbalize", by_steering(0.4, 0.3, 0.2), detail="ok; attempts=2")
    small += grid("small", "logp", by_steering(0.4, 0.3, 0.2), detail=";attempts=1")
    small += grid("small", "sequence", by_steering(0.4, 0.4, 0.3))
    if short:
        small = [r for r in small if not (r["dataset"] == "nytimes" and r["question_id"] == "q3")]
    return full + small


def flag_report(tmp_path: Path, short: bool) -> tuple[str, list[str]]:
    """The report's HTML (unescaped), and the text of its figures' SVGs and Markdown tables."""
    write_results(tmp_path / "run", flag_items(short), kind="run")
    report = build_report([tmp_path / "run"], tmp_path / "report.html", n_boot=N_BOOT)
    files = [p.read_text() for p in report.files if p.suffix in (".svg", ".md")]
    return html_lib.unescape(report.html.read_text()), files


def test_a_model_on_fewer_items_is_flagged_everywhere(tmp_path: Path) -> None:
    html, files = flag_report(tmp_path, short=True)
    # small: 48 items less nytimes q3 (3 steerings × 2 groups) = 42 of gpt-4's 48
    label = "small † (n=42)"
    note = "† evaluated on fewer items than the others (small: 42 of 48)"
    tables = ["leaderboard_standard", "leaderboard_standard_long", "gap_standard"]
    for table in [*tables, "breakdown_standard", "diagnostics", "calibration"]:
        section = re.search(rf'<section id="table-{table}">(.*?)</section>', html, re.S)
        assert section, table
        assert f"<td>{label}</td>" in section.group(1), table
        assert note in section.group(1), table
        assert "<td>GPT-4</td>" in section.group(1) and "GPT-4 †" not in section.group(1)
    for name in ("tv_per_method", "logp_reliability", "majority_scatter"):
        figure = re.search(rf'<figure id="figure-{name}">(.*?)</figure>', html, re.S)
        assert figure and note in figure.group(1), name
    legends = [text for text in files if "<svg" in text[:400] and label in text]
    assert len(legends) == 3  # the SVGs keep their text: the three legends with models
    assert any(label in text and note in text for text in files)  # Markdown tables
    assert "GPT-4 †" not in html
    # The CSV files keep the bare names.
    board = pd.read_csv(tmp_path / "report_files" / "tables" / "leaderboard_standard.csv")
    assert set(board["model_name"]) == {"GPT-4", "small"}


def test_no_flag_when_every_model_has_the_same_items(tmp_path: Path) -> None:
    html, files = flag_report(tmp_path, short=False)
    assert "†" not in html
    assert not any("†" in text for text in files)


def test_sample_details_never_start_with_a_separator(tmp_path: Path) -> None:
    html, _ = flag_report(tmp_path, short=False)
    details = re.findall(r"<dt>detail</dt><dd>(.*?)</dd>", html, re.S)
    assert details, "no sample shows a detail"
    assert not [d for d in details if d.lstrip().startswith(";")]
    assert "attempts=1" in details and "ok; attempts=2" in details
