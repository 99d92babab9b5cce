"""The bigger evaluation sets on disk: ``opinionqa-500`` and ``globalvalues-all`` (real files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distalign.data import Dataset, Group, Question
from distalign.datasets import available_datasets, load_dataset
from distalign.datasets.reference import MAIN_GROUPS, main_groups
from distalign.methods import Verbalize
from distalign.steering import build_prompt, select_examples

DOCS = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


@pytest.fixture(scope="module")
def oqa100(reference_dir: Path) -> Dataset:
    return load_dataset("opinionqa", reference_dir)


@pytest.fixture(scope="module")
def oqa500(reference_dir: Path) -> Dataset:
    return load_dataset("opinionqa-500", reference_dir)


@pytest.fixture(scope="module")
def gv100(reference_dir: Path) -> Dataset:
    return load_dataset("globalvalues", reference_dir)


@pytest.fixture(scope="module")
def gvall(reference_dir: Path) -> Dataset:
    return load_dataset("globalvalues-all", reference_dir)


def _same_question(a: Question, b: Question) -> bool:
    return a.id == b.id or (
        a.text.strip().lower() == b.text.strip().lower() and a.options == b.options
    )


def test_both_are_registered() -> None:
    assert {"opinionqa-500", "globalvalues-all"} <= set(available_datasets())


def test_opinionqa_500_shape_and_overlap(oqa100: Dataset, oqa500: Dataset) -> None:
    assert len(oqa500.questions) == 494
    assert oqa500.name == "opinionqa-500"
    assert oqa500.pool is None  # examples come from the set itself
    assert [g.key for g in main_groups(oqa500)] == [g.key for g in MAIN_GROUPS["opinionqa"]]
    assert set(oqa100.questions) <= set(oqa500.questions)  # all 100 are in the wave set
    shared = set(oqa100.targets) & set(oqa500.targets)
    assert len(shared) == len(oqa100.targets) == 1388
    for key in shared:  # the same counts and option sets for every shared target
        a, b = oqa100.targets[key], oqa500.targets[key]
        assert a.n == b.n
        np.testing.assert_allclose(a.probs, b.probs)
        assert oqa100.questions[key[1]].options == oqa500.questions[key[1]].options
    reworded = [q for q in oqa100.questions if oqa100.questions[q].text != oqa500.questions[q].text]
    assert reworded == ["IDIMPORT_W43"]  # the piped question, quirk D6
    for target in oqa500.targets.values():
        assert target.n is not None and target.n > 0
        assert abs(float(target.probs.sum()) - 1) < 1e-9


def test_globalvalues_all_shape_and_overlap(gv100: Dataset, gvall: Dataset) -> None:
    assert len(gvall.questions) == 558
    assert gvall.pool is None
    shared = set(gv100.questions) & set(gvall.questions)
    assert len(shared) == 79  # shared questions keep the 100's gv- ids
    assert all(q.startswith("gvx-") for q in set(gvall.questions) - shared)
    for qid in shared:
        assert gv100.questions[qid].options == gvall.questions[qid].options
    shared_targets = set(gv100.targets) & set(gvall.targets)
    assert len(shared_targets) == 238
    assert all(key in gvall.targets for key in gv100.targets if key[1] in shared)
    for key in shared_targets:
        np.testing.assert_allclose(gv100.targets[key].probs, gvall.targets[key].probs)
    # the pool's own copies of shared questions agree with data.json (else the merge hid it)
    pool = gv100.pool
    assert pool is not None
    by_text = {q.text: q.id for q in pool.questions.values()}
    checked = 0
    for group, qid in shared_targets:
        pid = by_text[gv100.questions[qid].text]
        if (group, pid) in pool.targets:
            checked += 1
            np.testing.assert_allclose(
                pool.targets[(group, pid)].probs, gvall.targets[(group, qid)].probs
            )
    assert checked > 100
    assert len(gvall.targets) == 2184
    for target in gvall.targets.values():
        assert target.n is None
        assert abs(float(target.probs.sum()) - 1) < 1e-9


@pytest.mark.parametrize("name", ["oqa500", "gvall"])
def test_fewshot_never_draws_the_evaluated_question(
    name: str, request: pytest.FixtureRequest
) -> None:
    dataset: Dataset = request.getfixturevalue(name)
    checked = short = 0
    for question in dataset.questions.values():
        for group in main_groups(dataset):
            if dataset.target(group, question.id) is None:
                continue
            examples = select_examples(dataset, question, group)
            checked += 1
            short += len(examples) < 5
            for example in examples:
                assert not _same_question(example.question, question), (question.id, group)
                target = dataset.target(group, example.question.id)
                assert target is not None  # every example shows this group's own answers
                np.testing.assert_allclose(example.probs, target.probs)
    # every (question, group) with a target got examples; a few GV countries have < 5 candidates
    assert checked == sum(
        1 for g, _ in dataset.targets if Group.parse(g) in set(main_groups(dataset))
    )
    assert short <= 10


def test_similarity_lists_hold_no_copy_of_the_question(oqa500: Dataset, gvall: Dataset) -> None:
    for dataset in (oqa500, gvall):
        for key, ids in dataset.similar.items():
            qid = key.split("|", 1)[-1]
            me = dataset.questions[qid]
            assert ids, key
            assert not any(_same_question(me, dataset.questions[o]) for o in ids), key
    # same-text questions with different options are different questions and may be examples
    assert oqa500.questions["MASC2_W29"].text == oqa500.questions["FEM2_W29"].text


def test_globalvalues_all_keeps_the_papers_lists_for_shared_questions(
    gv100: Dataset, gvall: Dataset
) -> None:
    pool = gv100.pool
    assert pool is not None
    by_text = {q.text: q.id for q in gv100.questions.values()}
    rename = {pid: by_text.get(pq.text, pid) for pid, pq in pool.questions.items()}
    keys = [k for k in gv100.similar if k.split("|", 1)[1] in gvall.questions]
    assert len(keys) == 238  # every shared (country, question) of the 100 has the paper's list
    for key in keys:
        assert gvall.similar[key] == [rename[p] for p in gv100.similar[key]]


def test_fewshot_prompts_build(oqa500: Dataset, gvall: Dataset) -> None:
    question = oqa500.questions["IDIMPORT_W43"]
    prompt = build_prompt(oqa500, question, Group("RACE", "White"), "fewshot", Verbalize())
    assert "being white" in prompt.messages[-1]["content"]  # the wave set's own wording
    assert len(prompt.examples) == 5 and question.id not in prompt.examples
    gv_question = next(q for q in gvall.questions.values() if q.id.startswith("gvx-"))
    country = next(Group.parse(g) for g, q in gvall.targets if q == gv_question.id)
    prompt = build_prompt(gvall, gv_question, country, "fewshot", Verbalize())
    assert prompt.examples and gv_question.id not in prompt.examples


def test_overlap_counts_are_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert "### OpinionQA wave set (`opinionqa-500`)" in text
    assert "### GlobalOpinionQA pool (`globalvalues-all`)" in text
    for fact in ("all 100", "1,388", "79 of the 558", "238"):
        assert fact in text, fact
