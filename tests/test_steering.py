"""Prompt building: option order per mode, letter mapping, few-shot selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distalign.data import Dataset, Group, Question, Target
from distalign.datasets import load_dataset
from distalign.methods import LogP, Sequence_, Verbalize
from distalign.steering import build_prompt, select_examples, tfidf_neighbours

DEM = Group("POLPARTY", "Democrat")


@pytest.fixture(scope="module")
def opinionqa(reference_dir: Path) -> Dataset:
    return load_dataset("opinionqa", reference_dir)


def test_standard_mode_keeps_survey_order_and_paper_mode_alphabetical(opinionqa: Dataset) -> None:
    question = (
        opinionqa.questions["WORRYB_W26"]
        if "WORRYB_W26" in opinionqa.questions
        else next(
            q
            for q in opinionqa.questions.values()
            if q.paper_options and q.paper_options != q.options
        )
    )
    standard = build_prompt(opinionqa, question, DEM, "persona", LogP())
    paper = build_prompt(opinionqa, question, DEM, "persona", LogP(), mode="paper")
    text_std, text_paper = standard.messages[-1]["content"], paper.messages[-1]["content"]
    assert f"A. {question.options[0]}" in text_std
    assert question.paper_options is not None
    assert f"A. {question.paper_options[0]}" in text_paper
    assert standard.order == list(range(len(question.options)))
    # a distribution over the paper prompt's letters maps back onto the survey order
    shown = np.eye(len(question.options))[0]
    canonical = paper.to_canonical(list(shown))
    assert canonical[question.options.index(question.paper_options[0])] == 1.0


def test_steering_changes_who_the_prompt_is_about(opinionqa: Dataset) -> None:
    question = next(iter(opinionqa.questions.values()))
    none = build_prompt(opinionqa, question, DEM, "none", Verbalize())
    persona = build_prompt(opinionqa, question, DEM, "persona", Verbalize())
    assert "Democrats" not in none.messages[-1]["content"]
    assert "Democrats" in persona.messages[-1]["content"]
    assert persona.messages[-1]["content"].rstrip().endswith("Answer:")


def test_fewshot_never_shows_the_evaluated_question(opinionqa: Dataset) -> None:
    for question in list(opinionqa.questions.values())[:30]:
        examples = select_examples(opinionqa, question, DEM)
        assert len(examples) == 5
        assert question.id not in {e.question.id for e in examples}
        prompt = build_prompt(opinionqa, question, DEM, "fewshot", Sequence_(), seed=1)
        assert prompt.examples == [e.question.id for e in examples]
        assert question.id not in prompt.examples


def test_fewshot_prefers_other_option_counts_then_distant_answers() -> None:
    target = Question("t", "Do you like dogs?", ("Yes", "No"))
    same = {f"s{i}": Question(f"s{i}", f"Do you like dogs {i}?", ("Yes", "No")) for i in range(8)}
    other = {"o1": Question("o1", "Dogs or cats?", ("Dogs", "Cats", "Neither"))}
    questions = {"t": target, **same, **other}
    truths = {"t": [0.9, 0.1], "o1": [0.3, 0.3, 0.4]}
    truths.update({f"s{i}": [0.9 - 0.1 * i, 0.1 + 0.1 * i] for i in range(8)})
    targets = {(DEM.key, q): Target(np.array(p)) for q, p in truths.items()}
    dataset = Dataset("toy", questions, [DEM], targets, similar={"t": ["t", "o1", *same]})
    chosen = [e.question.id for e in select_examples(dataset, target, DEM)]
    assert chosen[0] == "o1"  # a different option count comes first
    assert chosen[1:] == ["s7", "s6", "s5", "s4"]  # then the farthest answers


def test_tfidf_fallback_ranks_similar_texts_first() -> None:
    texts = {
        "a": "Should the city ban cars downtown?",
        "b": "Should cars be banned from the city downtown area?",
        "c": "How often do you eat breakfast?",
    }
    questions = {k: Question(k, v, ("Yes", "No")) for k, v in texts.items()}
    dataset = Dataset("toy", questions, [DEM], {})
    assert tfidf_neighbours(dataset, "a") == ["b", "c"]
