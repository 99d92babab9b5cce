"""Metrics: hand-computed cases, properties, bootstrap behaviour, temperatures, baselines."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wasserstein_distance

from distalign.data import Dataset, Group, Question, Target
from distalign.metrics import (
    baseline_items,
    bootstrap_mean,
    crossfit,
    expected_sampling_tv,
    fit_temperature,
    gap_table,
    jensen_shannon,
    leaderboard,
    paired,
    scale,
    total_variation,
    wasserstein_ordinal,
)
from distalign.results import Status, items_frame


def distributions(k: int) -> st.SearchStrategy[np.ndarray]:
    weights = st.lists(st.floats(0, 1, allow_nan=False), min_size=k, max_size=k)
    return weights.filter(lambda w: sum(w) > 1e-6).map(lambda w: np.asarray(w) / sum(w))


pairs = st.integers(2, 8).flatmap(lambda k: st.tuples(distributions(k), distributions(k)))


# --- distances: hand-computed -----------------------------------------------------------


def test_tv_hand_computed() -> None:
    assert total_variation([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5)
    assert total_variation([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.3)
    assert total_variation([1, 0, 0], [0, 0, 1]) == pytest.approx(1.0)


def test_tv_is_vectorized_over_items() -> None:
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    assert np.allclose(total_variation(p, q), [1.0, 0.0])


def test_misaligned_vectors_have_no_distance() -> None:
    # the module's input rule: misaligned options give NaN (never 0, never an exception)
    assert math.isnan(total_variation([0.5, 0.5], [0.2, 0.3, 0.5]))
    assert math.isnan(jensen_shannon([0.5, 0.5], [0.2, 0.3, 0.5]))
    assert math.isnan(wasserstein_ordinal([0.5, 0.5], [0.2, 0.3, 0.5]))


def test_js_hand_computed() -> None:
    # disjoint supports: divergence = 1 bit, distance = 1
    assert jensen_shannon([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # p=(1,0), q=(.5,.5): m=(.75,.25); JSD = .5*KL(p||m) + .5*KL(q||m) in bits
    kl_p = math.log2(1 / 0.75)
    kl_q = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    assert jensen_shannon([1.0, 0.0], [0.5, 0.5]) == pytest.approx(
        math.sqrt(0.5 * kl_p + 0.5 * kl_q)
    )


def test_js_nearly_identical_vectors_is_zero_not_nan() -> None:
    p = np.array([0.1, 0.2, 0.7])
    q = p + np.array([1e-17, -1e-17, 0.0])
    value = jensen_shannon(p, q)
    assert value == pytest.approx(0.0, abs=1e-7)
    assert not math.isnan(value)


def test_w1_ordinal_hand_computed() -> None:
    # all mass at the two ends of a 4-point scale: W1 = 3 positions / (k-1) = 1
    assert wasserstein_ordinal([1, 0, 0, 0], [0, 0, 0, 1]) == pytest.approx(1.0)
    # one step on a 4-point scale = 1/3
    assert wasserstein_ordinal([1, 0, 0, 0], [0, 1, 0, 0]) == pytest.approx(1 / 3)
    # positions reorder options: survey order [3, 1, 2] means option 1 is the lowest
    assert wasserstein_ordinal([0, 1, 0], [1, 0, 0], positions=[3, 1, 2]) == pytest.approx(1.0)


def test_w1_drops_unordered_options_and_renormalizes() -> None:
    # "Refused" (None) has no place on the scale
    p = [0.5, 0.0, 0.5]
    q = [0.25, 0.0, 0.75]
    assert wasserstein_ordinal(p, q, positions=[1, 2, None]) == pytest.approx(0.0)
    assert math.isnan(wasserstein_ordinal([1, 0], [0, 1], positions=[1, None]))


def test_w1_matches_scipy_with_positions_as_values() -> None:
    p, q = [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]
    expected = wasserstein_distance([0, 1, 2, 3], [0, 1, 2, 3], p, q) / 3
    assert wasserstein_ordinal(p, q) == pytest.approx(expected)
    # the reference code's usage (probabilities as samples) measures something else
    assert wasserstein_distance(p, q) != pytest.approx(expected)


@settings(max_examples=150, deadline=None)
@given(pairs)
def test_distance_bounds_and_symmetry(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    for fn in (total_variation, jensen_shannon, wasserstein_ordinal):
        d_pq, d_qp = fn(p, q), fn(q, p)
        assert 0.0 - 1e-12 <= d_pq <= 1.0 + 1e-12
        assert d_pq == pytest.approx(d_qp, abs=1e-12)
        assert fn(p, p) == pytest.approx(0.0, abs=1e-7)


# --- bootstrap --------------------------------------------------------------------------


def test_bootstrap_point_mean_is_equal_weight_over_datasets() -> None:
    a = np.array([[0.1, 0.1], [0.1, np.nan]])  # mean 0.1 over 3 cells
    b = np.array([[0.5]])
    iv = bootstrap_mean([a, b], n_boot=50, seed=1)
    assert iv.mean == pytest.approx(0.3)
    assert iv.ci_mode == "cluster"


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(5)
    table = rng.random((30, 4))
    one = bootstrap_mean([table], n_boot=300, seed=7)
    two = bootstrap_mean([table], n_boot=300, seed=7)
    other = bootstrap_mean([table], n_boot=300, seed=8)
    assert (one.low, one.high) == (two.low, two.high)
    assert (one.low, one.high) != (other.low, other.high)


def test_cluster_with_one_group_equals_question_bootstrap() -> None:
    table = np.random.default_rng(0).random((40, 1))
    cluster = bootstrap_mean([table], n_boot=500, seed=3, mode="cluster")
    question = bootstrap_mean([table], n_boot=500, seed=3, mode="question")
    # one group is always drawn once, so both schemes draw identical question weights
    assert cluster.low == pytest.approx(question.low)
    assert cluster.high == pytest.approx(question.high)


def test_cluster_width_close_to_iid_without_cluster_effects() -> None:
    table = np.random.default_rng(1).random((100, 20))
    iid = bootstrap_mean([table], n_boot=2000, seed=0, mode="iid")
    cluster = bootstrap_mean([table], n_boot=2000, seed=0, mode="cluster")
    ratio = cluster.half_width / iid.half_width
    # With no question or group effect the pigeonhole bootstrap is conservative: the noise
    # enters through the resampled row means, column means and cells, so its variance is up to
    # 3x the iid one (Owen 2007), i.e. a width ratio up to sqrt(3), never narrower than iid.
    assert 1.0 < ratio < math.sqrt(3) * 1.05


def test_cluster_wider_than_iid_with_question_effect() -> None:
    rng = np.random.default_rng(2)
    question_effect = rng.normal(0, 0.2, size=(60, 1))
    table = 0.3 + question_effect + rng.normal(0, 0.02, size=(60, 6))
    iid = bootstrap_mean([table], n_boot=1000, seed=0, mode="iid")
    cluster = bootstrap_mean([table], n_boot=1000, seed=0, mode="cluster")
    assert cluster.half_width > 1.8 * iid.half_width


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean([np.ones((2, 2))], n_boot=0)
    with pytest.raises(ValueError, match="mode"):
        bootstrap_mean([np.ones((2, 2))], mode="bca")  # type: ignore[arg-type]


# --- temperature ------------------------------------------------------------------------


def test_scale_hand_computed() -> None:
    assert np.allclose(scale(np.array([0.8, 0.2]), 1.0), [0.8, 0.2])
    # T = 2: sqrt weights 0.894, 0.447 -> 2/3, 1/3
    assert np.allclose(scale(np.array([0.8, 0.2]), 2.0), [2 / 3, 1 / 3])
    assert np.isnan(scale(np.array([0.0, 0.0]), 2.0)).all()


def _overconfident_items(n_questions: int, seed: int) -> tuple[list[str], list, list]:
    """Predictions that are the truth sharpened with T = 1/3 (so the best fit is T = 3)."""
    rng = np.random.default_rng(seed)
    qids, preds, truths = [], [], []
    for i in range(n_questions):
        truth = rng.dirichlet(np.ones(4))
        for _group in range(3):
            qids.append(f"q{i}")
            truths.append(truth)
            preds.append(scale(truth, 1 / 3))
    return qids, preds, truths


def test_fit_temperature_recovers_known_temperature() -> None:
    _, preds, truths = _overconfident_items(20, seed=0)
    assert fit_temperature(preds, truths) == pytest.approx(3.0, rel=1e-3)


def test_fit_temperature_ignores_all_zero_predictions() -> None:
    _, preds, truths = _overconfident_items(10, seed=1)
    preds[0] = np.zeros(4)
    assert fit_temperature(preds, truths) == pytest.approx(3.0, rel=1e-3)


def test_crossfit_never_uses_a_question_to_fit_its_own_temperature() -> None:
    qids, preds, truths = _overconfident_items(20, seed=2)
    # poison one question: its own truth favours a very different temperature
    for i, q in enumerate(qids):
        if q == "q0":
            truths[i] = np.full(4, 0.25)
    fit = crossfit(qids, preds, truths, k=5, seed=0)
    fold = fit.fold_of_question["q0"]
    others = [q for q in dict.fromkeys(qids) if q != "q0" and fit.fold_of_question[q] != fold]
    train = [i for i, q in enumerate(qids) if q in others]
    expected = fit_temperature([preds[i] for i in train], [truths[i] for i in train])
    assert fit.fold_temperatures[fold] == pytest.approx(expected)
    assert len(fit.fold_temperatures) == 5
    assert set(fit.fold_of_question.values()) == set(range(5))
    insample = crossfit(qids, preds, truths, mode="insample")
    assert len(insample.fold_temperatures) == 1


# --- baselines --------------------------------------------------------------------------


def test_expected_sampling_tv_matches_exact_enumeration() -> None:
    # p = (.5, .5), n = 2: outcomes (2,0), (1,1), (0,2) with probs .25, .5, .25
    # TVs 0.5, 0, 0.5 -> expectation 0.25
    value = expected_sampling_tv(np.array([0.5, 0.5]), 2, np.random.default_rng(0), n_sim=20000)
    assert value == pytest.approx(0.25, abs=0.01)


def _tiny_dataset() -> Dataset:
    q1 = Question("q1", "Q one", ("Yes", "No"))
    q2 = Question("q2", "Q two", ("Low", "Mid", "High"), ordinal=(1, 2, 3))
    dem, rep = Group("PARTY", "Dem"), Group("PARTY", "Rep")
    targets = {
        (dem.key, "q1"): Target(np.array([0.8, 0.2]), n=10),
        (rep.key, "q1"): Target(np.array([0.2, 0.8]), n=30),
        (dem.key, "q2"): Target(np.array([0.5, 0.3, 0.2]), n=None),
        (rep.key, "q2"): Target(np.array([0.1, 0.1, 0.8]), n=None),
    }
    return Dataset("tiny", {"q1": q1, "q2": q2}, [dem, rep], targets)


def test_baselines_hand_computed() -> None:
    frame = baseline_items(_tiny_dataset(), n_sim=200)
    row = frame.set_index(["method", "group", "question_id"])
    assert row.loc[("uniform", "PARTY=Dem", "q1"), "tv"] == pytest.approx(0.3)
    assert row.loc[("majority", "PARTY=Dem", "q1"), "tv"] == pytest.approx(0.2)
    assert row.loc[("other_group", "PARTY=Dem", "q1"), "tv"] == pytest.approx(0.6)
    # population is count-weighted: (10*.8 + 30*.2)/40 = .35 -> TV to Dem = .45
    assert row.loc[("population", "PARTY=Dem", "q1"), "tv"] == pytest.approx(0.45)
    # no counts for q2: plain mean (.3, .2, .5); TV to Dem = .3
    assert row.loc[("population", "PARTY=Dem", "q2"), "tv"] == pytest.approx(0.3)
    assert row.loc[("noise_floor", "PARTY=Dem", "q2"), "status"] == Status.NOT_SCORED
    assert row.loc[("noise_floor", "PARTY=Dem", "q1"), "status"] == Status.OK
    # a 10-respondent noise floor is larger than a 30-sample discretization error
    assert (
        row.loc[("noise_floor", "PARTY=Dem", "q1"), "tv"]
        > row.loc[("discretization", "PARTY=Dem", "q1"), "tv"]
    )
    assert not math.isnan(row.loc[("uniform", "PARTY=Dem", "q2"), "w1"])
    assert math.isnan(row.loc[("uniform", "PARTY=Dem", "q1"), "w1"])


# --- aggregation ------------------------------------------------------------------------


def _frame(
    model: str, method: str, values: dict[tuple[str, str, str], float | None]
) -> pd.DataFrame:
    rows = []
    for (dataset, group, question), tv in values.items():
        rows.append(
            {
                "mode": "standard",
                "model": model,
                "dataset": dataset,
                "steering": "persona",
                "method": method,
                "group": group,
                "question_id": question,
                "status": Status.OK if tv is not None else Status.PARSE_FAILURE,
                "tv": tv,
            }
        )
    return items_frame(rows)


def test_leaderboard_counts_failures_and_averages_datasets_equally() -> None:
    values = {
        ("d1", "g1", "q1"): 0.2,
        ("d1", "g2", "q1"): 0.4,
        ("d1", "g1", "q2"): None,  # a parse failure is counted, not scored
        ("d2", "g1", "q1"): 0.6,
    }
    board = leaderboard(_frame("m", "verbalize", values), n_boot=100)
    row = board.iloc[0]
    assert row["mean"] == pytest.approx((0.3 + 0.6) / 2)
    assert row["n_parse_failures"] == 1
    assert row["n_scored"] == 3
    assert row["failure_rate"] == pytest.approx(0.25)
    assert row["ci_mode"] == "cluster"


def test_paired_and_gap_use_shared_items_only() -> None:
    cells = [(f"d{d}", f"g{g}", f"q{q}") for d in (1, 2) for g in range(3) for q in range(15)]
    rng = np.random.default_rng(0)
    verbalize = {c: float(rng.uniform(0.1, 0.3)) for c in cells}
    sequence = {c: v + 0.1 for c, v in verbalize.items()}
    sequence[cells[0]] = None  # not shared: dropped from both sides
    frame = pd.concat([_frame("m", "verbalize", verbalize), _frame("m", "sequence", sequence)])
    res = paired(frame[frame.method == "verbalize"], frame[frame.method == "sequence"], n_boot=300)
    assert res.statistic == pytest.approx(0.1)
    assert res.n_shared == len(cells) - 1
    assert res.wins_a == len(cells) - 1 and res.wins_b == 0
    assert res.p_value < 0.01
    gap = gap_table(frame, n_boot=300)
    row = gap.iloc[0]
    shared = [c for c in cells if c != cells[0]]
    per_dataset_v = [np.mean([verbalize[c] for c in shared if c[0] == d]) for d in ("d1", "d2")]
    expected = (np.mean(per_dataset_v) + 0.1) / np.mean(per_dataset_v) - 1
    assert row["gap"] == pytest.approx(expected)
    assert row["ci_low"] < row["gap"] < row["ci_high"]


def test_score_items_equals_score_item_one_by_one() -> None:
    from distalign.metrics import score_item, score_items

    rng = np.random.default_rng(5)
    preds, truths, ordinals = [], [], []
    for k in [2, 3, 4, 4, 5, 3, 2, 6] * 5:
        preds.append(rng.dirichlet(np.ones(k)).tolist())
        truths.append(rng.dirichlet(np.ones(k)).tolist())
        ordinals.append(list(range(k - 1)) + [None] if k > 3 else None)
    preds[3] = [0.5, 0.5, 0.5, 0.5]  # not a distribution: NaN everywhere
    truths[4] = [0.5, 0.5]  # a truth over other options: NaN
    # W1 on other scales: positions in another order, all mass off the scale, one point left
    preds.append([0.2, 0.3, 0.5]), truths.append([0.6, 0.1, 0.3]), ordinals.append([2, 0, 1])
    preds.append([0.0, 0.0, 1.0]), truths.append([0.2, 0.3, 0.5]), ordinals.append([0, 1, None])
    preds.append([0.4, 0.6]), truths.append([0.5, 0.5]), ordinals.append([0, None])
    together = score_items(preds, truths, ordinals)
    for pred, truth, ordinal, scores in zip(preds, truths, ordinals, together, strict=True):
        alone = score_item(pred, truth, ordinal)
        assert set(scores) == set(alone) == {"tv", "js", "w1"}
        for name, value in alone.items():
            assert scores[name] == pytest.approx(value, abs=1e-12, nan_ok=True)
        assert scores["w1"] == alone["w1"] or (np.isnan(scores["w1"]) and np.isnan(alone["w1"]))
    assert np.isnan(together[3]["tv"]) and np.isnan(together[4]["js"])
    assert [np.isnan(s["w1"]) for s in together[-3:]] == [False, True, True]
