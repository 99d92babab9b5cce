"""The three reference datasets, checked against facts of BENCHMARK_SPEC §1 and §11."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from distalign.cli.data import data_app
from distalign.data import Dataset, Group
from distalign.datasets import available_datasets, load_dataset, location
from distalign.datasets.reference import (
    MAIN_GROUPS,
    PEW_100,
    globalvalues_examples,
    globalvalues_id,
    load_globalvalues,
    load_nytimes,
    load_opinionqa,
    main_groups,
)


@pytest.fixture(scope="module")
def opinionqa(reference_dir: Path) -> Dataset:
    return load_opinionqa(reference_dir)


@pytest.fixture(scope="module")
def nytimes(reference_dir: Path) -> Dataset:
    return load_nytimes(reference_dir)


@pytest.fixture(scope="module")
def globalvalues(reference_dir: Path) -> Dataset:
    return load_globalvalues(reference_dir)


def _support(dataset: Dataset, group: Group, qid: str) -> frozenset[str] | None:
    """The options a group actually chose: the paper's per-group option set (D2)."""
    target = dataset.target(group, qid)
    if target is None:
        return None
    options = dataset.questions[qid].options
    return frozenset(o for o, p in zip(options, target.probs, strict=True) if p > 0)


def test_registry_lists_the_three() -> None:
    # further registered datasets (opinionqa-500, globalvalues-all, ...) are tested elsewhere
    assert {"globalvalues", "nytimes", "opinionqa"} <= set(available_datasets())


def test_checksum_table_matches_reference_copy(reference_dir: Path) -> None:
    sums = {}
    for line in (reference_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.removeprefix("./")] = digest
    for name, digest in location.reference_checksums().items():
        assert sums[name] == digest, name
        assert location.sha256_of(reference_dir / name) == digest, name


def test_load_by_name_with_data_dir(reference_dir: Path) -> None:
    ds = load_dataset("nytimes", data_dir=reference_dir)
    assert ds.name == "nytimes" and len(ds.questions) == 235


@pytest.mark.parametrize("name", ["opinionqa", "nytimes", "globalvalues"])
def test_every_target_is_a_distribution(name: str, reference_dir: Path) -> None:
    ds = load_dataset(name, data_dir=reference_dir)
    datasets = [ds] + ([ds.pool] if ds.pool is not None else [])
    for dataset in datasets:
        assert dataset.targets
        for (group_key, qid), target in dataset.targets.items():
            assert len(target.probs) == len(dataset.questions[qid].options)
            assert np.all(target.probs >= 0)
            assert target.probs.sum() == pytest.approx(1.0, abs=1e-12), (group_key, qid)
            assert Group.parse(group_key) in dataset.groups
    assert ds.notes


# ----------------------------------------------------------------------------- OpinionQA


def test_opinionqa_questions_in_file_order(opinionqa: Dataset, reference_dir: Path) -> None:
    raw = json.loads((reference_dir / PEW_100 / "POLPARTY_data.json").read_text())
    assert len(opinionqa.questions) == 100
    assert list(opinionqa.questions) == list(raw)
    assert next(iter(opinionqa.questions)) == "GAP21Q33_g_W82"
    # D4: MC_options is kept verbatim for paper mode, never used for the order.
    for qid, question in opinionqa.questions.items():
        assert json.loads(question.extra["mc_options"]) == raw[qid]["MC_options"]


def test_opinionqa_groups(opinionqa: Dataset) -> None:
    keys = [g.key for g in opinionqa.groups]
    assert len(keys) == 14  # 5 POLPARTY + 2 SEX + 7 RACE values in the files
    assert "RACE=Mixed Race" in keys and "POLPARTY=Independent" in keys
    assert len(MAIN_GROUPS["opinionqa"]) == 6
    assert main_groups(opinionqa) == list(MAIN_GROUPS["opinionqa"])
    for group in MAIN_GROUPS["opinionqa"]:
        assert sum(1 for _ in opinionqa.questions if opinionqa.target(group, _)) >= 99


def test_opinionqa_survey_order_and_counts(opinionqa: Dataset) -> None:
    question = opinionqa.questions["GAP21Q33_g_W82"]
    assert question.options == ("Top priority", "Some priority", "No priority", "Refused")
    assert question.ordinal == (1.0, 2.0, 3.0, None)
    assert question.paper_options == ("No priority", "Refused", "Some priority", "Top priority")
    democrat = opinionqa.target("POLPARTY=Democrat", "GAP21Q33_g_W82")
    assert democrat is not None and democrat.n == 428
    np.testing.assert_allclose(democrat.probs, np.array([60, 239, 128, 1]) / 428)


def test_opinionqa_paper_options_are_alphabetical(opinionqa: Dataset) -> None:
    for question in opinionqa.questions.values():
        assert question.paper_options == tuple(sorted(question.options))
        assert question.ordinal is not None


