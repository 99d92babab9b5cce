"""Expression methods: each is one file (wording, example answers, calls, parser, registration).

The built-in methods' prompts carry exactly their own instruction and example-answer format,
and a method defined in one test file (``dummy_method.py``) runs end to end without any other
change.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from distalign.data import Dataset, Group
from distalign.datasets import load_dataset
from distalign.errors import UnknownNameError
from distalign.methods import (
    ExpressionMethod,
    available_methods,
    get_method,
    method_label,
    unregister_method,
)
from distalign.runner import RunConfig, Runner
from distalign.steering import build_prompt, group_phrase

DEM = Group("POLPARTY", "Democrat")
BUILT_IN = ["logp", "sequence", "verbalize", "samples"]
N = 12


@pytest.fixture(scope="module")
def opinionqa(reference_dir: Path) -> Dataset:
    return load_dataset("opinionqa", reference_dir)


@pytest.fixture
def argmax() -> Iterator[type[ExpressionMethod]]:
    """The dummy method, registered by importing its file, and forgotten afterwards."""
    sys.modules.pop("dummy_method", None)  # a fresh import registers it again
    module = importlib.import_module("dummy_method")
    yield module.Argmax
    unregister_method(module.Argmax.name)
    sys.modules.pop("dummy_method", None)


def _user_text(dataset: Dataset, steering: str, method: ExpressionMethod) -> str:
    question = next(iter(dataset.questions.values()))
    prompt = build_prompt(dataset, question, DEM, steering, method, n_sequence=N)  # type: ignore[arg-type]
    return prompt.messages[-1]["content"]


def _answers(text: str) -> list[str]:
    """The example answers shown in a prompt (the final, empty answer cue excluded)."""
    return re.findall(r"^Answer: (.+)$", text, flags=re.MULTILINE)


def test_built_in_methods_are_registered_with_their_labels() -> None:
    assert available_methods()[:4] == BUILT_IN
    labels = [method_label(name) for name in [*BUILT_IN, "ts_logp"]]
    assert labels == ["Log-p", "Sequence", "Verbalize", "Samples", "TS-Log-p"]
    assert method_label("uniform") == "uniform"  # a baseline or unknown name is its own label


def test_unknown_method_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'logp'"):
        get_method("logpp")


@pytest.mark.parametrize("steering", ["none", "persona", "fewshot"])
@pytest.mark.parametrize("name", BUILT_IN)
def test_prompt_holds_the_method_instruction_and_no_other(
    opinionqa: Dataset, name: str, steering: str
) -> None:
    method = get_method(name)
    text = _user_text(opinionqa, steering, method)
    who = group_phrase(None if steering == "none" else DEM, "standard")
    assert method.instruction.format(n=N, who=who) in text
    for other in set(BUILT_IN) - {name}:
        assert get_method(other).instruction.format(n=N, who=who) not in text


@pytest.mark.parametrize(
    ("name", "probs", "expected"),
    [
        ("verbalize", [0.5, 0.25, 0.25], '{"A": 0.5, "B": 0.25, "C": 0.25}'),
        ("verbalize", [0.123, 0.877], '{"A": 0.12, "B": 0.88}'),
        # a certain distribution leaves the draw no choice
        ("logp", [0.0, 1.0, 0.0], "B"),
        ("samples", [0.0, 0.0, 1.0], "C"),
        ("sequence", [1.0, 0.0], "A" * N),
    ],
)
def test_example_answer_formats(name: str, probs: list[float], expected: str) -> None:
    rng = np.random.default_rng(0)
    assert get_method(name).example_answer(np.array(probs), N, rng) == expected


@pytest.mark.parametrize("steering", ["none", "fewshot"])
def test_prompt_examples_are_in_the_method_format(opinionqa: Dataset, steering: str) -> None:
    shapes = {
        "logp": r"[A-Z]",
        "samples": r"[A-Z]",
        "sequence": rf"[A-Z]{{{N}}}",
        "verbalize": r"\{.*\}",
    }
    for name, shape in shapes.items():
        answers = _answers(_user_text(opinionqa, steering, get_method(name)))
        assert len(answers) == 5
        assert all(re.fullmatch(shape, a) for a in answers), (name, answers)
        if name == "verbalize":
            assert all(sum(json.loads(a).values()) == pytest.approx(1, abs=0.03) for a in answers)


def test_a_method_registered_in_a_test_is_gone_afterwards() -> None:
    assert "argmax" not in available_methods()


def test_a_method_in_one_file_runs_end_to_end(
    argmax: type[ExpressionMethod], tmp_path: Path, reference_dir: Path
) -> None:
    assert "argmax" in available_methods()
    assert method_label("argmax") == "Argmax"
    config = RunConfig.model_validate(
        {
            "models": ["embedded"],
            "datasets": ["opinionqa"],
            "groups": [DEM.key],
            "steerings": ["persona"],
            "methods": ["argmax"],
            "questions": 2,
            "data_dir": str(reference_dir),
            "out": str(tmp_path / "run"),
        }
    )
    frame = Runner(config).run()
    assert list(frame["method"]) == ["argmax", "argmax"]
    wording = argmax.instruction.format(n=config.n, who=group_phrase(DEM, "standard"))
    for messages in frame["prompt"]:
        assert wording in json.loads(messages)[-1]["content"]
    ok = frame[frame["status"] == "ok"]
    assert not ok.empty  # letter-constrained greedy decoding always yields an option letter
    for pred, tv in zip(ok["pred"], ok["tv"], strict=True):
        assert sorted(pred) == [0.0] * (len(pred) - 1) + [1.0]  # all mass on one letter
        assert 0.0 <= tv <= 1.0
