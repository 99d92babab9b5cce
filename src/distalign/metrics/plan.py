"""Study planning: how many questions and groups resolve a TV difference δ at a given power.

The model
---------
A comparison of configurations A and B is read from the item-wise paired differences
``d[q, g] = TV_B − TV_A`` of one dataset (a further axis, e.g. the pooled steerings, is
averaged inside each cell). They follow a crossed random-effects model

    d[q, g] = μ + a[q] + b[g] + e[q, g],   Var a = σ²_q,  Var b = σ²_g,  Var e = σ²_e,

so the mean difference over Q questions and G groups has the variance

    V(Q, G) = σ²_q / Q + σ²_g / G + σ²_e / (Q·G),

and the equal-weight mean over D datasets (the statistic of the leaderboard and of
``distalign compare``) has ``(1 / D²) · Σ_d V_d(Q, G_d)``.

The components from the pilot's two-way cluster bootstrap
---------------------------------------------------------
The pilot's table is resampled with Owen's pigeonhole bootstrap (questions and groups drawn
with replacement, as :mod:`distalign.metrics.bootstrap` does), and with the same draws twice
more: questions only and groups only. For a complete table the replicate mean splits exactly
into a question part, a group part and an interaction part, so the three variances give

    V_question = A / Q₀,   V_group = B / G₀,   Var(both − question-only − group-only) = C / (Q₀G₀)

with ``A``, ``B``, ``C`` the mean squared row effect, column effect and interaction of the
pilot's table. Their expectations under the model give the unbiased components

    σ²_e = C · Q₀G₀ / ((Q₀ − 1)(G₀ − 1)),
    σ²_q = A · Q₀ / (Q₀ − 1) − σ²_e / G₀,
    σ²_g = B · G₀ / (G₀ − 1) − σ²_e / Q₀,

clipped at 0. With one group (G₀ = 1) the group and residual parts cannot be told apart:
σ²_g = σ²_e = 0 and everything goes into σ²_q; a plan can then only keep that one group.

The test the plan is for
------------------------
The study's analysis is the two-way cluster bootstrap (``distalign compare``): δ is resolved
when the percentile interval excludes 0, i.e. when ``|d̄| > z₁₋α/₂ · SE_boot``. The
pigeonhole bootstrap is conservative: in expectation it estimates

    V_boot(Q, G) = (1 − 1/Q)(σ²_q + σ²_e/G)/Q + (1 − 1/G)(σ²_g + σ²_e/Q)/G
                   + (1 − 1/Q)(1 − 1/G) σ²_e/(QG)

(the residual counted about three times), while ``d̄`` varies with ``V(Q, G)``. Hence

    power(Q, G) = Φ((δ − z·SE_boot) / SE) + Φ((−δ − z·SE_boot) / SE),

``SE = √V``, ``SE_boot = √V_boot`` (each summed over datasets as above), and the planned
number of questions is the smallest Q with ``power(Q, G) ≥`` the target. When even infinitely
many questions leave the group term too large, no number of questions suffices: more groups
are needed. Planning assumes new questions and groups behave like the pilot's (drawn from the
same populations), and estimates from a small pilot are themselves uncertain (with 3 to 6
groups, σ²_g very much so): treat the plan as an order of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from distalign.errors import DistalignError
from distalign.metrics.aggregate import item_table, table_index
from distalign.metrics.bootstrap import DatasetWeights, as_table, weighted_sums

FloatArray = NDArray[np.float64]
MIN_QUESTIONS = 2
MAX_QUESTIONS = 1_000_000


class TooFewItemsError(DistalignError, ValueError):
    """The pilot has too few shared items to estimate the variance components."""


@dataclass(frozen=True)
class Components:
    """Variance components of one dataset's paired differences (per cell) and the pilot's size."""

    dataset: str
    questions: int  # pilot questions with a shared score
    groups: int  # pilot groups with a shared score
    cells: int  # scored (question, group[, steering]) cells both sides share
    slots: int  # questions × groups × steerings: the cells a complete table would have
    mean: float  # mean difference B − A over the shared cells
    question: float  # σ²_q
    group: float  # σ²_g
    residual: float  # σ²_e
    boot_var: float  # two-way cluster bootstrap variance of the mean at the pilot's size

    @property
    def density(self) -> float:
        """Share of the table's cells that are scored (Global values asks few countries)."""
        return self.cells / self.slots

    @property
    def group_estimable(self) -> bool:
        """False with one group: σ²_g cannot be told from the residual."""
        return self.groups >= 2


