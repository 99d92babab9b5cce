"""The toy experiments' definitions: outcomes, stated distributions, worked examples, wording.

All prompt wording of ``distalign toy`` is here; change any of it and bump
``TOY_TEMPLATE_VERSION``, which is part of every cache key. Running, parsing and summaries are
in :mod:`distalign.toy`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TOY_TEMPLATE_VERSION = 1  # bump whenever any prompt text or example below changes

TOY_METHODS = ("logp", "sequence", "verbalize", "samples")
DEFAULT_REPEATS = 5
DEFAULT_N = 30
EXAMPLE_SEED = 20240601  # orders the letters of the Sequence worked examples
DIE_SEED = 7  # the Dirichlet draws among the die targets

SYSTEM = "You are a helpful assistant."

COIN_STATEMENT = (
    "Let the probability that the coin lands heads up be {heads}% and the probability that it "
    "lands tails up be {tails}%."
)
COIN_SINGLE = "Flip this coin once. Reply with a single character: H for heads or T for tails."
COIN_TASKS = {
    "logp": COIN_SINGLE,
    "samples": COIN_SINGLE,
    "sequence": (
        "Flip this coin {n} times. Reply with the {n} results as {n} characters, H for heads "
        "and T for tails, and nothing else."
    ),
    "verbalize": (
        "What is the probability of each outcome of one flip of this coin? Reply only with a "
        "JSON object mapping H (heads) and T (tails) to probabilities between 0 and 1, e.g. "
        '{{"H": <probability>, "T": <probability>}}.'
    ),
}

DIE_STATEMENT = "This six-sided die is biased. The probability of each face is: {faces}."
DIE_SINGLE = "Roll this die once. Reply with a single character: the face it lands on, 1 to 6."
DIE_TASKS = {
    "logp": DIE_SINGLE,
    "samples": DIE_SINGLE,
    "sequence": (
        "Roll this die {n} times. Reply with the {n} results as {n} characters, each the face "
        "it landed on (1 to 6), and nothing else."
    ),
    "verbalize": (
        "What is the probability of each face on one roll of this die? Reply only with a JSON "
        "object mapping each face 1 to 6 to a probability between 0 and 1, e.g. "
        '{{"1": <probability>, "2": <probability>, ...}}.'
    ),
}


@dataclass(frozen=True)
class Target:
    """One stated distribution over the experiment's outcomes."""

    label: str
    probs: tuple[float, ...]


@dataclass(frozen=True)
class Example:
    """A worked example: a stated distribution and the outcome its single draw shows."""

    probs: tuple[float, ...]
    draw: str


# Off the grid of targets, so no example answers a target prompt; draws balanced H/T.
COIN_EXAMPLES = (
    Example((0.75, 0.25), "H"),
    Example((0.15, 0.85), "T"),
    Example((0.35, 0.65), "H"),
    Example((0.65, 0.35), "T"),
)
DIE_EXAMPLES = (
    Example((0.05, 0.05, 0.10, 0.40, 0.20, 0.20), "4"),
    Example((0.30, 0.10, 0.10, 0.10, 0.10, 0.30), "6"),
    Example((0.15, 0.35, 0.15, 0.15, 0.10, 0.10), "2"),
)


@dataclass(frozen=True)
class Experiment:
    """A toy problem: its outcomes, the stated distributions to try and its wording."""

    name: str
    outcomes: tuple[str, ...]
    targets: tuple[Target, ...]
    examples: tuple[Example, ...]
    tasks: Mapping[str, str]
    state: Callable[[Sequence[float]], str]  # the sentence that states a distribution


# ----- targets and wording ------------------------------------------------------------------


def round_to_permille(probs: npt.ArrayLike) -> tuple[float, ...]:
    """Round to multiples of 0.001 that still sum to 1 (largest remainder).

    The prompt states percentages with one decimal, and the target is what the prompt says.

    >>> round_to_permille([1 / 3, 1 / 3, 1 / 3])
    (0.334, 0.333, 0.333)
    """
    return tuple(units / 1000 for units in largest_remainder(probs, 1000))


