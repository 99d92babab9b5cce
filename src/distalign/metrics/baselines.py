"""Reference points a model's mean TV should be read against (standard mode).

Each baseline yields rows of the items table (``model="baseline"``, ``method=<name>``,
``steering="none"``) so it is aggregated exactly like a model.

* ``uniform``: 1/k on each of the question's k options.
* ``majority``: all mass on the group's true top answer (the human majority; the paper's
  "majority vote" was GPT-3.5's modal sampled letter instead).
* ``discretization``: E[TV(p, empirical distribution of 30 draws from p)]: the error a
  perfect simulator has when it expresses p through 30 samples (the Sequence method).
* ``noise_floor``: the same expectation with n = the group's respondent count: the TV that
  survey sampling alone puts between a group's observed and true distributions. Only where
  counts are known.
* ``population``: the attribute-pooled distribution (respondent-weighted when counts are
  known): does steering beat knowing the overall answer?
* ``other_group``: the distribution of the other main group(s) of the same attribute
  (Republicans predicting Democrats; for countries, the mean of the question's other
  countries).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from distalign.data import Dataset, Group, Question, Target
from distalign.metrics.distance import jensen_shannon, total_variation, wasserstein_ordinal
from distalign.results import Status, items_frame

FloatArray = NDArray[np.float64]
BASELINES = ("uniform", "majority", "discretization", "noise_floor", "population", "other_group")


def expected_sampling_tv(
    probs: FloatArray, n: int, rng: np.random.Generator, n_sim: int = 1000
) -> float:
    """Monte Carlo E[TV(p, Multinomial(n, p)/n)] with ``n_sim`` seeded simulations."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    draws = rng.multinomial(n, p, size=n_sim) / n
    return float(0.5 * np.abs(draws - p).sum(axis=1).mean())


def baseline_items(
    dataset: Dataset,
    groups: list[Group] | None = None,
    *,
    seed: int = 0,
    n_sim: int = 1000,
    n_samples: int = 30,
    questions: Collection[str] | None = None,
) -> Any:
    """All baselines for every (group, question) target of ``groups`` as an items table.

    ``questions`` limits the questions (default: all of the dataset's).
    """
    chosen = groups if groups is not None else dataset.groups
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for group in chosen:
        for question in dataset.questions.values():
            if questions is not None and question.id not in questions:
                continue
            target = dataset.target(group, question.id)
            if target is None:
                continue
            rows.extend(_item_rows(dataset, chosen, group, question, target, rng, n_sim, n_samples))
    return items_frame(rows)


def _item_rows(
    dataset: Dataset,
    groups: list[Group],
    group: Group,
    question: Question,
    target: Target,
    rng: np.random.Generator,
    n_sim: int,
    n_samples: int,
) -> Iterator[dict[str, Any]]:
    base = {
        "mode": "standard",
        "model": "baseline",
        "dataset": dataset.name,
        "steering": "none",
        "group": group.key,
        "question_id": question.id,
        "letters": question.letters,
        "truth": target.probs.tolist(),
        "n": target.n,
    }
    for name, pred in _predictions(dataset, groups, group, question, target):
        yield {**base, **_scored(pred, target, question), "method": name}
    yield {
        **base,
        "method": "discretization",
        "status": Status.OK,
        "tv": expected_sampling_tv(target.probs, n_samples, rng, n_sim),
        "detail": f"expected TV of {n_samples} draws, {n_sim} simulations",
    }
    yield {**base, **_noise_floor(target, rng, n_sim), "method": "noise_floor"}


def _predictions(
    dataset: Dataset, groups: list[Group], group: Group, question: Question, target: Target
) -> Iterator[tuple[str, FloatArray | None]]:
    k = len(question.options)
    yield "uniform", np.full(k, 1 / k)
    majority = np.zeros(k)
    majority[int(np.argmax(target.probs))] = 1.0  # ties: the first option in survey order
    yield "majority", majority
    same_attribute = [g for g in dataset.groups if g.attribute == group.attribute]
    yield "population", dataset.population(question.id, same_attribute)
    others = [g for g in groups if g.attribute == group.attribute and g != group]
    other_targets = [t.probs for g in others if (t := dataset.target(g, question.id)) is not None]
    yield "other_group", np.mean(other_targets, axis=0) if other_targets else None


def _scored(pred: FloatArray | None, target: Target, question: Question) -> dict[str, Any]:
    if pred is None:
        return {"status": Status.NOT_SCORED, "detail": "no other group has this question"}
    return {
        "pred": pred.tolist(),
        "status": Status.OK,
        "tv": total_variation(pred, target.probs),
        "js": jensen_shannon(pred, target.probs),
        "w1": wasserstein_ordinal(pred, target.probs, question.ordinal)
        if question.ordinal is not None
        else float("nan"),
    }


def _noise_floor(target: Target, rng: np.random.Generator, n_sim: int) -> dict[str, Any]:
    if target.n is None or target.n < 1:
        return {"status": Status.NOT_SCORED, "detail": "respondent count unknown"}
    n = int(round(target.n))
    return {
        "status": Status.OK,
        "tv": expected_sampling_tv(target.probs, n, rng, n_sim),
        "detail": f"expected TV of a resample of n={n}",
    }
