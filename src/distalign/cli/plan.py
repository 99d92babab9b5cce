"""``distalign plan``: the questions, groups and cost of a study that resolves a difference δ.

The statistics are :mod:`distalign.metrics.plan` (formula in its docstring and docs/plan.md);
the cost is ``Runner.dry_run`` on the planned grid (nothing is sent), per backend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from distalign.cli._plan_cost import COST_METHOD, study_cost
from distalign.cli._render import console, print_frame, write_frame
from distalign.errors import ConfigError, UnknownNameError
from distalign.metrics.aggregate import MAIN_STEERINGS
from distalign.metrics.plan import Components, PlanRow, difference_tables, plan, study_variance
from distalign.metrics.plan import variance_components as components_of

# uniform numbers of groups per dataset tried beside the pilot's own (capped by availability)
GROUP_OPTIONS = (2, 3, 4, 6, 8, 12, 16, 24)


def plan_command(
    pilot: Annotated[Path, typer.Argument(help="The pilot's results folder (run or import).")],
    a: Annotated[str, typer.Option("--a", help="Configuration A: MODEL:METHOD, METHOD or MODEL.")],
    b: Annotated[str, typer.Option("--b", help="Configuration B, same syntax.")],
    delta: Annotated[
        float | None,
        typer.Option(help="TV difference to resolve (default: the pilot's observed B - A)."),
    ] = None,
    target_power: Annotated[float, typer.Option("--power", help="Power to reach.")] = 0.8,
    alpha: Annotated[float, typer.Option(help="Two-sided test level.")] = 0.05,
    steering: Annotated[
        list[str] | None,
        typer.Option(help="Steerings pooled (default persona+fewshot where present, else all)."),
    ] = None,
    groups: Annotated[
        list[int] | None,
        typer.Option("--groups", help="Groups per dataset to plan for (default: a range)."),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option("--backend", help="Model spec(s) to cost (default: the pilot's models)."),
    ] = None,
    prices: Annotated[Path | None, typer.Option(help="TOML/JSON file overriding prices.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the pilot.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write CSV/JSON here.")] = None,
) -> None:
    """How many questions and groups resolve δ between A and B, and what that study costs."""
    from distalign.cli.reference import _items
    from distalign.results import load_manifest

    for name, value in (("--power", target_power), ("--alpha", alpha)):
        if not 0 < value < 1:
            raise ConfigError(f"{name} must lie strictly between 0 and 1, got {value}")
    items = _items(pilot, "`distalign run` or `distalign import-reference`")
    if "mode" in items and (items["mode"] == "standard").any():
        items = items[items["mode"] == "standard"]
    items = items[items["model"] != "baseline"]
    label_a, frame_a = pick(items, a, "--a")
    label_b, frame_b = pick(items, b, "--b")
    if label_a == label_b:
        raise ConfigError(f"--a and --b name the same configuration ({label_a})")
    chosen = _steerings(items, steering)
    frame_a, frame_b = (f[f["steering"].isin(chosen)] for f in (frame_a, frame_b))
    tables = difference_tables(frame_a, frame_b)
    if not tables:
        raise ConfigError(f"{label_a} and {label_b} share no dataset in {pilot}")
    comps = [components_of(t, dataset=d, n_boot=n_boot, seed=seed) for d, t in tables.items()]
    observed = float(sum(c.mean for c in comps) / len(comps))
    delta = observed if delta is None else delta
    if delta == 0 or not math.isfinite(delta):
        raise ConfigError("the pilot shows no difference between A and B: give --delta")

    manifest = load_manifest(pilot)
    settings = _pilot_settings(manifest, data_dir)
    available = _available(comps, settings)
    options = _group_options(comps, available, groups)
    rows = plan(delta, comps, options, target=target_power, alpha=alpha)
    chosen_row = _cheapest(rows)

    console.print(f"A: {label_a}   B: {label_b}   steering: {'+'.join(chosen)}", markup=False)
    boot_se = math.sqrt(sum(c.boot_var for c in comps)) / len(comps)
    console.print(
        f"pilot: B - A = {observed:+.4f} (two-way cluster bootstrap SE {boot_se:.4f}); "
        f"planning for delta = {delta:+.4f}, power {target_power:g}, alpha {alpha:g}"
    )
    pilot_frame = components_frame(comps)
    print_frame(pilot_frame, "Pilot: B - A per dataset, its SE and the SE's parts")
    plan_frame = plan_rows_frame(rows, comps, available, chosen_row)
    title = f"Study size to resolve {delta:+.4f} at power {target_power:g} (alpha {alpha:g})"
    print_frame(plan_frame, title)
    if not all(c.group_estimable for c in comps):
        console.print("one group in the pilot: the group variance is unknown, so the plan keeps it")
    if chosen_row is None:
        console.print(
            "no option reaches the power: add groups (--groups) or resolve a larger delta"
        )
        return
    specs = backend or settings.get("models") or []
    cost_frame = pd.DataFrame()
    if not specs:
        console.print("give --backend MODEL_SPEC (e.g. openai:gpt-4o-mini) to estimate the cost")
    else:
        methods = list(
            dict.fromkeys(COST_METHOD.get(m, m) for m in (_method(frame_a), _method(frame_b)))
        )
        with console.status("counting the planned study's requests"):
            cost_frame = study_cost(
                specs, methods, chosen_row, comps, chosen, settings, prices, items
            )
        shape = "/".join(map(str, chosen_row.groups))
        print_frame(
            cost_frame,
            f"Cost of the planned study ({chosen_row.questions} questions x {shape} groups "
            "per dataset; estimated, nothing was sent)",
        )
    if out is not None:
        for name, frame in (("plan_pilot", pilot_frame), ("plan", plan_frame)):
            write_frame(frame, out, name)
        if not cost_frame.empty:
            write_frame(cost_frame, out, "plan_cost")
        console.print(f"tables written to {out}/")


def pick(items: pd.DataFrame, spec: str, flag: str) -> tuple[str, pd.DataFrame]:
    """The rows of one configuration: ``MODEL:METHOD``, ``METHOD`` or ``MODEL``.

    The last ``:`` splits (model specs hold colons: ``openai:gpt-4o:verbalize``); a part left
    out must be unique in the pilot.
    """
    models = list(dict.fromkeys(map(str, items["model"])))
    methods = list(dict.fromkeys(map(str, items["method"])))
    model: str | None
    method: str | None
    head, sep, tail = spec.strip().rpartition(":")
    if sep and tail in methods:
        model, method = head, tail
    elif spec in methods:
        model, method = None, spec
    else:
        model, method = spec, None
    if model is not None and model not in models:
        raise UnknownNameError(
            f"{flag} {spec!r}: no model {model!r} in the pilot; models: {', '.join(models)}; "
            f"methods: {', '.join(methods)}"
        )
    model = model or _only(models, "model", flag, spec)
    rows = items[items["model"] == model]
    method = method or _only(list(dict.fromkeys(map(str, rows["method"]))), "method", flag, spec)
    rows = rows[rows["method"] == method]
    if rows.empty:
        raise UnknownNameError(f"{flag} {spec!r}: {model} has no {method} items in the pilot")
    return f"{model}:{method}", rows


def _only(names: list[str], kind: str, flag: str, spec: str) -> str:
    if len(names) != 1:
        raise ConfigError(
            f"{flag} {spec!r}: the pilot has several {kind}s ({', '.join(names)}); say MODEL:METHOD"
        )
    return names[0]


def _steerings(items: pd.DataFrame, given: list[str] | None) -> list[str]:
    present = sorted(set(map(str, items["steering"])))
    if given:
        chosen = [s.strip() for value in given for s in value.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in present]
        if unknown:
            raise UnknownNameError(
                f"--steering {', '.join(unknown)}: not in the pilot; it has {', '.join(present)}"
            )
        return chosen
    main = [s for s in MAIN_STEERINGS if s in present]
    return main or present


def _method(frame: pd.DataFrame) -> str:
    return str(frame["method"].iloc[0])


def _pilot_settings(manifest: dict[str, Any], data_dir: Path | None) -> dict[str, Any]:
    """The pilot's run settings (a run's config; an import has only its data folder)."""
    from distalign.run_config import RunConfig

    config = manifest.get("config") or {}
    settings = {k: v for k, v in config.items() if k in RunConfig.model_fields}
    if data_dir is not None:
        settings["data_dir"] = str(data_dir)
    elif not settings.get("data_dir") and manifest.get("data_dir"):
        settings["data_dir"] = str(manifest["data_dir"])
    return settings


def _available(comps: list[Components], settings: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Questions and groups each dataset offers (the pilot's own size when it cannot load)."""
    from distalign.datasets import load_dataset
    from distalign.errors import DistalignError

    sizes = {}
    for c in comps:
        try:
            dataset = load_dataset(c.dataset, settings.get("data_dir"))
            sizes[c.dataset] = (len(dataset.questions), max(len(dataset.groups), c.groups))
        except (DistalignError, OSError):
            sizes[c.dataset] = (c.questions, c.groups)
    return sizes