def largest_remainder(weights: npt.ArrayLike, total: int) -> list[int]:
    """Split ``total`` into whole parts in proportion to ``weights``, summing to ``total``."""
    scaled = np.asarray(weights, dtype=np.float64) / float(np.sum(weights)) * total
    parts = np.floor(scaled + 1e-9).astype(int)  # 1e-9: 0.29 * 1000 is 289.99999999999994
    order = np.argsort(-(scaled - parts), kind="stable")
    parts[order[: total - int(parts.sum())]] += 1
    return [int(part) for part in parts]


def percent(p: float) -> str:
    """``0.3`` -> ``"30"``, ``0.167`` -> ``"16.7"``."""
    text = f"{p * 100:.1f}"
    return text.removesuffix(".0")


def coin_statement(probs: Sequence[float]) -> str:
    return COIN_STATEMENT.format(heads=percent(probs[0]), tails=percent(probs[1]))


def die_statement(probs: Sequence[float]) -> str:
    faces = ", ".join(f"{face}: {percent(p)}%" for face, p in enumerate(probs, start=1))
    return DIE_STATEMENT.format(faces=faces)


def coin_targets() -> tuple[Target, ...]:
    """P(heads) = 0.0, 0.1, ..., 1.0, as in the paper's 11 prompts."""
    return tuple(Target(f"p={i / 10:.1f}", (i / 10, (10 - i) / 10)) for i in range(11))


def die_targets(seed: int = DIE_SEED, draws: int = 3) -> tuple[Target, ...]:
    """Uniform, one face at 50%, a linear ramp and a few seeded Dirichlet(1) draws."""
    shapes = {
        "uniform": np.ones(6),
        "3 at 50%": np.array([0.1, 0.1, 0.5, 0.1, 0.1, 0.1]),
        "ramp": np.arange(1, 7, dtype=np.float64),
    }
    rng = np.random.default_rng(seed)
    for i in range(draws):
        shapes[f"dirichlet-{i + 1}"] = rng.dirichlet(np.ones(6))
    return tuple(Target(label, round_to_permille(p)) for label, p in shapes.items())


COIN = Experiment("coin", ("H", "T"), coin_targets(), COIN_EXAMPLES, COIN_TASKS, coin_statement)
DIE = Experiment("die", tuple("123456"), die_targets(), DIE_EXAMPLES, DIE_TASKS, die_statement)
EXPERIMENTS = {experiment.name: experiment for experiment in (COIN, DIE)}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown toy experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


# ----- prompts ------------------------------------------------------------------------------


def example_answer(experiment: Experiment, method: str, index: int, n: int) -> str:
    """The worked example's reply in the method's own format."""
    example = experiment.examples[index]
    if method == "verbalize":
        return json.dumps(dict(zip(experiment.outcomes, example.probs, strict=True)))
    if method == "sequence":
        # Exact proportions in a fixed shuffled order: the example shows calibrated flips.
        counts = largest_remainder(example.probs, n)
        letters = np.repeat(list(experiment.outcomes), counts)
        rng = np.random.default_rng(EXAMPLE_SEED + index)
        return "".join(rng.permutation(letters))
    return example.draw


def build_messages(
    experiment: Experiment, method: str, probs: Sequence[float], n: int
) -> list[dict[str, str]]:
    """System message, worked examples as chat turns, then the question for ``probs``."""
    task = experiment.tasks[method].format(n=n)
    messages = [{"role": "system", "content": SYSTEM}]
    for index, example in enumerate(experiment.examples):
        question = f"{experiment.state(example.probs)} {task}"
        answer = example_answer(experiment, method, index, n)
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    messages.append({"role": "user", "content": f"{experiment.state(probs)} {task}"})
    return messages
