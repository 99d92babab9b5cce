"""The full paper grid on the embedded model: projected time against this machine's limit.

The grid is the three datasets × persona and few-shot × the four methods over every main
group and question: 14,728 items. Running it takes hours, so a sample is run instead: the first
``--questions`` questions of each dataset for its first main group, every steering × method,
each cell with a fresh cache. Each cell's seconds per item are projected to the cell's size
in the grid. The limit is what the cell's tokens would take at this machine's best measured
rates: every distinct prompt's tokens at the best prefill rate, every generated token at the
best decode rate, of the local engines (llama.cpp as distalign runs it, transformers fp32),
measured on the grid's own prompts.

Also: ``--cached``: the whole grid rerun from a full cache (replies written once, not asked of
a model), which is only distalign's own work: building prompts, keys, reading, parsing,
scoring and writing the results.

    .venv/bin/python benchmarks/grid.py [--questions 2] [--cached] [--json out.json]

Compare versions side by side: run the script with ``PYTHONPATH=<old checkout>/src`` and
without, on the same machine, one after the other (``benchmarks/run.py`` does).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import distalign
from distalign.backends import get_backend
from distalign.datasets import load_dataset
from distalign.datasets.reference import main_groups
from distalign.methods import get_method
from distalign.runner import RunConfig, Runner, expand

DATASETS = ("opinionqa", "globalvalues", "nytimes")
STEERINGS = ("persona", "fewshot")
METHODS = ("logp", "sequence", "verbalize", "samples")


def grid_sizes() -> dict[str, int]:
    """Items per dataset for one steering × method: every main group × question with data."""
    sizes = {}
    for name in DATASETS:
        dataset = load_dataset(name)
        sizes[name] = sum(
            1
            for group in main_groups(dataset)
            for question in dataset.questions.values()
            if dataset.target(group, question.id) is not None
        )
    return sizes


def run_cell(dataset: str, steering: str, method: str, questions: int, out: Path) -> dict[str, Any]:
    """One cell of the sample, run twice: the second run, all cached, is the fixed cost
    (loading data and model, writing files), which the grid pays once, not per cell."""
    loaded = load_dataset(dataset)
    group = next(g for g in main_groups(loaded) if len(asked(loaded, g)) >= questions)
    config = RunConfig(
        models=["embedded"],
        datasets=[dataset],
        groups=[group.key],
        steerings=[steering],  # type: ignore[list-item]
        methods=[method],
        questions=asked(loaded, group)[questions - 1] + 1,
        out=str(out),
    )
    times = []
    for _ in range(2):
        start = time.perf_counter()
        frame = Runner(config).run()
        times.append(time.perf_counter() - start)
    return {
        "items": len(frame),
        "seconds": times[0],
        "cached_seconds": times[1],
        "cache": str(config.cache_path()),
    }


def asked(dataset: Any, group: Any) -> list[int]:
    """Positions of the questions that have a target for the group."""
    return [
        i
        for i, question in enumerate(dataset.questions.values())
        if dataset.target(group, question.id) is not None
    ]


def cell_tokens(cache: str, llama: Any) -> tuple[int, int]:
    """Prompt tokens of the distinct prompts, and generated tokens, of one cell's cache."""
    prompts: set[str] = set()
    decoded = 0
    with sqlite3.connect(cache) as db:
        for request_text, response_text in db.execute(
            "SELECT request, response FROM responses WHERE response IS NOT NULL"
        ):
            request, response = json.loads(request_text), json.loads(response_text)
            prompts.add(json.dumps(request["messages"]))
            call = request["call"]
            if call["op"] == "generate":
                if call.get("length"):
                    decoded += int(call["length"])
                else:  # the text's tokens and the end token
                    decoded += len(llama.llama.tokenize(response["text"].encode(), add_bos=False))
                    decoded += 1
    prefill = sum(len(llama.prompt_ids(json.loads(p))) for p in prompts)
    return prefill, decoded


def engine_rates(prompts: list[list[dict[str, str]]]) -> dict[str, dict[str, float]]:
    """Prefill and decode tokens/s of each local engine on these prompts (best of the runs)."""
    rates: dict[str, dict[str, float]] = {}
    with get_backend("embedded") as llama:
        prefill, decode = [], []
        for messages in prompts:
            ids = llama.prompt_ids(messages)
            llama.llama.reset()
            start = time.perf_counter()
            llama.llama.eval(ids)
            prefill.append(len(ids) / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(30):
                llama.llama.eval([ids[-1]])
            decode.append(30 / (time.perf_counter() - start))
        rates["llama.cpp " + str(llama.identity.quantization)] = {
            "prefill": max(prefill),
            "decode": max(decode),
        }
    try:
        rates["transformers fp32"] = torch_rates(prompts)
    except ImportError:
        pass
    return rates


def torch_rates(prompts: list[list[dict[str, str]]]) -> dict[str, float]:
    import torch

    prefill, decode = [], []
    with get_backend("hf:embedded") as hf, torch.inference_mode():
        model = hf.model  # type: ignore[attr-defined]
        for messages in prompts:
            ids = torch.tensor([hf.prompt_ids(messages)])  # type: ignore[attr-defined]
            start = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            prefill.append(ids.shape[1] / (time.perf_counter() - start))
            cache, token = out.cache, ids[:, -1:]
            start = time.perf_counter()
            for _ in range(30):
                # logits of the last position only, as the backend's decoding loop does
                cache = model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1).cache
            decode.append(30 / (time.perf_counter() - start))
    return {"prefill": max(prefill), "decode": max(decode)}