def _group_options(
    comps: list[Components], available: dict[str, tuple[int, int]], given: list[int] | None
) -> list[tuple[int, ...]]:
    pilot = tuple(c.groups for c in comps)
    if not all(c.group_estimable for c in comps):
        return [pilot]  # the group variance is unknown: no other number of groups is planned
    if given and min(given) < 1:
        raise ConfigError("--groups takes positive numbers of groups per dataset")
    uniform = given or [*GROUP_OPTIONS, max(pilot)]
    options = [] if given else [pilot]
    for g in sorted(set(uniform)):
        options.append(tuple(min(g, available[c.dataset][1]) for c in comps))
    return list(dict.fromkeys(options))


def _cheapest(rows: list[PlanRow]) -> PlanRow | None:
    reachable = [r for r in rows if r.questions is not None]
    return min(reachable, key=lambda r: (r.cells, sum(r.groups))) if reachable else None


def components_frame(comps: list[Components]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": c.dataset,
            "questions": c.questions,
            "groups": c.groups,
            "cells": c.cells,
            "mean B-A": f"{c.mean:+.4f}",
            "bootstrap SE": f"{math.sqrt(c.boot_var):.4f}",
            # the model's SE and its three parts at the pilot's size
            "SE": f"{math.sqrt(study_variance([c], c.questions, c.groups)):.4f}",
            "SE questions": f"{math.sqrt(c.question / c.questions):.4f}",
            "SE groups": _part(c, c.group / c.groups),
            "SE question x group": _part(c, c.residual / (c.questions * c.groups)),
        }
        for c in comps
    )


def _part(c: Components, variance: float) -> str:
    return f"{math.sqrt(variance):.4f}" if c.group_estimable else "unknown"


def plan_rows_frame(
    rows: list[PlanRow],
    comps: list[Components],
    available: dict[str, tuple[int, int]],
    chosen: PlanRow | None,
) -> pd.DataFrame:
    records = []
    for row in rows:
        short = [
            f"{c.dataset} has {available[c.dataset][0]}"
            for c in comps
            if row.questions is not None and row.questions > available[c.dataset][0]
        ]
        records.append(
            {
                "groups": "/".join(map(str, row.groups)),
                "questions": row.questions if row.questions is not None else "unreachable",
                "cells": row.cells or "–",
                "SE": f"{row.se:.4f}" if row.questions else "–",
                "power": f"{row.power:.3f}",
                "note": ("chosen (fewest cells)" if row is chosen else "")
                + (f"; more questions than {', '.join(short)}" if short else "")
                if row.questions
                else f"power at most {row.power:.3f} with unlimited questions",
            }
        )
    return pd.DataFrame(records)


__all__ = ["pick", "plan_command"]