def test_no_question_falls_back_to_alphabetical(opinionqa: Dataset) -> None:
    assert not any("options in alphabetical order" in note for note in opinionqa.notes)
    # The 3 questions whose 'None' answer is absent from every group keep survey order.
    assert opinionqa.questions["GROWUPGUN4_W26"].options == (
        "All or most",
        "Some",
        "Only a few",
        "Refused",
    )
    dropped = [n.split(":")[0] for n in opinionqa.notes if "have no respondents" in n]
    assert dropped == ["GROWUPGUN4_W26", "RACESURV40_W43", "MADEUPTOPICd_W45"]


def test_fem2_has_no_male_target(opinionqa: Dataset) -> None:
    assert opinionqa.target("SEX=Male", "FEM2_W29") is None
    female = opinionqa.target("SEX=Female", "FEM2_W29")
    assert female is not None and female.n == 2445
    tiny = opinionqa.target("SEX=Female", "MAN1C_W29")
    assert tiny is not None and tiny.n == 2  # D5: kept, with its n


def test_respondent_range(opinionqa: Dataset) -> None:
    main = MAIN_GROUPS["opinionqa"]
    ns = [t.n for g in main for q in opinionqa.questions if (t := opinionqa.target(g, q))]
    assert len(ns) == 599  # 600 items minus FEM2_W29 Male
    counted = [n for n in ns if n is not None]
    assert len(counted) == 599 and min(counted) == 2 and max(counted) == 8016


def test_refused(opinionqa: Dataset) -> None:
    # D3: in the union option set of every question; the paper's Democrat set (which the
    # unsteered prompts showed) has it in 97 of 100.
    assert all("Refused" in q.options for q in opinionqa.questions.values())
    democrat = Group("POLPARTY", "Democrat")
    with_refused = [
        qid
        for qid in opinionqa.questions
        if "Refused" in (_support(opinionqa, democrat, qid) or frozenset())
    ]
    assert len(with_refused) == 97


def test_group_specific_option_sets(opinionqa: Dataset) -> None:
    """D2: 24 questions differ across the main groups; per-group counts of lacking ones."""
    lacking: Counter[str] = Counter()
    differing = 0
    for qid in opinionqa.questions:
        sets = {g: _support(opinionqa, g, qid) for g in MAIN_GROUPS["opinionqa"]}
        present = [s for s in sets.values() if s is not None]
        union = frozenset().union(*present)
        differing += len({s or frozenset() for s in sets.values()}) > 1
        lacking.update(g.value for g, s in sets.items() if s is not None and s != union)
    assert differing == 24  # FEM2_W29 counts: Male has no option set at all
    assert lacking == {
        "Black": 16,
        "Male": 8,
        "Republican": 7,
        "Female": 4,
        "Democrat": 3,
        "White": 2,
    }


def test_opinionqa_pool_and_similar(opinionqa: Dataset) -> None:
    pool = opinionqa.pool
    assert pool is not None and len(pool.questions) == 494
    assert set(opinionqa.questions) <= set(pool.questions)
    assert [g.key for g in pool.groups] == [g.key for g in opinionqa.groups]
    assert set(opinionqa.similar) == set(opinionqa.questions)
    assert len(pool.similar) == 494
    for qid, neighbours in pool.similar.items():
        assert len(neighbours) == 10 and qid not in neighbours
        assert set(neighbours) <= set(pool.questions)
    for qid in opinionqa.questions:
        evaluated = sum(n in opinionqa.questions for n in opinionqa.similar[qid])
        assert 0 <= evaluated <= 5


def test_piped_question_note(opinionqa: Dataset) -> None:
    assert opinionqa.pool is not None
    assert "being Asian" in opinionqa.questions["IDIMPORT_W43"].text
    assert "being white" in opinionqa.pool.questions["IDIMPORT_W43"].text
    assert any(note.startswith("D6: IDIMPORT_W43") for note in opinionqa.notes)


# ----------------------------------------------------------------------------- NYT


def test_nytimes(nytimes: Dataset, reference_dir: Path) -> None:
    raw = json.loads((reference_dir / "nytimes" / "POLPARTY_data.json").read_text())
    assert list(nytimes.questions) == list(raw)
    assert len(nytimes.questions) == 235
    assert [g.key for g in nytimes.groups] == [
        "POLPARTY=Democrat",
        "POLPARTY=Republican",
        "SEX=Male",
        "SEX=Female",
    ]
    assert len(nytimes.targets) == 940
    ns = [t.n for t in nytimes.targets.values() if t.n is not None]
    assert len(ns) == 940 and min(ns) == 6 and max(ns) == 31


