"""``distalign plan``: variance components, the planned size validated by simulation, the CLI.

The simulation test is the planner's proof: data with known question, group and residual
variances; components estimated from a pilot; the size planned for δ at power 0.8; then many
studies of that size, each analysed as ``distalign compare`` does (two-way cluster bootstrap,
percentile interval), must resolve δ about 80 % of the time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from distalign.cli import app
from distalign.metrics.bootstrap import bootstrap_mean
from distalign.metrics.plan import (
    Components,
    TooFewItemsError,
    bootstrap_variance,
    difference_tables,
    plan,
    power,
    required_questions,
    study_variance,
    variance_components,
)
from distalign.results import save_items

runner = CliRunner()

SD_Q, SD_G, SD_E = 0.04, 0.015, 0.06  # the simulation's true question, group, residual SDs


def simulate(rng: np.random.Generator, q: int, g: int, mean: float = 0.0) -> np.ndarray:
    """A (question × group) table of paired differences from the crossed random-effects model."""
    return (
        mean
        + rng.normal(0, SD_Q, (q, 1))
        + rng.normal(0, SD_G, (1, g))
        + rng.normal(0, SD_E, (q, g))
    )


def anova_components(table: np.ndarray) -> tuple[float, float, float]:
    """The textbook balanced two-way ANOVA (method of moments) estimates, by hand."""
    q, g = table.shape
    grand = table.mean()
    rows, cols = table.mean(axis=1) - grand, table.mean(axis=0) - grand
    inter = table - grand - rows[:, None] - cols[None, :]
    ms_e = (inter**2).sum() / ((q - 1) * (g - 1))
    ms_q = g * (rows**2).sum() / (q - 1)
    ms_g = q * (cols**2).sum() / (g - 1)
    return (ms_q - ms_e) / g, (ms_g - ms_e) / q, ms_e


# ----- the components ---------------------------------------------------------------------


def test_bootstrap_components_equal_the_anova_estimates_on_a_complete_table() -> None:
    table = simulate(np.random.default_rng(1), 40, 6)
    comps = variance_components(table, n_boot=20000, seed=2)
    sq, sg, se = anova_components(table)
    assert (comps.questions, comps.groups, comps.cells) == (40, 6, 240)
    assert comps.mean == pytest.approx(table.mean())
    assert comps.question == pytest.approx(sq, rel=0.1)
    assert comps.group == pytest.approx(max(sg, 0.0), rel=0.15, abs=2e-5)
    assert comps.residual == pytest.approx(se, rel=0.1)


def test_components_recover_the_true_variances_of_a_large_pilot() -> None:
    comps = variance_components(simulate(np.random.default_rng(3), 300, 100), seed=4)
    assert comps.question == pytest.approx(SD_Q**2, rel=0.2)
    assert comps.group == pytest.approx(SD_G**2, rel=0.3)
    assert comps.residual == pytest.approx(SD_E**2, rel=0.1)


def test_the_expected_bootstrap_variance_matches_the_bootstrap_at_the_pilot_size() -> None:
    table = simulate(np.random.default_rng(5), 60, 8)
    comps = variance_components(table, n_boot=20000, seed=6)
    expected = bootstrap_variance([comps], 60, 8)
    assert comps.boot_var == pytest.approx(expected, rel=0.1)
    # the pigeonhole bootstrap is conservative: it counts the residual about three times
    assert expected > study_variance([comps], 60, 8)


def test_one_group_puts_everything_in_the_question_term() -> None:
    table = simulate(np.random.default_rng(7), 50, 1)
    comps = variance_components(table)
    assert not comps.group_estimable
    assert comps.group == comps.residual == 0.0
    assert comps.question == pytest.approx(table.var(ddof=1), rel=0.15)


def test_empty_rows_and_columns_are_dropped_and_too_few_questions_fail() -> None:
    table = np.full((5, 4, 2), np.nan)
    table[0, :2, 0] = [0.1, 0.2]
    table[3, 1:3, 1] = [0.0, 0.3]
    comps = variance_components(table)
    assert (comps.questions, comps.groups, comps.cells, comps.slots) == (2, 3, 4, 12)
    table[3] = np.nan
    with pytest.raises(TooFewItemsError, match="too few items in opinionqa: 1 question"):
        variance_components(table, dataset="opinionqa")


def test_difference_tables_keep_only_shared_cells() -> None:
    def frame(tvs: list[float | None]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "dataset": "d",
                "question_id": ["q1", "q1", "q2", "q2"],
                "group": ["g1", "g2", "g1", "g2"],
                "steering": "persona",
                "status": ["ok" if tv is not None else "parse_failure" for tv in tvs],
                "tv": [tv if tv is not None else np.nan for tv in tvs],
            }
        )

    tables = difference_tables(frame([0.1, 0.2, 0.3, 0.4]), frame([0.3, None, 0.3, 0.1]))
    assert list(tables) == ["d"]
    np.testing.assert_allclose(tables["d"][:, :, 0], [[0.2, np.nan], [0.0, -0.3]])


# ----- the plan -----------------------------------------------------------------------------


def known(question: float, group: float, residual: float, q: int = 100, g: int = 6) -> Components:
    return Components("d", q, g, q * g, q * g, 0.0, question, group, residual, 0.0)


def test_required_questions_is_the_smallest_size_that_reaches_the_power() -> None:
    comps = [known(SD_Q**2, SD_G**2, SD_E**2)]
    q = required_questions(0.02, comps, 6)
    assert q is not None and q > 2
    assert power(0.02, comps, q, 6) >= 0.8 > power(0.02, comps, q - 1, 6)
    # more groups need fewer questions; a larger delta fewer still
    more = required_questions(0.02, comps, 12)
    assert more is not None and more < q
    larger = required_questions(0.04, comps, 6)
    assert larger is not None and larger < q


def test_a_plan_is_unreachable_when_the_group_term_alone_is_too_large() -> None:
    comps = [known(0.001, 0.01, 0.001)]
    assert required_questions(0.02, comps, 3) is None
    rows = plan(0.02, comps, [(3,), (200,)])
    assert rows[0].questions is None and rows[0].power < 0.8
    assert rows[1].questions is not None and rows[1].power >= 0.8


def test_datasets_are_averaged_with_equal_weight() -> None:
    one = known(0.002, 0.0004, 0.003)
    # the mean over two alike datasets halves the variance of one
    assert study_variance([one, one], 50, 6) == pytest.approx(study_variance([one], 50, 6) / 2)
    assert study_variance([one, one], 50, [6, 3]) > study_variance([one, one], 50, 6)


def test_bad_inputs_name_the_parameter() -> None:
    comps = [known(0.002, 0.0004, 0.003)]
    with pytest.raises(ValueError, match="`delta`"):
        required_questions(0.0, comps, 6)
    with pytest.raises(ValueError, match="`power`"):
        required_questions(0.02, comps, 6, target=1.0)
    with pytest.raises(ValueError, match="`groups`"):
        study_variance(comps, 10, [6, 6])


def empirical_power(
    q: int, g: int, delta: float, studies: int, seed: int, n_boot: int = 300
) -> float:
    """Share of simulated studies whose two-way cluster bootstrap interval excludes 0."""
    rng = np.random.default_rng(seed)
    resolved = 0
    for i in range(studies):
        study = simulate(rng, q, g, mean=delta)
        interval = bootstrap_mean([study], n_boot=n_boot, seed=seed + i, mode="cluster")
        resolved += interval.low > 0 or interval.high < 0
    return resolved / studies


def test_the_planned_size_reaches_the_stated_power_in_simulated_studies() -> None:
    delta, groups = 0.02, 6
    pilot = variance_components(simulate(np.random.default_rng(11), 400, 100), seed=12)
    q = required_questions(delta, [pilot], groups)
    truth = required_questions(delta, [known(SD_Q**2, SD_G**2, SD_E**2)], groups)
    assert q is not None and truth is not None
    assert q == pytest.approx(truth, rel=0.3)  # a large pilot's plan is close to the truth's
    achieved = empirical_power(q, groups, delta, studies=500, seed=13)
    print(f"planned {q} questions x {groups} groups: empirical power {achieved:.3f}")
    assert achieved == pytest.approx(0.8, abs=0.06)
    # the check can fail: the size an item-level (i.i.d.) formula gives is far too small
    total = SD_Q**2 + SD_G**2 + SD_E**2
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    naive = math.ceil(z**2 * total / delta**2 / groups)
    assert naive < q / 2
    assert empirical_power(naive, groups, delta, studies=300, seed=14) < 0.6


# ----- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pilot(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GPT-4's reference replies, scored in standard mode: a pilot with real items."""
    from distalign.reference.files import load_result_files
    from distalign.reference.standard import standard_items

    results = reference_dir / "results"
    loaded = {f: r for f, r in load_result_files(results).items() if f.model == "gpt-4"}
    items = standard_items(results, reference_dir, results=loaded)
    out = tmp_path_factory.mktemp("pilot") / "gpt4"
    manifest = {"kind": "reference-import", "mode": "standard", "data_dir": str(reference_dir)}
    save_items(items, out, manifest)
    return out


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["plan", *args, "--n-boot", "500"])


