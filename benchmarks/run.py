"""All engine benchmarks side by side, one table of ratios.

    .venv/bin/python benchmarks/run.py --quick [--before PATH/TO/OLD/src]

``--before`` runs the same scripts with ``PYTHONPATH`` set to another checkout's ``src`` (e.g.
``git worktree add /tmp/old <rev>``), one after the other on this machine, so before and after
are measured side by side (the grid and the Samples cost; the llama.cpp overhead and the
lm-eval comparison measure this checkout). ``--quick`` (under 10 minutes on 2 cores) uses small
samples: the projection from 2 questions per dataset, the cached rerun over OpinionQA only, 3
questions per method for the llama.cpp overhead, 20 Log-p items against lm-evaluation-harness.
Each script can also be run on its own (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_script(args: list[str], src: str | None) -> dict[str, Any]:
    """Run a benchmark script that writes ``--json``; ``src`` replaces distalign's source."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([sys.executable, *args, "--json", str(out)], env=env, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def grid_hours(result: dict[str, Any]) -> tuple[float, dict[str, int]]:
    """Projected grid hours from the sampled cells, and the cells' token totals in the grid."""
    seconds, tokens = 0.0, {"prefill": 0, "decode": 0}
    for cell in result["cells"]:
        scale = cell["grid_items"] / max(cell["items"], 1)
        # the model's share of the cell: what the cached rerun of the same cell does not pay
        seconds += max(0.0, cell["seconds"] - cell["cached_seconds"]) * scale
        tokens["prefill"] += int(cell["prefill_tokens"] * scale)
        tokens["decode"] += int(cell["decode_tokens"] * scale)
    return seconds / 3600, tokens


def limit_hours(tokens: dict[str, int], rates: dict[str, dict[str, float]]) -> float:
    prefill = max(r["prefill"] for r in rates.values())
    decode = max(r["decode"] for r in rates.values())
    return (tokens["prefill"] / prefill + tokens["decode"] / decode) / 3600


def other_rows(versions: dict[str, str | None], quick: bool) -> list[tuple[str, str, str]]:
    """Samples over an API (every version), llama.cpp overhead and lm-eval (this checkout)."""
    rows = []
    for version, src in versions.items():
        s = run_script([str(HERE / "samples_cost.py")], src)["samples"]
        rows.append(
            (
                "Samples API prompt tokens per item (requests)",
                version,
                f"{s['prompt_tokens_per_item']:.0f} ({s['requests']} for {s['items']} items)",
            )
        )
    questions = "3" if quick else "10"
    over = run_script([str(HERE / "throughput.py"), "--questions", questions], None)
    for method, paths in over["throughput"].items():
        rows.append(
            (
                f"{method}: backend / runner time over raw llama.cpp",
                "after",
                f"{paths['backend']:.3f} / {paths['runner']:.3f}",
            )
        )
    lmeval = [str(HERE / "logp_vs_lmeval.py"), "--batch-sizes", "1,8"]
    found = run_script([*lmeval, "--quick"] if quick else lmeval, None)["lmeval"]
    for size, ratio in found.items():
        rows.append(
            (
                f"hf: vs lm-eval batch {size}: scoring / end to end x (max |dp|)",
                "after",
                f"{ratio['scoring_x']:.2f} / {ratio['end_to_end_x']:.2f} ({ratio['max_dp']:.1e})",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", help="another checkout's src folder, run side by side")
    args = parser.parse_args()
    versions: dict[str, str | None] = {"after": None}
    if args.before:
        versions = {"before": args.before, "after": None}
    questions = "2" if args.quick else "5"
    datasets = "opinionqa" if args.quick else "opinionqa,globalvalues,nytimes"
    rows: list[tuple[str, str, str]] = []
    rates = run_script([str(HERE / "grid.py"), "--rates"], None)["rates"]
    for name, rate in rates.items():
        rows.append(
            (f"{name} prefill / decode tok/s", "", f"{rate['prefill']:.0f} / {rate['decode']:.0f}")
        )
    for version, src in versions.items():
        cached = run_script([str(HERE / "grid.py"), "--cached", "--datasets", datasets], src)
        c = cached["cached"]
        rows.append(
            (
                f"cached rerun ({c['items']} items, {c['calls']} calls) s",
                version,
                f"{c['seconds']:.1f}",
            )
        )
        projection = run_script([str(HERE / "grid.py"), "--questions", questions], src)
        hours, tokens = grid_hours(projection)
        hours += cached["cached"]["seconds"] / 3600 if not args.quick else 0.0
        limit = limit_hours(tokens, rates)
        rows.append(("full grid projected h", version, f"{hours:.2f}"))
        rows.append(
            (
                "full grid / limit of best rates",
                version,
                f"{hours / limit:.2f}x (limit {limit:.2f} h)",
            )
        )
    rows += other_rows(versions, args.quick)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    width = max(len(r[0]) for r in rows)
    for label, version, value in rows:
        print(f"{label:<{width}}  {version:<6}  {value}")


if __name__ == "__main__":
    main()
