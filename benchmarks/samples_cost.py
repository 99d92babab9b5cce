"""What Samples costs over an API: requests and prompt tokens per item, from ``--dry-run``.

Runs ``Runner(config).dry_run()`` (nothing is sent; a placeholder key is set) for few-shot
Samples items on OpinionQA, with ``openai:gpt-4o-mini``, and prints the requests and estimated
prompt tokens per item. Run it against an older checkout with ``PYTHONPATH=OLD/src`` to compare.

    .venv/bin/python benchmarks/samples_cost.py [--questions 5] [--n 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from distalign.runner import RunConfig, Runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--model", default="openai:gpt-4o-mini")
    parser.add_argument("--data-dir", default=os.environ.get("DISTALIGN_DATA"))
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-placeholder-nothing-is-sent")
    with tempfile.TemporaryDirectory() as tmp:
        settings: dict[str, Any] = {
            "models": [args.model],
            "datasets": ["opinionqa"],
            "groups": ["POLPARTY=Democrat"],
            "steerings": ["fewshot"],
            "methods": ["samples"],
            "questions": args.questions,
            "n": args.n,
            "data_dir": args.data_dir,
            "out": str(Path(tmp) / "run"),
        }
        config = RunConfig(**settings)
        row = Runner(config).dry_run().iloc[0].to_dict()
    items = int(row["items"])
    requests = int(row.get("requests", row["to_send"]))  # older versions: one per call
    figures = {
        "items": items,
        "calls": int(row["calls"]),
        "requests": requests,
        "prompt_tokens": int(row["est_prompt_tokens"]),
        "prompt_tokens_per_item": int(row["est_prompt_tokens"]) / items,
        "cost_usd": float(row["est_cost_usd"]),
    }
    print(
        f"{args.model}, few-shot Samples, N={args.n}: {items} items, {figures['calls']} calls, "
        f"{requests} requests, {figures['prompt_tokens_per_item']:.0f} prompt tokens per item, "
        f"${figures['cost_usd']:.4f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": figures}))


if __name__ == "__main__":
    main()
