"""Few-shot similarity: embeddings (real all-MiniLM-L6-v2) and the TF-IDF fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from distalign.data import Dataset, Question
from distalign.steering.fewshot import tfidf_neighbours
from distalign.steering.similarity import (
    embedding_model_dir,
    embedding_neighbours,
    neighbours,
    similarity_method,
)

torch = pytest.importorskip("torch", reason="needs pip install 'distalign[embed]'")
pytest.importorskip("sentence_transformers", reason="needs pip install 'distalign[embed]'")

# Each query, the paraphrase that shares (almost) no words with it, and a distractor that shares
# most of its words but asks about something else. TF-IDF ranks the distractor first.
CASES = [
    ("Do you own a firearm?", "Is there a gun in your home?", "Do you own a car?"),
    (
        "How often do you attend religious services?",
        "How frequently do you go to church?",
        "How often do you go to the gym?",
    ),
    (
        "Are you worried about climate change?",
        "How concerned are you about global warming?",
        "Are you worried about losing your job?",
    ),
]


def make_dataset(texts: list[str]) -> Dataset:
    questions = {f"q{i}": Question(f"q{i}", text, ("Yes", "No")) for i, text in enumerate(texts)}
    return Dataset(name="handwritten", questions=questions, groups=[], targets={})


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    torch.set_num_threads(1)  # 2 shared cores
    return make_dataset([text for case in CASES for text in case])


def id_of(dataset: Dataset, text: str) -> str:
    return next(q.id for q in dataset.questions.values() if q.text == text)


@pytest.mark.parametrize(("query", "paraphrase", "distractor"), CASES)
def test_embeddings_rank_the_paraphrase_first_where_tfidf_ranks_the_distractor_first(
    dataset: Dataset, query: str, paraphrase: str, distractor: str
) -> None:
    me = id_of(dataset, query)
    assert embedding_neighbours(dataset, me, k=1) == [id_of(dataset, paraphrase)]
    assert tfidf_neighbours(dataset, me, k=1) == [id_of(dataset, distractor)]


def test_self_is_never_a_neighbour_and_everyone_else_is_ranked(dataset: Dataset) -> None:
    for qid in dataset.questions:
        ranked = embedding_neighbours(dataset, qid, k=len(dataset.questions))
        assert qid not in ranked
        assert sorted(ranked) == sorted(set(dataset.questions) - {qid})


def test_identical_texts_are_still_not_their_own_neighbour() -> None:
    twins = make_dataset(["Do you own a firearm?", "Do you own a firearm?", "Do you own a car?"])
    assert embedding_neighbours(twins, "q0", k=2) == ["q1", "q2"]


def test_neighbours_uses_the_packaged_model_when_installed(dataset: Dataset) -> None:
    assert embedding_model_dir() is not None
    assert similarity_method() == "embedding"
    me = id_of(dataset, CASES[0][0])
    assert neighbours(dataset, me, k=3) == embedding_neighbours(dataset, me, k=3)


def test_neighbours_falls_back_to_tfidf_when_the_model_is_unavailable(
    dataset: Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-model-here"
    me = id_of(dataset, CASES[0][0])
    with caplog.at_level(logging.WARNING, logger="distalign.steering.similarity"):
        ranked = neighbours(dataset, me, k=3, model_dir=missing)
    assert similarity_method(missing) == "tfidf"
    assert ranked == tfidf_neighbours(dataset, me, k=3)
    assert ranked[0] == id_of(dataset, CASES[0][2])  # TF-IDF's answer, not the embeddings'
    assert "falls back to TF-IDF" in caplog.text
