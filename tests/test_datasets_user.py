"""User datasets in the long format: loading and validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from distalign.cli.data import data_app
from distalign.datasets import load_dataset
from distalign.datasets.user import MAX_ERRORS, DatasetError, load_user_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


def test_valid_probability_csv() -> None:
    ds = load_user_dataset(FIXTURES / "valid_probability.csv")
    assert ds.name == "valid_probability"
    assert list(ds.questions) == ["q1", "q2"]
    assert [g.key for g in ds.groups] == ["PARTY=Blue", "PARTY=Red"]
    q1, q2 = ds.questions["q1"], ds.questions["q2"]
    assert q1.options == ("A lot", "A little", "Not at all")  # JSON list form
    assert q2.options == ("Yes", "No", "Refused")  # "|" form
    assert q1.ordinal == (1.0, 2.0, 3.0)
    assert q2.ordinal is None
    blue = ds.target("PARTY=Blue", "q1")
    assert blue is not None
    np.testing.assert_allclose(blue.probs, [0.5, 0.3, 0.2])
    assert blue.n == 120
    # Absent options get 0; 0.9995 is within tolerance and renormalised to exactly 1.
    red = ds.target("PARTY=Red", "q1")
    assert red is not None and red.n is None
    np.testing.assert_allclose(red.probs, [1.0, 0.0, 0.0])
    blue2 = ds.target("PARTY=Blue", "q2")
    assert blue2 is not None
    np.testing.assert_allclose(blue2.probs, [0.75, 0.25, 0.0])  # aligned to options


def test_valid_count_jsonl() -> None:
    ds = load_user_dataset(FIXTURES / "valid_count.jsonl")
    assert ds.questions["q1"].options == ("Spring", "Summer", "Autumn", "Winter")
    young = ds.target("AGE=18-29", "q1")
    old = ds.target("AGE=65+", "q1")
    assert young is not None and old is not None
    np.testing.assert_allclose(young.probs, [0, 0.75, 0, 0.25])
    assert young.n == 8
    np.testing.assert_allclose(old.probs, [0, 0, 1, 0])
    assert old.n == 3


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = pd.read_csv(FIXTURES / "valid_probability.csv", keep_default_na=False)
    frame["n"] = pd.to_numeric(frame["n"])  # a real numeric column with NaN gaps
    path = tmp_path / "survey.parquet"
    frame.to_parquet(path)
    from_parquet = load_user_dataset(path)
    from_csv = load_user_dataset(FIXTURES / "valid_probability.csv")
    assert from_parquet.questions == from_csv.questions
    assert from_parquet.targets.keys() == from_csv.targets.keys()
    for key, target in from_csv.targets.items():
        np.testing.assert_allclose(from_parquet.targets[key].probs, target.probs)
        assert from_parquet.targets[key].n == target.n


def test_parquet_errors_name_row(tmp_path: Path) -> None:
    frame = pd.read_csv(FIXTURES / "valid_probability.csv", keep_default_na=False)
    frame.loc[1, "probability"] = -0.3
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(DatasetError) as caught:
        load_user_dataset(path)
    assert "bad.parquet, row 2, field 'probability'" in str(caught.value)


def test_load_dataset_dispatches_paths() -> None:
    ds = load_dataset(str(FIXTURES / "valid_count.jsonl"))
    assert ds.summary() == "valid_count: 1 questions, 2 groups, 2 (group, question) targets"


# (fixture, where, field, words in the message)
BAD_FILES = [
    ("missing_column.csv", "header", "option", "missing column"),
    ("both_value_columns.csv", "header", "probability/count", "both"),
    ("no_value_column.csv", "header", "probability/count", "missing"),
    ("n_with_count.csv", "header", "n", "only allowed"),
    ("empty_file.csv", "row 1", "(all)", "no data rows"),
    ("prob_sum.csv", "row 2", "probability", "sums to 0.9"),
    ("negative_probability.csv", "row 3", "probability", "negative"),
    ("probability_above_one.csv", "row 1", "probability", "at most 1"),
    ("probability_above_one.csv", "row 2", "probability", "negative"),
    ("negative_count.csv", "row 2", "count", "negative"),
    ("unknown_option.csv", "row 2", "option", "'Perhaps' is not in"),
    ("duplicate_row.csv", "row 3", "option", "duplicate of row 1"),
    ("question_text_differs.csv", "row 2", "question", "differs from row 1"),
    ("options_differ.csv", "row 2", "options", "differs from row 1"),
    ("ordinal_differs.csv", "row 2", "ordinal", "differs from row 1"),
    ("bad_ordinal.csv", "row 1", "ordinal", "true or false"),
    ("empty_group.csv", "row 2", "count", "empty group"),
    ("non_numeric.csv", "row 2", "probability", "not a number: 'lots'"),
    ("non_numeric_n.csv", "row 1", "n", "not a number: 'many'"),
    ("n_differs.csv", "row 1", "n", "differs"),
    ("empty_field.csv", "row 2", "group_value", "empty"),
    ("bad_options_json.csv", "row 1", "options", "not a JSON list"),
    ("duplicate_options.csv", "row 1", "options", "duplicate options ['Yes']"),
    ("attribute_with_equals.csv", "row 1", "group_attribute", "'='"),
    ("invalid_json.jsonl", "row 2", "(line)", "invalid JSON"),
    ("bad_value.jsonl", "row 3", "count", "negative"),  # JSONL rows = lines, blanks counted
]


@pytest.mark.parametrize(("name", "where", "field", "words"), BAD_FILES)
def test_bad_file_message_names_file_row_and_field(
    name: str, where: str, field: str, words: str
) -> None:
    with pytest.raises(DatasetError) as caught:
        load_user_dataset(FIXTURES / name)
    message = str(caught.value)
    line = next((p for p in caught.value.problems if p.startswith(f"{name}, {where}, ")), None)
    assert line is not None, message
    assert f"field '{field}'" in line, message
    assert words in line, message
    assert str(FIXTURES / name) in message  # the full path heads the message


def test_all_errors_reported_together_without_cascades() -> None:
    with pytest.raises(DatasetError) as caught:
        load_user_dataset(FIXTURES / "many_errors.csv")
    problems = caught.value.problems
    assert [p.split(", field")[0] for p in problems] == [
        "many_errors.csv, row 2",
        "many_errors.csv, row 3",
        "many_errors.csv, row 4",
    ]
    # Row 1's group lost row 2, so its sum is not checked (no second, misleading error).
    assert not any("sums to" in p for p in problems)
    assert "3 problem(s)" in str(caught.value)


def test_error_cap(tmp_path: Path) -> None:
    header = "question_id,question,options,group_attribute,group_value,option,count"
    rows = [f"q{i},Tea?,Yes|No,PARTY,Blue,Yes,-1" for i in range(MAX_ERRORS + 10)]
    path = tmp_path / "huge.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(DatasetError) as caught:
        load_user_dataset(path)
    assert len(caught.value.problems) == MAX_ERRORS
    assert f"{MAX_ERRORS + 10} problem(s)" in str(caught.value)
    assert "... and 10 more" in str(caught.value)


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "survey.txt"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="unsupported file type '.txt'"):
        load_user_dataset(text)
    with pytest.raises(DatasetError, match="no such file"):
        load_user_dataset(tmp_path / "absent.csv")


def test_cli_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(data_app, ["validate", str(FIXTURES / "valid_probability.csv")])
    assert good.exit_code == 0, good.output
    assert "OK: valid_probability: 2 questions" in good.output
    bad_path = tmp_path / "prob_sum.csv"
    shutil.copy(FIXTURES / "prob_sum.csv", bad_path)
    bad = runner.invoke(data_app, ["validate", str(bad_path)])
    assert bad.exit_code == 2
    assert "prob_sum.csv, row 2, field 'probability'" in bad.output
