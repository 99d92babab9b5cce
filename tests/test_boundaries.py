"""Bad and degenerate input never gets a perfect score, never crashes, and is said clearly.

* distances: non-finite, negative, all-zero or non-unit vectors and misaligned options give NaN;
* the knowledge-to-simulation gap is undefined (NaN, with a note) when Verbalize's mean TV is 0;
* an empty or missing results folder is one clear error (a ``DistalignError``);
* request failures are counted and shown beside parse failures;
* user data with overflowing counts or one-option questions is rejected, file, row and field named.

Names that are new with these rules are imported inside the tests that use them, so each test
fails on its own (not at collection) on code without them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from distalign.cli import app as cli
from distalign.cli.data import data_app
from distalign.datasets.user import DatasetError, load_user_dataset
from distalign.errors import DistalignError
from distalign.metrics import (
    gap_table,
    jensen_shannon,
    leaderboard,
    paired,
    score_item,
    total_variation,
    wasserstein_ordinal,
)
from distalign.report import build_report
from distalign.report import tables as tb
from distalign.results import Status, items_frame, save_items

DISTANCES: list[Callable[..., Any]] = [total_variation, jensen_shannon, wasserstein_ordinal]
N_BOOT = 50
runner = CliRunner()


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


# --- 1. distances: one input rule, NaN for anything that is not a distribution ----------------


@pytest.mark.parametrize(
    "bad",
    [
        [math.nan, 1.0],
        [math.inf, 0.0],
        [1.0, -math.inf],
    ],
)
def test_non_finite_input_is_nan_for_every_distance(bad: list[float]) -> None:
    good = [0.5, 0.5]
    for fn in DISTANCES:
        assert _nan(fn(bad, good)), fn.__name__
        assert _nan(fn(good, bad)), fn.__name__


def test_negative_values_are_nan_for_every_distance() -> None:
    bad = [1.5, -0.5]  # sums to 1, so only the sign rule catches it
    for fn in DISTANCES:
        assert _nan(fn(bad, [1.0, 0.0])), fn.__name__
        assert _nan(fn([1.0, 0.0], bad)), fn.__name__


def test_all_zero_vector_is_nan_never_a_score() -> None:
    for fn in DISTANCES:
        assert _nan(fn([0.0, 0.0], [0.5, 0.5])), fn.__name__
        assert _nan(fn([0.5, 0.5], [0.0, 0.0])), fn.__name__
    # JS used to call two all-zero vectors identical: a perfect score for nothing
    assert _nan(jensen_shannon([0.0, 0.0], [0.0, 0.0]))


def test_no_distance_renormalises() -> None:
    # (0.3, 0.3) is not a distribution; JS used to rescale it to (0.5, 0.5) and score 0
    for fn in DISTANCES:
        assert _nan(fn([0.3, 0.3], [0.5, 0.5])), fn.__name__
        assert _nan(fn([2.0, 0.0], [1.0, 0.0])), fn.__name__
    # rounding well inside the tolerance is still a distribution
    assert jensen_shannon([0.5 + 1e-9, 0.5], [0.5, 0.5]) == pytest.approx(0.0, abs=1e-4)


def test_mismatched_lengths_are_nan_not_an_exception() -> None:
    for fn in DISTANCES:
        assert _nan(fn([0.5, 0.5], [0.2, 0.3, 0.5])), fn.__name__
    assert _nan(wasserstein_ordinal([0.5, 0.5], [0.5, 0.5], positions=[1, 2, 3]))
    table = total_variation(np.full((4, 2), 0.5), np.full((4, 3), 1 / 3))
    assert isinstance(table, np.ndarray) and table.shape == (4,) and np.isnan(table).all()


def test_one_bad_row_does_not_sink_a_vectorised_call() -> None:
    p = np.array([[1.0, 0.0], [0.0, 0.0], [np.nan, 1.0], [0.5, 0.5]])
    q = np.array([0.5, 0.5])
    for fn in (total_variation, jensen_shannon):
        values = np.asarray(fn(p, q))
        assert not np.isnan(values[0]) and values[3] == pytest.approx(0.0)
        assert np.isnan(values[1]) and np.isnan(values[2])


def test_score_item_gives_nan_for_an_all_zero_prediction() -> None:
    scores = score_item([0.0, 0.0, 0.0], [0.2, 0.3, 0.5], ordinal=(1.0, 2.0, 3.0))
    assert all(_nan(scores[k]) for k in ("tv", "js", "w1")), scores


def test_distribution_problem_says_what_is_wrong() -> None:
    from distalign.metrics import distribution_problem

    assert distribution_problem([0.25, 0.75]) is None
    assert distribution_problem([0.0, 0.0]) == "all values are 0"
    assert "negative" in str(distribution_problem([1.5, -0.5]))
    assert "NaN or infinite" in str(distribution_problem([math.nan, 1.0]))
    assert "sum to 0.6" in str(distribution_problem([0.3, 0.3]))
    assert "sum to inf" in str(distribution_problem([1e308, 1e308]))


# --- 2. the gap is undefined when Verbalize's mean TV is 0 ------------------------------------

GROUPS = ("POLPARTY=Democrat", "POLPARTY=Republican")


def _items(tv: dict[str, float], statuses: dict[str, str] | None = None) -> pd.DataFrame:
    """Standard-mode items of model m: every method of ``tv`` over 2 groups x 4 questions x
    persona/fewshot on one dataset; ``statuses`` overrides the status of question q0."""
    rows = []
    for method, value in tv.items():
        for steering in ("persona", "fewshot"):
            for group in GROUPS:
                for q in range(4):
                    status = (statuses or {}).get(method, Status.OK) if q == 0 else Status.OK
                    rows.append(
                        {
                            "mode": "standard",
                            "model": "m",
                            "dataset": "opinionqa",
                            "steering": steering,
                            "method": method,
                            "group": group,
                            "question_id": f"q{q}",
                            "letters": ["A", "B"],
                            "pred": [0.5, 0.5],
                            "truth": [0.5, 0.5],
                            "status": status,
                            "tv": value if status == Status.OK else None,
                        }
                    )
    return items_frame(rows)


def _results(folder: Path, frame: pd.DataFrame) -> Path:
    return save_items(frame, folder, {"mode": "standard"})


def test_gap_table_is_undefined_when_verbalize_scores_zero() -> None:
    gaps = gap_table(_items({"verbalize": 0.0, "sequence": 0.2}), n_boot=N_BOOT)
    assert not gaps.empty
    assert gaps["gap"].isna().all()
    assert gaps["ci_low"].isna().all() and gaps["ci_high"].isna().all()
    assert gaps["note"].str.contains("undefined").all()
    assert (gaps["verbalize"] == 0).all()
    assert gaps["sequence"].to_numpy() == pytest.approx(0.2)


def test_paired_ratio_with_a_zero_mean_is_nan() -> None:
    frame = _items({"verbalize": 0.0, "sequence": 0.2})
    res = paired(
        frame[frame["method"] == "verbalize"],
        frame[frame["method"] == "sequence"],
        kind="ratio",
        n_boot=N_BOOT,
    )
    assert _nan(res.statistic) and _nan(res.low) and _nan(res.high)
    assert res.mean_b == pytest.approx(0.2)  # the means themselves are still reported


def test_defined_gap_has_an_empty_note() -> None:
    gaps = gap_table(_items({"verbalize": 0.1, "sequence": 0.2}), n_boot=N_BOOT)
    assert gaps["gap"].to_numpy() == pytest.approx(1.0)
    assert (gaps["note"] == "").all()


def test_paper_mode_gap_is_undefined_not_infinite() -> None:
    board = pd.DataFrame(
        {
            "model": ["gpt-4", "gpt-4"],
            "method": ["verbalize", "sequence"],
            "mean": [0.0, 0.3],
        }
    )
    gaps = tb.gap(pd.DataFrame(), board, "paper", n_boot=N_BOOT, seed=0)
    assert gaps["gap"].isna().all()
    assert not np.isinf(gaps["gap"].to_numpy(dtype=float)).any()
    assert gaps["note"].str.contains("undefined").all()


def test_report_tables_show_an_undefined_gap() -> None:
    tables = {
        t.name: t
        for t in tb.build_tables(_items({"verbalize": 0.0, "sequence": 0.2}), n_boot=N_BOOT)
    }
    gap = tables["gap_standard"]
    assert gap.frame["gap"].isna().all()
    assert "note" in gap.shown
    assert "undefined" in tb.to_markdown(gap)


def test_leaderboard_command_shows_an_undefined_gap(tmp_path: Path) -> None:
    folder = _results(tmp_path / "run", _items({"verbalize": 0.0, "sequence": 0.2}))
    out = tmp_path / "tables"
    result = runner.invoke(
        cli, ["leaderboard", str(folder), "--n-boot", str(N_BOOT), "-o", str(out)]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "undefined" in result.output
    written = pd.read_csv(out / "gap_standard.csv")
    assert written["gap"].isna().all()


def test_html_report_shows_an_undefined_gap(tmp_path: Path) -> None:
    folder = _results(tmp_path / "run", _items({"verbalize": 0.0, "sequence": 0.2}))
    report = build_report([folder], tmp_path / "report.html", n_boot=N_BOOT)
    html = report.html.read_text()
    assert "undefined: Verbalize" in html
    assert (
        "inf"
        not in pd.read_csv(report.assets / "tables" / "gap_standard.csv")["gap"]
        .astype(str)
        .tolist()
    )


# --- 3. empty or missing results folders: one clear error -------------------------------------


def test_report_on_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    with pytest.raises(DistalignError, match=r"no results in .*distalign run"):
        build_report([empty], tmp_path / "report.html", n_boot=N_BOOT)


def test_report_on_an_empty_items_table_is_a_clear_error(tmp_path: Path) -> None:
    folder = _results(tmp_path / "run", items_frame([]))
    with pytest.raises(DistalignError, match=r"no results in .*distalign run"):
        build_report([folder], tmp_path / "report.html", n_boot=N_BOOT)


def test_load_items_on_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DistalignError, match=r"no results in .*does not exist"):
        tb.load_items([tmp_path / "absent"])


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    return str(result.output)


def test_report_command_on_empty_folders(tmp_path: Path) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    out = str(tmp_path / "r.html")
    message = _one_line_error(runner.invoke(cli, ["report", str(empty), "-o", out]))
    assert "no results in" in message and "distalign run" in message
    folder = _results(tmp_path / "run", items_frame([]))
    message = _one_line_error(runner.invoke(cli, ["report", str(folder), "-o", out]))
    assert "no results in" in message


def test_leaderboard_command_on_empty_and_missing_folders(tmp_path: Path) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    message = _one_line_error(runner.invoke(cli, ["leaderboard", str(empty)]))
    assert "no results in" in message and "distalign run" in message
    folder = _results(tmp_path / "run", items_frame([]))
    message = _one_line_error(runner.invoke(cli, ["leaderboard", str(folder)]))
    assert "items table is empty" in message
    message = _one_line_error(runner.invoke(cli, ["leaderboard", str(tmp_path / "absent")]))
    assert "does not exist" in message


def test_compare_command_on_an_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    result = runner.invoke(cli, ["compare", f"{empty}:method=a", f"{empty}:method=b"])
    message = _one_line_error(result)
    assert "no results in" in message and "distalign run" in message


# --- 4. request failures beside parse failures ---------------------------------------------


def _with_failures() -> pd.DataFrame:
    return _items(
        {"verbalize": 0.1, "sequence": 0.2},
        statuses={"verbalize": Status.REQUEST_FAILURE, "sequence": Status.PARSE_FAILURE},
    )


def test_leaderboard_counts_request_failures() -> None:
    board = leaderboard(_with_failures(), n_boot=N_BOOT).set_index("method")
    assert board.loc["verbalize", "n_request_failures"] == 4  # q0 x 2 groups x 2 steerings
    assert board.loc["verbalize", "n_parse_failures"] == 0
    assert board.loc["sequence", "n_parse_failures"] == 4
    assert board.loc["sequence", "n_request_failures"] == 0


def test_report_leaderboard_shows_request_failures_beside_parse_failures() -> None:
    tables = {t.name: t for t in tb.build_tables(_with_failures(), n_boot=N_BOOT)}
    shown = tables["leaderboard_standard_long"].shown
    assert "n_request_failures" in shown
    assert shown.index("n_request_failures") == shown.index("n_parse_failures") + 1
    for name in ("breakdown_standard", "groups_standard"):
        assert "n_request_failures" in tables[name].shown, name


def test_leaderboard_command_shows_request_failures(tmp_path: Path) -> None:
    folder = _results(tmp_path / "run", _with_failures())
    result = runner.invoke(
        cli, ["leaderboard", str(folder), "--n-boot", str(N_BOOT), "-o", str(tmp_path / "t")]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "n_request_failures" in result.output
    assert "n_parse_failures" in result.output


# --- 5. user data: overflowing counts and one-option questions --------------------------------

HEADER = "question_id,question,options,group_attribute,group_value,option,count"


def _user_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "survey.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _problem(path: Path, where: str, field: str) -> str:
    with pytest.raises(DatasetError) as caught:
        load_user_dataset(path)
    line = next((p for p in caught.value.problems if p.startswith(f"{path.name}, {where}, ")), "")
    assert f"field '{field}'" in line, str(caught.value)
    return line


def test_counts_that_overflow_are_rejected(tmp_path: Path) -> None:
    path = _user_file(
        tmp_path,
        "q1,Tea?,Yes|No,PARTY,Blue,Yes,1e308",
        "q1,Tea?,Yes|No,PARTY,Blue,No,1e308",  # each finite; their sum (n) is inf
        "q2,Coffee?,Yes|No,PARTY,Blue,Yes,3",
    )
    line = _problem(path, "row 1", "count")
    assert "PARTY=Blue" in line and "'q1'" in line


def test_single_option_questions_are_rejected(tmp_path: Path) -> None:
    path = _user_file(
        tmp_path,
        "q1,Tea?,Yes|No,PARTY,Blue,Yes,4",
        "q2,Agree?,Yes,PARTY,Blue,Yes,5",  # one option: every method would score TV 0
    )
    line = _problem(path, "row 2", "options")
    assert "at least 2 options" in line


def test_data_validate_rejects_both(tmp_path: Path) -> None:
    path = _user_file(
        tmp_path,
        "q1,Tea?,Yes|No,PARTY,Blue,Yes,1e308",
        "q1,Tea?,Yes|No,PARTY,Blue,No,1e308",
        'q2,Agree?,["Yes"],PARTY,Blue,Yes,5',
    )
    result = CliRunner().invoke(data_app, ["validate", str(path)])
    assert result.exit_code != 0
    assert "survey.csv, row 1, field 'count'" in result.output
    assert "survey.csv, row 3, field 'options'" in result.output
    assert "OK:" not in result.output


def test_loaded_targets_are_finite(tmp_path: Path) -> None:
    # the boundary that still loads: large but summable counts give finite n and probs
    path = _user_file(
        tmp_path, "q1,Tea?,Yes|No,PARTY,Blue,Yes,1e307", "q1,Tea?,Yes|No,PARTY,Blue,No,1e307"
    )
    target = load_user_dataset(path).target("PARTY=Blue", "q1")
    assert target is not None and target.n is not None and math.isfinite(target.n)
    np.testing.assert_allclose(target.probs, [0.5, 0.5])