def projection(questions: int, work: Path) -> dict[str, Any]:
    sizes = grid_sizes()
    cells = []
    with get_backend("embedded") as llama:
        for dataset in DATASETS:
            for steering in STEERINGS:
                for method in METHODS:
                    out = work / f"{dataset}-{steering}-{method}"
                    cell = run_cell(dataset, steering, method, questions, out)
                    prefill, decoded = cell_tokens(cell["cache"], llama)
                    cell.update(
                        dataset=dataset,
                        steering=steering,
                        method=method,
                        grid_items=sizes[dataset],
                        prefill_tokens=prefill,
                        decode_tokens=decoded,
                    )
                    cells.append(cell)
                    print(
                        f"  {dataset:12} {steering:8} {method:9} {cell['items']} items "
                        f"{cell['seconds']:6.1f} s  prefill {prefill:6}  decode {decoded:5}",
                        file=sys.stderr,
                        flush=True,
                    )
    return {"cells": cells}


def fill_cache(config: RunConfig) -> int:
    """Write a plausible reply for every call of the grid (no model is asked), in one commit."""
    from distalign.store import ResponseCache

    runner = Runner(config)
    rows = []
    with get_backend("embedded") as backend:
        for item in expand(config, "embedded", backend):
            for call in item.method.calls(item.prompt, item.seed, 0):
                key, payload = runner_request(runner, backend, item, call)
                text = payload if isinstance(payload, str) else json.dumps(payload)
                reply = json.dumps(fake_reply(call, item.prompt.letters))
                rows.append((key, text, reply, None, time.time()))
    ResponseCache(config.cache_path()).close()  # creates the file with its schema
    with sqlite3.connect(config.cache_path()) as db:
        db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
    return len(rows)


def runner_request(runner: Runner, backend: Any, item: Any, call: Any) -> tuple[str, Any]:
    """The cache key and payload the runner uses for one call, in this version or the old one."""
    import distalign.runner as run_module
    from distalign.store import request_key

    if hasattr(run_module, "request_maker"):  # the engine
        made = run_module.request_maker(backend, runner.config.prompt_mode)
        request = made(item.prompt.messages, call)
        return request.key, request.payload
    payload = run_module.call_request(backend, item, call, runner.config.prompt_mode)  # type: ignore[attr-defined]
    return request_key(payload), payload


def fake_reply(call: Any, letters: list[str]) -> dict[str, Any]:
    as_json = call.as_json() if hasattr(call, "as_json") else call
    if as_json["op"] == "probs":
        return {"probs": {x: 1 / len(letters) for x in letters}, "covered_mass": 0.9}
    if as_json.get("length", 0) > 1:
        return {"text": (letters[0] + letters[-1]) * as_json["length"]}
    if "sample" in as_json or as_json.get("length") == 1:
        return {"text": letters[0]}
    return {"text": json.dumps({x: 1 / len(letters) for x in letters})}


def cached_rerun(work: Path, datasets: list[str]) -> dict[str, Any]:
    config = RunConfig(
        models=["embedded"],
        datasets=datasets,
        steerings=list(STEERINGS),  # type: ignore[arg-type]
        methods=list(METHODS),
        out=str(work / "cached"),
    )
    calls = fill_cache(config)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        frame = Runner(config).run()
        times.append(time.perf_counter() - start)
    return {"items": len(frame), "calls": calls, "seconds": min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--cached", action="store_true", help="time a cached grid rerun only")
    parser.add_argument("--rates", action="store_true", help="measure engine rates only")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="for --cached")
    args = parser.parse_args()
    result: dict[str, Any] = {"distalign": distalign.__file__}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.cached:
            result["cached"] = cached_rerun(work, args.datasets.split(","))
        elif args.rates:
            prompts = rate_prompts()
            result["rates"] = engine_rates(prompts)
        else:
            result.update(projection(args.questions, work))
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(text)


def rate_prompts() -> list[list[dict[str, str]]]:
    """A persona and a few-shot prompt of each dataset, as the grid renders them."""
    from distalign.steering import build_prompt

    prompts = []
    for name in DATASETS:
        dataset = load_dataset(name)
        group = main_groups(dataset)[0]
        question = next(iter(dataset.questions.values()))
        for steering in STEERINGS:
            prompt = build_prompt(dataset, question, group, steering, get_method("verbalize"))  # type: ignore[arg-type]
            prompts.append(prompt.messages)
    return prompts


if __name__ == "__main__":
    main()
