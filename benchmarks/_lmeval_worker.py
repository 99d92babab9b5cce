"""lm-evaluation-harness side of ``logp_vs_lmeval.py``; runs with the lm-eval venv's python.

    python _lmeval_worker.py JOB.json RESULT.json

JOB.json: ``{"model": FOLDER, "batch_size": B, "items": [{"context": TEXT, "letters": [...]}]}``
with each context the exact prompt text distalign renders. For every letter L two loglikelihood
requests are made, continuations "L" and " L" (distalign counts both tokens), so an item with K
options is 2K requests. ``lm.loglikelihood`` runs them all in one call, which is what lm-eval
does for a multiple-choice task; that call alone is the scoring time.

RESULT.json: the phase timings, the torch thread count, each item's probabilities in the way
distalign computes them (p(L) = p("L") + p(" L"), renormalised over the letters), and, for the
check that both sides score the same tokens, the ids lm-eval feeds the model for the first
request of each item and its continuation ids for the first item. Nothing here imports distalign.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    items = job["items"]

    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    imported = time.perf_counter()
    lm = HFLM(pretrained=job["model"], dtype="float32", device="cpu", batch_size=job["batch_size"])
    loaded = time.perf_counter()

    pairs = [
        (item["context"], variant)
        for item in items
        for letter in item["letters"]
        for variant in (letter, " " + letter)
    ]
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=k)
        for k, pair in enumerate(pairs)
    ]
    start = time.perf_counter()
    results = lm.loglikelihood(requests, disable_tqdm=True)
    scored = time.perf_counter()

    loglikelihoods = [float(loglikelihood) for loglikelihood, _ in results]
    probs = letter_probs(items, loglikelihoods)
    finished = time.perf_counter()

    Path(sys.argv[2]).write_text(
        json.dumps(
            {
                "seconds": {
                    "import": imported - STARTED,
                    "load": loaded - imported,
                    "scoring": scored - start,
                    "after_start": finished - STARTED,
                },
                "torch_threads": torch.get_num_threads(),
                "requests": len(requests),
                "probs": probs,
                "input_ids": [model_input(lm, item) for item in items],
                "continuation_ids": continuation_ids(lm, items[0]),
            }
        )
    )


def letter_probs(items: list[dict], loglikelihoods: list[float]) -> list[dict[str, float]]:
    """Per item, p(L) = exp(ll("L")) + exp(ll(" L")), renormalised over the item's letters."""
    probs = []
    position = 0
    for item in items:
        mass = {}
        for letter in item["letters"]:
            pair = loglikelihoods[position : position + 2]
            mass[letter] = math.exp(pair[0]) + math.exp(pair[1])
            position += 2
        total = sum(mass.values())
        probs.append({letter: p / total for letter, p in mass.items()})
    return probs


def model_input(lm, item: dict) -> list[int]:
    """The token ids lm-eval runs the model on for the item's first request."""
    context, continuation = lm._encode_pair(item["context"], item["letters"][0])
    return (context + continuation)[:-1]


def continuation_ids(lm, item: dict) -> dict[str, list[int]]:
    letter = item["letters"][0]
    return {text: lm._encode_pair(item["context"], text)[1] for text in (letter, " " + letter)}


if __name__ == "__main__":
    main()