def test_plan_on_the_reference_pilot_prints_size_and_cost(pilot: Path, tmp_path: Path) -> None:
    result = invoke(
        str(pilot), "--a", "verbalize", "--b", "gpt-4:sequence", "--backend",
        "openai:gpt-4o-mini", "-o", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Study size to resolve" in result.output and "chosen" in result.output
    sizes = pd.read_csv(tmp_path / "plan.csv")
    chosen = sizes[sizes["note"].fillna("").str.startswith("chosen")].iloc[0]
    assert float(chosen["power"]) >= 0.8
    pilot_table = json.loads((tmp_path / "plan_pilot.json").read_text())
    assert {row["dataset"] for row in pilot_table} == {"globalvalues", "nytimes", "opinionqa"}
    cost = pd.read_csv(tmp_path / "plan_cost.csv")
    assert list(cost["method"]) == ["verbalize", "sequence"]
    assert (cost["items"] > 0).all() and (cost["est_cost_usd"] > 0).all()
    assert (cost["requests"] == cost["calls"]).all()  # one request per call for these methods


def test_plan_counts_samples_as_one_request_with_n_where_the_backend_has_it(
    pilot: Path, tmp_path: Path
) -> None:
    from distalign.results import load_results

    items = load_results(pilot)
    samples = items[items["method"] == "verbalize"].assign(method="samples")
    manifest = json.loads((pilot / "manifest.json").read_text())
    save_items(pd.concat([items, samples]), tmp_path / "pilot", manifest)
    result = invoke(
        str(tmp_path / "pilot"), "--a", "verbalize", "--b", "samples", "--delta", "0.05",
        "--groups", "2", "--backend", "openai:gpt-4o-mini",
        "--backend", "anthropic:claude-3-haiku-20240307", "-o", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cost = pd.read_csv(tmp_path / "out" / "plan_cost.csv").set_index(["backend", "method"])
    openai = cost.loc[("openai:gpt-4o-mini", "samples")]
    claude = cost.loc[("anthropic:claude-3-haiku-20240307", "samples")]
    assert openai["calls"] == 30 * openai["items"]  # N = 30 draws per item
    assert openai["requests"] == openai["items"]  # sent as one request with n = 30
    assert claude["requests"] == claude["calls"] == openai["calls"]  # one request per draw


def assert_one_line_error(result: Any, *expected: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and "╭" not in result.output, result.output
    assert result.stderr.strip().startswith("error: "), result.stderr
    for text in expected:
        assert text in result.stderr, (text, result.stderr)


def test_an_unknown_method_or_model_is_one_line(pilot: Path) -> None:
    assert_one_line_error(
        invoke(str(pilot), "--a", "verbalise", "--b", "sequence"), "no model 'verbalise'"
    )
    assert_one_line_error(
        invoke(str(pilot), "--a", "gpt-5:verbalize", "--b", "sequence"), "no model 'gpt-5'"
    )
    assert_one_line_error(invoke(str(pilot), "--a", "gpt-4", "--b", "sequence"), "MODEL:METHOD")


def test_too_few_items_is_one_line(pilot: Path, tmp_path: Path) -> None:
    from distalign.results import load_results

    items = load_results(pilot)
    one = items[items["question_id"] == items["question_id"].iloc[0]]
    save_items(one, tmp_path / "tiny", json.loads((pilot / "manifest.json").read_text()))
    result = invoke(str(tmp_path / "tiny"), "--a", "verbalize", "--b", "sequence")
    assert_one_line_error(result, "too few items")


def test_a_method_the_backend_cannot_run_is_a_row_not_an_error(pilot: Path, tmp_path: Path) -> None:
    result = invoke(
        str(pilot), "--a", "logp", "--b", "verbalize", "--delta", "0.05", "--groups", "2",
        "--backend", "anthropic:claude-3-haiku-20240307", "-o", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cost = pd.read_csv(tmp_path / "plan_cost.csv").set_index("method")
    assert "lacks the capability logprobs" in cost.loc["logp", "note"]
    assert pd.isna(cost.loc["logp", "requests"]) and cost.loc["verbalize", "requests"] > 0
