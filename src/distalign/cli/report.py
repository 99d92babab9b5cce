"""``distalign report`` (tables, figures, one HTML file) and ``distalign compare`` (paired test)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distalign.cli._render import console, print_frame
from distalign.errors import DistalignError
from distalign.metrics.bootstrap import CI_MODES

SELECTOR_HELP = (
    "RESULTS_DIR[:key=value,...] with keys mode, model, method, steering, dataset, group, "
    "prompt_mode, seed; '|' separates alternatives (steering=persona|fewshot). Models match "
    "by id or display name. Default: persona+fewshot pooled, standard mode when a folder holds "
    "both. Example: results/reference:model=gpt-4,method=verbalize"
)


def report_command(
    results: Annotated[list[Path], typer.Argument(help="Results folders (or an import root).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
    with_reference: Annotated[
        Path | None,
        typer.Option(help="Imported reference folder whose models join the tables as rows."),
    ] = None,
    toy: Annotated[
        Path | None, typer.Option(help="`distalign toy coin` table (CSV/JSON) to plot.")
    ] = None,
    groups: Annotated[
        str, typer.Option(help="Two groups for the NYT stereotype figure, comma-separated.")
    ] = "POLPARTY=Democrat,POLPARTY=Republican",
    samples: Annotated[int, typer.Option(help="Sampled replies shown per configuration.")] = 3,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap and sampling seed.")] = 0,
    with_humans: Annotated[
        Path | None,
        typer.Option(help="Reference data folder: add the paper's human baseline (Table 2)."),
    ] = None,
    common_items: Annotated[
        bool | None,
        typer.Option(
            "--common-items/--all-items",
            help="When the folders cover different items: score every row on the (dataset, "
            "group, question, steering) items they share (the default then), or on all of "
            "its own items.",
        ),
    ] = None,
) -> None:
    """Build a self-contained HTML report, plus CSV/JSON/Markdown tables and PNG/SVG figures."""
    from distalign.report import build_report
    from distalign.report.common import MARK

    pair = [g.strip() for g in groups.split(",") if g.strip()]
    if len(pair) != 2:
        raise typer.BadParameter("--groups takes exactly two groups, e.g. SEX=Male,SEX=Female")
    missing = [
        p for p in [*results, *([with_reference] if with_reference else [])] if not p.exists()
    ]
    if missing:
        raise typer.BadParameter(f"not found: {', '.join(map(str, missing))}")
    # An empty results folder raises NoResultsError (a DistalignError): the command line
    # prints its message in one line and exits 2.
    with console.status("computing tables and figures"):
        report = build_report(
            results,
            out,
            with_reference=with_reference or False,
            toy=toy,
            n_boot=n_boot,
            seed=seed,
            samples_per_config=samples,
            stereotype_groups=(pair[0], pair[1]),
            with_humans=with_humans,
            common_items=common_items,
        )
    for table in report.tables:
        if table.headline and not table.collapsed:
            print_frame(table.shown_frame, table.title, table.shown)  # print_frame escapes markup
            if table.name == "coverage":
                console.print(table.note, markup=False)
            elif table.display is not None and MARK in table.note:  # a model on fewer items
                console.print(table.note[table.note.index(MARK) :], markup=False)
    console.print(f"report written to {report.html} ({len(report.figures)} figures)")
    console.print(f"tables (CSV, JSON, Markdown) and figures (PNG, SVG) in {report.assets}/")


def compare_command(
    a: Annotated[str, typer.Argument(help="Configuration A: " + SELECTOR_HELP)],
    b: Annotated[str, typer.Argument(help="Configuration B, same syntax.")],
    ci: Annotated[str, typer.Option(help="CI mode: cluster, question or iid.")] = "cluster",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the result as JSON.")
    ] = None,
) -> None:
    """Mean TV of B minus A on their shared items, with a paired bootstrap CI and p-value."""
    from distalign.report.tables import compare, comparison_json

    if ci not in CI_MODES:
        raise typer.BadParameter(f"--ci must be one of {', '.join(CI_MODES)}")
    try:
        result = compare(a, b, ci_mode=ci, n_boot=n_boot, seed=seed)  # type: ignore[arg-type]
    except DistalignError:
        raise  # e.g. an empty or missing results folder: its own one-line message
    except (ValueError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error)) from error
    r = result.result
    console.print(f"A: {result.label_a}", markup=False)
    console.print(f"B: {result.label_b}", markup=False)
    if result.n_items_a != result.n_items_b:
        console.print(
            f"A covers {result.n_items_a} items, B {result.n_items_b}: they are compared on "
            "the items both scored only"
        )
    console.print(f"mean TV on {r.n_shared} shared items: A {r.mean_a:.4f}, B {r.mean_b:.4f}")
    console.print(
        f"difference B - A = {r.statistic:+.4f}, 95% CI [{r.low:+.4f}, {r.high:+.4f}] "
        f"({r.ci_mode} bootstrap, {n_boot} resamples, seed {seed}), {format_p(r.p_value, n_boot)}"
    )
    console.print(f"items won (lower TV): A {r.wins_a}, B {r.wins_b}, ties {r.ties}")
    if out is not None:
        out.write_text(comparison_json(result))
        console.print(f"written to {out}")


def format_p(p_value: float, n_boot: int) -> str:
    # A bootstrap p-value of 0 only says no replicate crossed zero.
    return f"p < {1 / n_boot:.2g}" if p_value == 0 else f"p = {p_value:.3g}"
