"""Log-p throughput of the transformers backend (``hf:embedded``): one at a time vs batched.

Real OpinionQA persona Log-p prompts (the main groups, the first questions) are sent in the
engine's order (sorted by their messages, so prompts of one group are adjacent) and in the
engine's batches, three ways, on the same loaded model:

* ``single``: the path before batching: ``next_token_probs`` one prompt at a time, each run
  in full without a KV cache (the batch size does not apply).
* ``batched``: ``next_token_probs_many`` on each batch, prompts padded, no prefix reuse.
* ``prefix``: ``next_token_probs_many`` with prefix reuse: the tokens a segment of prompts
  begins with run once, the endings run as one batch on their KV cache.

Each round times every (dtype, path, batch size) once, in turn, so that slow spells of a shared
machine hit all of them; the table gives the range over rounds of prompts per second, and
``max|dp|``, the largest difference of a letter probability from the ``single`` path of the
same dtype (bf16 is also compared with fp32 ``single``).

    .venv/bin/python benchmarks/hf_logp.py [--prompts 100] [--rounds 3] [--batch-sizes 1,8,16,32]
        [--dtypes float32,bfloat16] [--threads 2] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from distalign.backends import get_backend
from distalign.backends.base import NextTokenProbs, ProbsJob
from distalign.datasets import load_dataset
from distalign.datasets.reference import main_groups
from distalign.methods import get_method
from distalign.steering import build_prompt

try:
    import torch

    from distalign.backends.transformers_backend import TransformersBackend
except ImportError:  # pragma: no cover
    sys.exit("this benchmark needs the transformers backend: pip install 'distalign[hf]'")

REPO_ROOT = Path(__file__).resolve().parents[1]
Config = tuple[str, str, int]  # dtype, path, batch size


def data_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    from_env = os.environ.get("DISTALIGN_DATA", "").strip()
    return Path(from_env) if from_env else REPO_ROOT.parent / "shared" / "data" / "reference"


def persona_jobs(folder: Path, count: int) -> list[ProbsJob]:
    """``count`` persona Log-p prompts: every main group on the first questions, engine order."""
    dataset = load_dataset("opinionqa", folder)
    groups = main_groups(dataset)
    logp = get_method("logp")
    questions = list(dataset.questions.values())[: -(-count // len(groups))]
    prompts = [build_prompt(dataset, q, g, "persona", logp) for g in groups for q in questions]
    jobs = [ProbsJob(p.messages, tuple(p.letters)) for p in prompts[:count]]
    # the engine sorts calls by their messages as canonical JSON
    return sorted(jobs, key=lambda j: json.dumps(j.messages, sort_keys=True, ensure_ascii=False))


def run(backend: TransformersBackend, path: str, size: int, jobs: list[ProbsJob]) -> list[Any]:
    if path == "single":
        return [backend.next_token_probs(j.messages, j.candidates) for j in jobs]
    backend.reuse_prefix = path == "prefix"
    backend.batch_size = size
    results: list[Any] = []
    for start in range(0, len(jobs), size):  # the engine's batches
        results.extend(backend.next_token_probs_many(jobs[start : start + size]))
    return results


def max_diff(results: list[NextTokenProbs], reference: list[NextTokenProbs]) -> float:
    return max(
        abs(p - ref.probs[letter])
        for got, ref in zip(results, reference, strict=True)
        for letter, p in got.probs.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,8,16,32")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    jobs = persona_jobs(data_dir(args.data_dir), args.prompts)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    backends = {d: get_backend("hf:embedded", dtype=d) for d in args.dtypes.split(",")}
    assert all(isinstance(b, TransformersBackend) for b in backends.values())
    lengths = [len(backends[next(iter(backends))].prompt_ids(j.messages)) for j in jobs]  # type: ignore[attr-defined]
    print(
        f"{len(jobs)} prompts, {min(lengths)}-{max(lengths)} tokens (mean "
        f"{sum(lengths) / len(lengths):.0f}); torch {torch.__version__}, "
        f"{args.threads} threads",
        flush=True,
    )
    configs: list[Config] = [(d, "single", 1) for d in backends]
    configs += [(d, p, s) for d in backends for p in ("batched", "prefix") for s in sizes]
    speeds: dict[Config, list[float]] = {c: [] for c in configs}
    diffs: dict[Config, float] = {}
    reference: dict[str, list[NextTokenProbs]] = {}
    for round_ in range(args.rounds):
        for config in configs:
            dtype, path, size = config
            start = time.perf_counter()
            results = run(backends[dtype], path, size, jobs)  # type: ignore[arg-type]
            speeds[config].append(len(jobs) / (time.perf_counter() - start))
            assert not any(isinstance(r, Exception) for r in results), results
            if path == "single":
                reference.setdefault(dtype, results)
            diffs[config] = max_diff(results, reference[dtype])
            print(
                f"round {round_ + 1} {dtype} {path} {size}: {speeds[config][-1]:.2f}/s",
                file=sys.stderr,
                flush=True,
            )
    fp32 = reference.get("float32")
    print(f"\n| dtype | path | batch | prompts/s (min-max of {args.rounds}) | max abs dp |")
    print("|---|---|---|---|---|")
    for config in configs:
        dtype, path, size = config
        low, high = min(speeds[config]), max(speeds[config])
        note = ""
        if path == "single" and dtype != "float32" and fp32 is not None:
            note = f" (vs float32: {max_diff(reference[dtype], fp32):.1e})"
        print(
            f"| {dtype} | {path} | {'-' if path == 'single' else size} | "
            f"{low:.2f}-{high:.2f} | {diffs[config]:.1e}{note} |"
        )


if __name__ == "__main__":
    main()