def test_nytimes_question_fields(nytimes: Dataset) -> None:
    book = nytimes.questions["The Bee Sting By Paul Murray"]
    assert book.options == (
        "1: Very unlikely",
        "2: Somewhat unlikely",
        "3: Somewhat likely",
        "4: Very likely",
    )
    assert book.ordinal == (1.0, 2.0, 3.0, 4.0)
    assert "how likely are you to read it?" in book.text
    assert book.extra["title"] == "The Bee Sting" and book.extra["author"] == "Paul Murray"
    assert book.extra["genre"] == "Fiction" and "Irish family" in book.extra["summary"]
    democrat = nytimes.target("POLPARTY=Democrat", book.id)
    assert democrat is not None and democrat.n == 20
    np.testing.assert_allclose(democrat.probs, [0.45, 0.3, 0.15, 0.1])


def test_nytimes_similar(nytimes: Dataset) -> None:
    assert set(nytimes.similar) == set(nytimes.questions)
    for book, neighbours in nytimes.similar.items():
        assert len(neighbours) == 10 and book not in neighbours
        assert set(neighbours) <= set(nytimes.questions)


# ----------------------------------------------------------------------------- Global values


def test_globalvalues_shape(globalvalues: Dataset) -> None:
    assert len(globalvalues.questions) == 100
    assert len(globalvalues.groups) == 26
    assert all(g.attribute == "COUNTRY" for g in globalvalues.groups)
    assert len(globalvalues.targets) == 302  # 98 x 3 + 2 x 4 (the 4th country included)
    assert main_groups(globalvalues) == globalvalues.groups


def test_globalvalues_targets_follow_countries(globalvalues: Dataset, reference_dir: Path) -> None:
    raw = json.loads((reference_dir / "Global_Values/data/data.json").read_text())
    slot_counts: Counter[int] = Counter()
    for question in globalvalues.questions.values():
        key = question.extra["source_key"]
        countries = json.loads(question.extra["countries"])
        assert countries == raw[key]["countries"]
        assert question.id == globalvalues_id(key) and question.text == key.strip()
        assert question.ordinal is None
        slot_counts[len(countries)] += 1
        have = {g.value for g in globalvalues.groups if globalvalues.target(g, question.id)}
        assert have == set(countries)
        for country in countries:
            target = globalvalues.target(Group("COUNTRY", country), question.id)
            assert target is not None and target.n is None
            # Renormalised, but within the file's +-0.002 of the given values.
            np.testing.assert_allclose(target.probs, raw[key][country], atol=0.0021)
    assert slot_counts == {3: 98, 4: 2}


def test_globalvalues_ids_are_stable(globalvalues: Dataset) -> None:
    first = next(iter(globalvalues.questions.values()))
    assert first.id == "gv-cd1e266490"
    assert first.extra["source_key"].startswith("Thinking about our relations with China")
    assert len(set(globalvalues.questions)) == 100


def test_globalvalues_examples(globalvalues: Dataset, reference_dir: Path) -> None:
    examples = globalvalues_examples(reference_dir)
    assert len(examples) == 302
    for qid, country in examples:
        countries = json.loads(globalvalues.questions[qid].extra["countries"])
        assert country in countries
    sizes = Counter(len(v) for v in examples.values())
    assert sizes[10] == 239 and min(sizes) == 5
    text, options, probs = examples[("gv-cd1e266490", "Indonesia")][0]
    assert text.startswith("Is it more important for your country to have strong economic ties")
    assert options[:2] == ["China", "United States"] and len(options) == len(probs) == 8
    assert probs[0] == pytest.approx(0.3434343434343434)


# ----------------------------------------------------------------------------- CLI


def test_cli_info(reference_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(data_app, ["info", "nytimes", "--data-dir", str(reference_dir)])
    assert result.exit_code == 0, result.output
    assert "nytimes: 235 questions, 4 groups, 940 (group, question) targets" in result.output
    assert "- D8:" in result.output
    unknown = runner.invoke(data_app, ["info", "nytimess", "--data-dir", str(reference_dir)])
    assert unknown.exit_code == 2 and "Did you mean 'nytimes'" in unknown.output


def test_survey_order_fallbacks() -> None:
    from distalign.datasets.reference import _PewInfo, _survey_order

    info = _PewInfo(("Yes", "No", "Refused"), {"Yes": 1.0, "No": 2.0}, "W1")
    assert _survey_order("q", {"Refused", "No", "Yes"}, info) == (["Yes", "No", "Refused"], None)
    kept, note = _survey_order("q", {"No", "Yes"}, info)
    assert kept == ["Yes", "No"] and note is not None and "['Refused']" in note
    mixed, note = _survey_order("q", {"Yes", "Maybe", "No"}, info)
    assert mixed == ["Maybe", "No", "Yes"]
    assert note is not None and "options in alphabetical order" in note and "Maybe" in note
    missing, note = _survey_order("q", {"b", "a"}, None)
    assert missing == ["a", "b"] and note is not None and "not in info.csv" in note
