"""Toy calibration experiments: a biased coin (spec §10) and a biased die.

The model is told a distribution ("heads 30%, tails 70%") and asked to produce outcomes with
each expression method. A model that can *simulate* what it *knows* produces the stated
distribution; the mean absolute calibration error ``|mean produced - stated|`` measures the
gap. In the paper GPT-4's Log-p was a step function of the stated P(heads) while its Sequence
of 30 flips roughly tracked it.

* **Prompts.** A system message, worked examples as earlier chat turns, then the stated
  distribution and the method's task. The paper's Log-p prompt had 10 worked examples too;
  without any, SmolLM2-135M puts under 10% of its next-token mass on H/T (it starts "The ..."),
  with them about 85%. All wording is in the constants below: change any of it and bump
  ``TOY_TEMPLATE_VERSION``, which is part of every cache key.
* **Calls.** Built by :mod:`distalign.methods`, so seeds, JSON schemas and token limits are
  those of ``distalign run``. Log-p is deterministic and asked once per prompt; the sampled
  methods are asked ``repeats`` times with seeds 0, 1, ... (the paper used 5 repetitions).
* **Parsing.** The standard parsers of :mod:`distalign.parsing`. Sequence uses the toy's rule
  of spec §10: a reply with fewer than N-1 valid letters is rejected. The parsers only accept
  letters A-Z, so die faces "1".."6" are mapped to "A".."F" before parsing.
* **Cache.** Every call goes through a :class:`~distalign.store.ResponseCache`; a rerun sends
  nothing that is already there.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from distalign import __version__
from distalign.backends import Backend, get_backend
from distalign.engine import Engine, Request, RequestMaker, SendStats
from distalign.methods import get_method
from distalign.parsing import (
    Parsed,
    parse_sequence,
    parse_verbalized,
    samples_distribution,
)
from distalign.steering import Prompt
from distalign.store import ResponseCache
from distalign.toy_experiments import (
    DEFAULT_N,
    DEFAULT_REPEATS,
    TOY_METHODS,
    TOY_TEMPLATE_VERSION,
    Experiment,
    Target,
    build_messages,
    get_experiment,
)

# ----- running ------------------------------------------------------------------------------


@dataclass
class ToyStats(SendStats):
    calls_failed: int = 0
    seconds: float = 0.0


@dataclass
class Cell:
    """One repetition of one method on one target, and the cache keys of its calls."""

    target: Target
    method: str
    seed: int
    messages: list[dict[str, str]]
    keys: list[str] = field(default_factory=list)


@dataclass
class ToyResult:
    experiment: str
    table: pd.DataFrame  # one row per (target, method, outcome)
    calibration: pd.DataFrame  # one row per method
    stats: ToyStats
    identity: dict[str, Any]
    settings: dict[str, Any]


Progress = Callable[[int, int], None]


def toy_requests(backend: Backend) -> RequestMaker:
    """Makes the toy's engine requests (their payload's hash is the cache key)."""
    return RequestMaker(backend.identity, {"toy_template_version": TOY_TEMPLATE_VERSION})


def plan(
    experiment: Experiment,
    backend: Backend,
    methods: Sequence[str],
    repeats: int,
    n: int,
) -> tuple[list[Cell], list[Request]]:
    """Every cell of the grid, and the requests they need."""
    cells: list[Cell] = []
    requests: list[Request] = []
    make = toy_requests(backend)
    for method_name in methods:
        method = get_method(method_name, n=n)
        method.check(backend)
        # Log-p is deterministic: more repetitions would be the same request.
        seeds = [0] if method_name == "logp" else list(range(repeats))
        for target in experiment.targets:
            messages = build_messages(experiment, method_name, target.probs, n)
            prompt = Prompt(messages, list(experiment.outcomes), list(range(len(target.probs))))
            for seed in seeds:
                cell = Cell(target, method_name, seed, messages)
                for call in method.calls(prompt, seed, attempt=0):
                    request = make(messages, call)
                    cell.keys.append(request.key)
                    requests.append(request)
                cells.append(cell)
    return cells, requests


def run_experiment(
    experiment: Experiment,
    backend: Backend,
    cache: ResponseCache,
    *,
    methods: Sequence[str] = TOY_METHODS,
    repeats: int = DEFAULT_REPEATS,
    n: int = DEFAULT_N,
    progress: Progress | None = None,
) -> ToyResult:
    """Run one toy experiment through the cache and summarize it."""
    check_settings(methods, repeats, n)
    start = time.perf_counter()
    stats = ToyStats()
    cells, requests = plan(experiment, backend, methods, repeats, n)
    Engine(backend, cache, stats, progress).send(requests)
    stats.calls_failed = len(cache.missing(requests_keys(requests)))
    parsed = [(cell, parse_cell(experiment, cell, cache, n)) for cell in cells]
    table = summarize(experiment, methods, parsed, cache)
    stats.seconds = time.perf_counter() - start
    settings = {"methods": list(methods), "repeats": repeats, "n": n}
    return ToyResult(
        experiment.name,
        table,
        calibration(table),
        stats,
        backend.identity.as_dict(),
        settings,
    )


def requests_keys(requests: Sequence[Request]) -> set[str]:
    return {r.key for r in requests}


def check_settings(methods: Sequence[str], repeats: int, n: int) -> None:
    unknown = [m for m in methods if m not in TOY_METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be among {', '.join(TOY_METHODS)}, got {list(methods)}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if n < 2:  # the Sequence rule allows one invalid letter; N=1 would allow none valid
        raise ValueError(f"n must be at least 2, got {n}")


# ----- parsing ------------------------------------------------------------------------------

_ALIASES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def alias_letters(outcomes: Sequence[str]) -> tuple[str, ...]:
    """Letters the parsers accept: the outcomes themselves if they are A-Z, else A, B, ..."""
    if all(len(o) == 1 and "A" <= o <= "Z" for o in outcomes):
        return tuple(outcomes)
    return tuple(_ALIASES[: len(outcomes)])


def to_aliases(text: str, outcomes: Sequence[str]) -> str:
    """Replace each outcome character by its alias letter ("1342" -> "ACDB")."""
    table = str.maketrans(dict(zip(outcomes, alias_letters(outcomes), strict=True)))
    return text.translate(table)


def keys_to_aliases(text: str, outcomes: Sequence[str]) -> str:
    """Rename quoted JSON keys ``"1":`` to ``"A":``, leaving the numbers untouched."""
    aliases = dict(zip(outcomes, alias_letters(outcomes), strict=True))
    alternatives = "|".join(map(re.escape, outcomes))
    pattern = re.compile(rf"""(["'])({alternatives})\1(\s*:)""")
    return pattern.sub(lambda m: f"{m[1]}{aliases[m[2]]}{m[1]}{m[3]}", text)


def parse_responses(
    method: str, responses: Sequence[Mapping[str, Any]], outcomes: Sequence[str], n: int
) -> Parsed:
    """The distribution over ``outcomes`` that one cell's replies express."""
    letters = alias_letters(outcomes)
    if method == "logp":
        (response,) = responses
        mass = float(response["covered_mass"])
        probs = [float(response["probs"][o]) for o in outcomes]
        return Parsed.success(probs, f"covered mass {mass:.3f}", raw_sum=mass)
    if method == "sequence":
        text = to_aliases(str(responses[0]["text"]), outcomes)
        # spec §10: the toy rejects a reply with fewer than N-1 valid flips
        return parse_sequence(text, letters, n_expected=n, min_valid=n - 1)
    if method == "verbalize":
        return parse_verbalized(keys_to_aliases(str(responses[0]["text"]), outcomes), letters)
    texts = [to_aliases(str(r["text"]), outcomes) for r in responses]
    return samples_distribution(texts, letters)


def parse_cell(experiment: Experiment, cell: Cell, cache: ResponseCache, n: int) -> Parsed:
    responses = [r for r in (cache.get(key) for key in cell.keys) if r is not None]
    if len(responses) < len(cell.keys):
        errors = [cache.error(key) for key in cell.keys]
        return Parsed.failure(next((e for e in errors if e), "no response"))
    return parse_responses(cell.method, responses, experiment.outcomes, n)


# ----- summaries ----------------------------------------------------------------------------


def summarize(
    experiment: Experiment,
    methods: Sequence[str],
    parsed: Sequence[tuple[Cell, Parsed]],
    cache: ResponseCache,
) -> pd.DataFrame:
    """The tidy table: one row per (target, method, outcome)."""
    rows: list[dict[str, Any]] = []
    for method in methods:
        for target in experiment.targets:
            group = [(c, p) for c, p in parsed if c.method == method and c.target == target]
            rows += _target_rows(experiment, target, method, group, cache)
    return pd.DataFrame(rows)


def _target_rows(
    experiment: Experiment,
    target: Target,
    method: str,
    group: Sequence[tuple[Cell, Parsed]],
    cache: ResponseCache,
) -> list[dict[str, Any]]:
    valid = np.array([p.probs for _, p in group if p.probs is not None], dtype=np.float64)
    masses = [p.raw_sum for _, p in group if p.ok and p.raw_sum is not None]
    base = {
        "experiment": experiment.name,
        "target": target.label,
        "method": method,
        "n_reps": len(group),
        "n_valid": len(valid),
        "failures": len(group) - len(valid),
        "covered_mass": float(np.mean(masses)) if method == "logp" and masses else None,
        "notes": _notes(group, cache),
    }
    rows = []
    for index, outcome in enumerate(experiment.outcomes):
        values = valid[:, index] if len(valid) else np.array([])
        rows.append(
            {
                **base,
                "outcome": outcome,
                "stated": target.probs[index],
                # population std over repetitions (np.std), as the paper's files store it
                "produced_mean": float(values.mean()) if len(values) else None,
                "produced_std": float(values.std()) if len(values) else None,
            }
        )
    return rows


def _notes(group: Sequence[tuple[Cell, Parsed]], cache: ResponseCache) -> str:
    """Failure reasons with counts, and outcome spellings Log-p could not count."""
    reasons = Counter(p.detail for _, p in group if not p.ok)
    notes = [f"{count}x {reason}" if count > 1 else reason for reason, count in reasons.items()]
    for cell, _ in group:
        if cell.method == "logp":
            response = cache.get(cell.keys[0]) or {}
            skipped = response.get("skipped_variants") or []
            if skipped:
                notes.append("not single tokens: " + ", ".join(repr(s) for s in skipped))
    return "; ".join(notes)


TABLE_COLUMNS = [
    "experiment",
    "target",
    "method",
    "outcome",
    "stated",
    "produced_mean",
    "produced_std",
    "n_reps",
    "n_valid",
    "failures",
    "covered_mass",
    "notes",
]


def mean_abs_error(produced: npt.ArrayLike, stated: npt.ArrayLike) -> float:
    """Mean over outcomes of ``|produced - stated|``.

    For a coin this is ``|P(H) - p|`` (both outcomes err by the same amount), which is also
    the total variation distance; for k outcomes it is ``2 * TV / k``.

    >>> mean_abs_error([0.5, 0.5], [0.25, 0.75])
    0.25
    """
    errors = np.abs(np.asarray(produced, dtype=np.float64) - np.asarray(stated, dtype=np.float64))
    return float(errors.mean())


def calibration(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: the calibration error, averaged over the targets that have a result.

    ``calibration_error`` is the mean over targets of :func:`mean_abs_error` between the mean
    produced distribution and the stated one; ``tv`` the mean total variation distance.
    """
    rows = []
    for (experiment, method), frame in table.groupby(["experiment", "method"], sort=False):
        errors, distances = [], []
        for _, target in frame.groupby("target", sort=False):
            produced = target["produced_mean"].astype(float)
            if produced.isna().any():
                continue  # no valid repetition: reported in failures, not scored
            errors.append(mean_abs_error(produced, target["stated"]))
            distances.append(0.5 * float(np.abs(produced - target["stated"]).sum()))
        per_target = frame.drop_duplicates("target")
        rows.append(
            {
                "experiment": experiment,
                "method": method,
                "calibration_error": float(np.mean(errors)) if errors else None,
                "tv": float(np.mean(distances)) if distances else None,
                "targets": len(per_target),
                "targets_scored": len(errors),
                "n_valid": int(per_target["n_valid"].sum()),
                "failures": int(per_target["failures"].sum()),
            }
        )
    return pd.DataFrame(rows)


# ----- files --------------------------------------------------------------------------------


def save_result(result: ToyResult, out_dir: Path) -> list[Path]:
    """Write ``<name>_table``, ``<name>_calibration`` (CSV and JSON) and a manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _write(result.table[TABLE_COLUMNS], out_dir, f"{result.experiment}_table")
    paths += _write(result.calibration, out_dir, f"{result.experiment}_calibration")
    manifest = {
        "kind": "toy",
        "experiment": result.experiment,
        "settings": result.settings,
        "toy_template_version": TOY_TEMPLATE_VERSION,
        "model_identity": result.identity,
        "stats": result.stats.__dict__,
        "distalign_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    manifest_path = out_dir / f"{result.experiment}_manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return [*paths, manifest_path]


def _write(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    frame.to_csv(csv_path, index=False)
    records = json.loads(frame.to_json(orient="records"))  # NaN becomes null
    json_path.write_text(json.dumps(records, indent=2) + "\n")
    return [csv_path, json_path]


def run_toy(
    name: str,
    *,
    model: str = "embedded",
    out: str | Path = "results/toy",
    methods: Sequence[str] = TOY_METHODS,
    repeats: int = DEFAULT_REPEATS,
    n: int = DEFAULT_N,
    progress: Progress | None = None,
) -> tuple[ToyResult, list[Path]]:
    """Run a toy experiment on a model spec; cache and results go to ``out``."""
    experiment = get_experiment(name)
    check_settings(methods, repeats, n)
    out_dir = Path(out)
    with ResponseCache(out_dir / "cache.sqlite") as cache, get_backend(model) as backend:
        result = run_experiment(
            experiment, backend, cache, methods=methods, repeats=repeats, n=n, progress=progress
        )
    return result, save_result(result, out_dir)