def difference_tables(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> dict[str, FloatArray]:
    """Per dataset, the (question, group, steering) table of B − A, NaN unless both scored."""
    tables: dict[str, FloatArray] = {}
    for name in sorted(set(frame_a["dataset"]) & set(frame_b["dataset"])):
        part_a = frame_a[frame_a["dataset"] == name]
        part_b = frame_b[frame_b["dataset"] == name]
        index = table_index(pd.concat([part_a, part_b]))
        tables[str(name)] = item_table(part_b, index) - item_table(part_a, index)
    return tables


def variance_components(
    table: FloatArray, *, dataset: str = "", n_boot: int = 2000, seed: int = 0
) -> Components:
    """σ²_q, σ²_g and σ²_e of one dataset's difference table from two-way bootstraps.

    Questions and groups without any shared cell are dropped first. Raises
    :class:`TooFewItemsError` with fewer than two such questions.
    """
    if n_boot < 2:
        raise ValueError("`n_boot` must be at least 2")
    values = as_table(table)
    present = ~np.isnan(values)
    values = values[present.any(axis=(1, 2))][:, present.any(axis=(0, 2))]
    n_q, n_g = values.shape[0], values.shape[1]
    label = f" in {dataset}" if dataset else ""
    if n_q < MIN_QUESTIONS:
        raise TooFewItemsError(
            f"too few items{label}: {n_q} question(s) scored by both sides; a plan needs at "
            f"least {MIN_QUESTIONS} (run the pilot on more questions)"
        )
    rng = np.random.default_rng(seed)
    wq = rng.multinomial(n_q, np.full(n_q, 1 / n_q), size=n_boot).astype(np.float64)
    wg = rng.multinomial(n_g, np.full(n_g, 1 / n_g), size=n_boot).astype(np.float64)
    ones_q, ones_g = np.ones_like(wq), np.ones_like(wg)
    both, by_q, by_g = (
        _replicates(values, DatasetWeights(q, g)) for q, g in ((wq, wg), (wq, ones_g), (ones_q, wg))
    )
    mean = float(np.nanmean(values))
    row = n_q * float(np.nanvar(by_q))  # A: mean squared question effect
    col = n_g * float(np.nanvar(by_g))  # B: mean squared group effect
    inter = n_q * n_g * float(np.nanvar(both - by_q - by_g))  # C: mean squared interaction
    if n_g >= 2:
        residual = inter * n_q * n_g / ((n_q - 1) * (n_g - 1))
        question = max(row * n_q / (n_q - 1) - residual / n_g, 0.0)
        group = max(col * n_g / (n_g - 1) - residual / n_q, 0.0)
    else:
        residual, group = 0.0, 0.0
        question = row * n_q / (n_q - 1)
    return Components(
        dataset=dataset,
        questions=n_q,
        groups=n_g,
        cells=int((~np.isnan(values)).sum()),
        slots=int(values.size),
        mean=mean,
        question=question,
        group=group,
        residual=residual,
        boot_var=float(np.nanvar(both)),
    )


def _replicates(values: FloatArray, weights: DatasetWeights) -> FloatArray:
    total, count = weighted_sums(values, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / count)


def _group_counts(components: Sequence[Components], groups: int | Sequence[int]) -> list[int]:
    counts = [groups] * len(components) if isinstance(groups, int) else list(groups)
    if len(counts) != len(components) or min(counts) < 1:
        raise ValueError("`groups` must be a positive int or one positive int per dataset")
    return counts


def study_variance(
    components: Sequence[Components], questions: int, groups: int | Sequence[int]
) -> float:
    """V(Q, G): variance of the equal-weight mean difference over the datasets."""
    total = sum(
        c.question / questions + c.group / g + c.residual / (questions * g)
        for c, g in zip(components, _group_counts(components, groups), strict=True)
    )
    return total / len(components) ** 2


def bootstrap_variance(
    components: Sequence[Components], questions: int, groups: int | Sequence[int]
) -> float:
    """V_boot(Q, G): what the two-way cluster bootstrap estimates, in expectation."""
    q = questions
    total = 0.0
    for c, g in zip(components, _group_counts(components, groups), strict=True):
        total += (1 - 1 / q) * (c.question + c.residual / g) / q
        total += (1 - 1 / g) * (c.group + c.residual / q) / g
        total += (1 - 1 / q) * (1 - 1 / g) * c.residual / (q * g)
    return total / len(components) ** 2


def power(
    delta: float,
    components: Sequence[Components],
    questions: int,
    groups: int | Sequence[int],
    *,
    alpha: float = 0.05,
) -> float:
    """Probability that a study of this size resolves |δ| (bootstrap interval excludes 0)."""
    _check(delta, 0.5, alpha)
    se = math.sqrt(study_variance(components, questions, groups))
    se_boot = math.sqrt(bootstrap_variance(components, questions, groups))
    if se == 0:
        return 1.0
    z = NormalDist().inv_cdf(1 - alpha / 2)
    phi = NormalDist().cdf
    return phi((abs(delta) - z * se_boot) / se) + phi((-abs(delta) - z * se_boot) / se)


def required_questions(
    delta: float,
    components: Sequence[Components],
    groups: int | Sequence[int],
    *,
    target: float = 0.8,
    alpha: float = 0.05,
    max_questions: int = MAX_QUESTIONS,
) -> int | None:
    """The fewest questions per dataset whose power reaches ``target``; None if none do.

    None means the group term alone keeps the power below the target: add groups.
    """
    _check(delta, target, alpha)

    def enough(q: int) -> bool:
        return power(delta, components, q, groups, alpha=alpha) >= target

    if not enough(max_questions):
        return None
    low, high = MIN_QUESTIONS - 1, MIN_QUESTIONS  # enough(low) is False by convention
    while not enough(high):
        low, high = high, min(2 * high, max_questions)
    while high - low > 1:  # bisection: the power grows with the number of questions
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


@dataclass(frozen=True)
class PlanRow:
    """One candidate study: groups per dataset, and the questions it needs."""

    groups: tuple[int, ...]
    questions: int | None  # None: unreachable with these groups
    se: float  # of the mean difference at that size (NaN when unreachable)
    power: float  # at that size, or the limit with unlimited questions
    cells: int  # expected scored cells per configuration at the pilot's density; 0: unreachable


def plan(
    delta: float,
    components: Sequence[Components],
    group_options: Sequence[Sequence[int]],
    *,
    target: float = 0.8,
    alpha: float = 0.05,
    max_questions: int = MAX_QUESTIONS,
) -> list[PlanRow]:
    """For each option of groups per dataset, the questions needed and the study's size."""
    rows = []
    for option in group_options:
        groups = _group_counts(components, option)
        q = required_questions(
            delta, components, groups, target=target, alpha=alpha, max_questions=max_questions
        )
        at = q if q is not None else max_questions
        rows.append(
            PlanRow(
                groups=tuple(groups),
                questions=q,
                se=math.sqrt(study_variance(components, at, groups)) if q else math.nan,
                power=power(delta, components, at, groups, alpha=alpha),
                cells=_cells(components, q, groups) if q else 0,
            )
        )
    return rows


def _cells(components: Sequence[Components], questions: int, groups: Sequence[int]) -> int:
    """Scored cells a study of this size should have, at each pilot table's density."""
    return round(
        sum(
            questions * g * c.slots / (c.questions * c.groups) * c.density
            for c, g in zip(components, groups, strict=True)
        )
    )


def _check(delta: float, target: float, alpha: float) -> None:
    if not math.isfinite(delta) or delta == 0:
        raise ValueError("`delta` must be a non-zero finite difference")
    if not 0 < target < 1:
        raise ValueError("`power` must lie strictly between 0 and 1")
    if not 0 < alpha < 1:
        raise ValueError("`alpha` must lie strictly between 0 and 1")
