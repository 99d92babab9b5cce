"""Groups from individual responses: microdata files, conjunctions, weights, Kish n, NYT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distalign.data import Dataset, Group
from distalign.datasets import load_dataset
from distalign.datasets.microdata import load_microdata
from distalign.datasets.microdata_targets import bin_label, bin_labels, kish_n
from distalign.datasets.nytimes_individual import (
    DOUBLE_RATER,
    NYT_INDIVIDUAL_MAIN_GROUPS,
    load_nytimes_individual,
)
from distalign.datasets.reference import load_nytimes, main_groups
from distalign.datasets.user import DatasetError
from distalign.errors import UnknownNameError
from distalign.metrics.baselines import baseline_items
from distalign.runner import chosen_groups
from distalign.steering.prompts import build_prompt, group_phrase

HEADER = "respondent_id,question_id,question,options,answer,PARTY,SEX,AGE,weight"
ROWS = [
    "r1,tea,Do you like tea?,Yes|No,Yes,Blue,F,23,1",
    "r2,tea,Do you like tea?,Yes|No,No,Red,F,45,2",
    "r3,tea,Do you like tea?,Yes|No,Yes,Blue,M,70,1",
    "r4,tea,Do you like tea?,Yes|No,No,Blue,F,31,3",
    "r1,cof,Coffee every day?,Yes|No|Sometimes,Sometimes,Blue,F,23,1",
    "r2,cof,Coffee every day?,Yes|No|Sometimes,Yes,Red,F,45,2",
]


def _write(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _problems(path: Path, **kwargs: object) -> str:
    with pytest.raises(DatasetError) as caught:
        load_microdata(path, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


# --- Group ----------------------------------------------------------------------------------


def test_single_group_is_unchanged() -> None:
    group = Group.parse("POLPARTY=Democrat")
    assert group == Group("POLPARTY", "Democrat")
    assert (group.attribute, group.value, group.parts, group.key) == (
        "POLPARTY",
        "Democrat",
        (),
        "POLPARTY=Democrat",
    )
    assert group.conditions == (("POLPARTY", "Democrat"),)
    assert Group.parse("COUNTRY=Bosnia & Herzegovina").value == "Bosnia & Herzegovina"
    assert Group.of([("SEX", "Male")]) == Group("SEX", "Male")


def test_conjunction_is_canonical() -> None:
    group = Group.parse("SEX=Female&POLPARTY=Democrat")
    assert group == Group.parse("POLPARTY=Democrat&SEX=Female")
    assert group.key == "POLPARTY=Democrat&SEX=Female"
    assert group.parts == (("POLPARTY", "Democrat"), ("SEX", "Female"))
    assert (group.attribute, group.value) == ("POLPARTY&SEX", "Democrat&Female")
    assert Group.parse(group.key) == group
    assert group != Group("POLPARTY", "Democrat")
    with pytest.raises(ValueError, match="repeated"):
        Group.parse("SEX=Male&SEX=Female")
    with pytest.raises(ValueError, match="A=x&B=y"):
        Group.parse("SEX=Male&POLPARTY=")
    with pytest.raises(ValueError, match="inconsistent"):
        Group("SEX&POLPARTY", "Female&Democrat", (("SEX", "Female"), ("POLPARTY", "Democrat")))


def test_persona_wording() -> None:
    # A single group keeps its wording in both modes; a conjunction joins its parts.
    assert group_phrase(Group("POLPARTY", "Democrat"), "standard") == "Democrats"
    assert group_phrase(Group("POLPARTY", "Democrat"), "paper") == 'a group of "Democrats"'
    assert group_phrase(Group("AGE", "18-29"), "standard") == "people with AGE=18-29"
    both = Group.parse("POLPARTY=Republican&SEX=Female")
    assert group_phrase(both, "standard") == "Republicans who are women"
    assert group_phrase(both, "paper") == "Republicans who are women"
    mixed = Group.parse("AGE=18-29&SEX=Female&POLPARTY=Democrat")
    assert group_phrase(mixed, "standard") == "Democrats who are women, with AGE=18-29"
    assert group_phrase(Group.parse("AGE=18-29&X=y"), "standard") == (
        "people with AGE=18-29 and X=y"
    )


# --- weights and bins -----------------------------------------------------------------------


def test_kish_and_bins() -> None:
    assert kish_n([1, 1, 1, 1]) == 4
    assert kish_n([1, 2]) == pytest.approx(9 / 5)
    assert kish_n([2, 2, 2]) == 3  # scale-free
    assert bin_labels([18, 30, 45, 65]) == ["18-29", "30-44", "45-64", "65+"]
    assert bin_labels([0.5, 1.5]) == ["0.5-1.5", "1.5+"]
    assert bin_label(29.9, [18, 30]) == "18-29"
    assert bin_label(30, [18, 30]) == "30+"
    assert bin_label(17, [18, 30]) is None


# --- microdata files ------------------------------------------------------------------------


def test_weighted_shares_and_kish_n(tmp_path: Path) -> None:
    ds = load_microdata(_write(tmp_path, ROWS), bins={"AGE": [18, 30, 65]})
    assert [g.key for g in ds.groups] == [
        "PARTY=Blue",
        "PARTY=Red",
        "SEX=F",
        "SEX=M",
        "AGE=18-29",
        "AGE=30-64",
        "AGE=65+",
    ]
    assert ds.questions["cof"].options == ("Yes", "No", "Sometimes")
    women = ds.target("SEX=F", "tea")  # r1 Yes (w 1), r2 No (w 2), r4 No (w 3)
    assert women is not None
    np.testing.assert_allclose(women.probs, [1 / 6, 5 / 6])
    assert women.n == pytest.approx(36 / 14)  # (1+2+3)^2 / (1+4+9)
    blue = ds.target("PARTY=Blue", "cof")
    assert blue is not None
    np.testing.assert_array_equal(blue.probs, [0, 0, 1])
    assert blue.n == 1
    assert ds.target("AGE=30-64", "tea") is not None
    assert ds.target("PARTY=Red", "cof") is not None and ds.target("SEX=M", "cof") is None


def test_conjunction_is_built_on_first_use(tmp_path: Path) -> None:
    ds = load_microdata(_write(tmp_path, ROWS), bins={"AGE": [18, 30, 65]})
    assert Group.parse("PARTY=Blue&SEX=F") not in ds.groups
    cell = ds.target("SEX=F&PARTY=Blue", "tea")  # a key string, in any order
    assert cell is not None  # r1 Yes (w 1), r4 No (w 3)
    np.testing.assert_allclose(cell.probs, [0.25, 0.75])
    assert cell.n == pytest.approx(16 / 10)
    # The whole party x sex family came with it (for population / other-group baselines).
    keys = [g.key for g in ds.groups if g.parts]
    assert keys == ["PARTY=Blue&SEX=F", "PARTY=Blue&SEX=M", "PARTY=Red&SEX=F"]
    assert ds.has_group(Group.parse("AGE=18-29&PARTY=Blue"))
    assert not ds.has_group(Group.parse("PARTY=Red&SEX=M"))  # nobody is both
    assert not ds.has_group(Group.parse("PARTY=Blue&COLOUR=green"))  # no such attribute
    assert ds.target("PARTY=Red&SEX=M", "tea") is None
    assert chosen_groups(ds, ["SEX=F&PARTY=Blue"]) == [Group.parse("PARTY=Blue&SEX=F")]
    with pytest.raises(UnknownNameError, match="PARTY=Red&SEX=M"):
        chosen_groups(ds, ["PARTY=Red&SEX=M"])


def test_weights_reach_the_noise_floor(tmp_path: Path) -> None:
    ds = load_microdata(_write(tmp_path, ROWS))
    items = baseline_items(ds, [Group("SEX", "F"), Group("SEX", "M")], n_sim=50)
    floor = items[(items["method"] == "noise_floor") & (items["group"] == "SEX=F")]
    tea = floor[floor["question_id"] == "tea"].iloc[0]
    assert tea["n"] == pytest.approx(36 / 14)
    assert tea["detail"] == "expected TV of a resample of n=3"  # round(2.57), not 3 rows x w


def test_unweighted_jsonl_parquet_and_sidecar_bins(tmp_path: Path) -> None:
    records = [dict(zip(HEADER.split(","), row.split(","), strict=True)) for row in ROWS]
    for record in records:
        del record["weight"]
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    (tmp_path / "s.bins.json").write_text('{"AGE": [18, 40]}', encoding="utf-8")
    ds = load_dataset(jsonl)  # by path: the respondent_id column makes it microdata
    assert ds.name == "s"
    assert [g.key for g in ds.groups if g.attribute == "AGE"] == ["AGE=18-39", "AGE=40+"]
    women = ds.target("SEX=F", "tea")
    assert women is not None and women.n == 3  # no weights: n is the respondent count
    np.testing.assert_allclose(women.probs, [1 / 3, 2 / 3])
    frame = pd.DataFrame(records)
    frame["AGE"] = pd.to_numeric(frame["AGE"])
    frame.to_parquet(tmp_path / "s.parquet")
    again = load_dataset(tmp_path / "s.parquet")
    assert again.targets.keys() == ds.targets.keys()


def test_unknown_attribute_value_is_in_no_group(tmp_path: Path) -> None:
    rows = [*ROWS[:3], "r4,tea,Do you like tea?,Yes|No,No,,F,31,3"]
    ds = load_microdata(_write(tmp_path, rows))
    blue = ds.target("PARTY=Blue", "tea")
    assert blue is not None and blue.n == 2  # r4 has no party
    women = ds.target("SEX=F", "tea")
    assert women is not None and women.n == pytest.approx(36 / 14)  # r4 still counts here


@pytest.mark.parametrize(
    ("rows", "header", "bins", "expected"),
    [
        (["r1,tea,Tea?,Yes|No,Maybe,Blue,F,23,1"], HEADER, None, "row 1, field 'answer'"),
        (["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,0"], HEADER, None, "row 1, field 'weight'"),
        (["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,x"], HEADER, None, "row 1, field 'weight'"),
        (
            ["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,1", "r1,cof,Cof?,Yes|No,Yes,Blue,F,23,2"],
            HEADER,
            None,
            "row 2, field 'weight': 2 differs from row 1 of respondent 'r1'",
        ),
        (
            ["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,1", "r1,cof,Cof?,Yes|No,Yes,Red,F,23,1"],
            HEADER,
            None,
            "row 2, field 'PARTY': 'Red' differs from row 1 of respondent 'r1'",
        ),
        (
            ["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,1", "r1,tea,Tea?,Yes|No,No,Blue,F,23,1"],
            HEADER,
            None,
            "row 2, field 'answer': duplicate of row 1 (same respondent and question)",
        ),
        (
            ["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,1", "r2,tea,Tea!,Yes|No,Yes,Blue,F,23,1"],
            HEADER,
            None,
            "row 2, field 'question': differs from row 1",
        ),
        (["r1,tea,Tea?,Yes|No,Yes,Blue,F,old,1"], HEADER, {"AGE": [18]}, "row 1, field 'AGE'"),
        (["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,1"], HEADER, {"AGE": [30, 18]}, "header, field 'AGE'"),
        (["r1,tea,Tea?,Yes|No,Yes,Blue,F,23,1"], HEADER, {"AGEE": [18]}, "header, field 'AGEE'"),
        (
            ["r1,tea,Yes|No,Yes,Blue"],
            "respondent_id,question_id,options,answer,P",
            None,
            "header, field 'question': missing column",
        ),
        (
            ["r1,tea,Tea?,Yes|No,Yes,1"],
            "respondent_id,question_id,question,options,answer,count",
            None,
            "header, field 'count': a long-format column",
        ),
        (
            ["r1,tea,Tea?,Yes|No,Yes"],
            "respondent_id,question_id,question,options,answer",
            None,
            "header, field '(attributes)': no attribute columns",
        ),
        (
            ["r1,tea,Tea?,Yes|No,Yes,x"],
            "respondent_id,question_id,question,options,answer,A&B",
            None,
            "header, field 'A&B'",
        ),
        (["r1,tea,Tea?,Yes,Yes,Blue,F,23,1"], HEADER, None, "row 1, field 'options'"),
        ([], HEADER, None, "row 1, field '(all)': the file has no data rows"),
    ],
)
def test_invalid_files_name_file_row_and_field(
    tmp_path: Path, rows: list[str], header: str, bins: object, expected: str
) -> None:
    message = _problems(_write(tmp_path, rows, header), bins=bins)
    assert "nothing was loaded" in message
    assert f"s.csv, {expected}" in message


def test_all_problems_reported_together(tmp_path: Path) -> None:
    rows = ["r1,tea,Tea?,Yes|No,Maybe,Blue,F,23,1", "r2,tea,Tea?,Yes|No,Yes,Blue,F,23,-1"]
    message = _problems(_write(tmp_path, rows))
    assert "2 problem(s) found" in message
    assert "row 1, field 'answer'" in message and "row 2, field 'weight'" in message


def test_bad_sidecar_bins(tmp_path: Path) -> None:
    (tmp_path / "s.bins.json").write_text("[18, 30]", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"s\.bins\.json: expected a JSON object"):
        load_dataset(_write(tmp_path, ROWS))


def test_long_format_still_rejects_ampersand_attribute(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        "question_id,question,options,group_attribute,group_value,option,count\n"
        "q,Q?,Yes|No,A&B,x,Yes,3\n",
        encoding="utf-8",
    )
    with pytest.raises(DatasetError, match=r"long\.csv, row 1, field 'group_attribute'"):
        load_dataset(path)


# --- the NYT individual ratings -------------------------------------------------------------


@pytest.fixture(scope="module")
def individual(reference_dir: Path) -> Dataset:
    return load_nytimes_individual(reference_dir)


@pytest.fixture(scope="module")
def aggregated(reference_dir: Path) -> Dataset:
    return load_nytimes(reference_dir)


def test_nyt_individual_reproduces_every_aggregated_target(
    individual: Dataset, aggregated: Dataset
) -> None:
    assert list(individual.questions) == list(aggregated.questions)
    assert len(aggregated.targets) == 940
    for (key, qid), expected in aggregated.targets.items():
        got = individual.target(key, qid)
        assert got is not None, (key, qid)
        np.testing.assert_array_equal(got.probs, expected.probs, err_msg=f"{key} {qid}")
        assert got.n == expected.n, (key, qid)


def test_nyt_individual_quirks_are_recorded(individual: Dataset) -> None:
    notes = "\n".join(individual.notes)
    assert f"D12: restored 7 ratings that {DOUBLE_RATER}" in notes
    assert "values): INCOME of 6653904d974360d0c90b6bf8." in notes
    assert "out; 8 raters): POLPARTY of 6638d20afffea64b4ef38d38, POLPARTY of" in notes
    assert "(335 raters)" in notes


def test_nyt_individual_groups(individual: Dataset) -> None:
    keys = [g.key for g in individual.groups]
    assert keys[:3] == ["POLPARTY=Democrat", "POLPARTY=Republican", "POLPARTY=Other"]
    assert "INCOME=$30k to $99k" in keys and "RACE=Black" in keys and "AGE=65+" in keys
    assert all("," not in k for k in keys)  # --group splits on commas
    assert "POLPARTY=Republican&SEX=Female" in keys
    assert main_groups(individual) == list(NYT_INDIVIDUAL_MAIN_GROUPS)
    assert len(main_groups(individual)) == 8


def test_nyt_intersections_partition_their_parents(individual: Dataset) -> None:
    # Every rater in a party table has a sex, so a party's ratings split exactly into its
    # party x sex cells: the counts add up and the shares are the n-weighted mix.
    for party in ("Democrat", "Republican"):
        cells = [Group.of([("POLPARTY", party), ("SEX", s)]) for s in ("Male", "Female", "Other")]
        for qid in individual.questions:
            parent = individual.target(Group("POLPARTY", party), qid)
            assert parent is not None and parent.n is not None
            parts = [t for c in cells if (t := individual.target(c, qid)) is not None]
            assert sum(t.n for t in parts if t.n) == parent.n
            mixed = sum(t.probs * t.n for t in parts if t.n) / parent.n
            np.testing.assert_allclose(mixed, parent.probs, atol=1e-12)


def test_nyt_three_way_conjunction_and_prompt(individual: Dataset) -> None:
    group = Group.parse("POLPARTY=Democrat&SEX=Female&AGE=18-29")
    assert individual.has_group(group)
    qid = next(iter(individual.questions))
    target = individual.target(group, qid)
    assert target is not None and target.n is not None and 0 < target.n <= 31
    prompt = build_prompt(
        individual,
        individual.questions[qid],
        Group.parse("POLPARTY=Democrat&SEX=Female"),
        "persona",
        _wording(),
    )
    assert "Democrats who are women" in "\n".join(m["content"] for m in prompt.messages)


def _wording():  # type: ignore[no-untyped-def]
    from distalign.methods import get_method

    return get_method("verbalize")
