"""Throughput of distalign on the embedded model, and the harness overhead over llama.cpp.

For each method (logp, verbalize, sequence, samples) a small real grid (OpinionQA, one group,
persona steering, the first few questions) is timed three ways on the same model object:

* ``runner``: ``distalign.runner.Runner`` end to end with a fresh temporary cache: dataset
  loading, prompt building, cache keys, SQLite writes, parsing, scoring and the saved files.
* ``backend``: the exact calls the runner sent (read back from its cache, in the order it sent
  them) made on the backend object directly (``next_token_probs`` / ``generate``).
* ``llama.cpp``: the same calls as raw ``llama_cpp.Llama`` work on the same token ids:
  tokenize, evaluate (with the same KV-prefix reuse the backend does), read the logits and
  sample; JSON output via ``create_completion`` with the same grammar and seed.

The model is loaded once, outside all timings, and the KV cache is cleared before each
timing. The prompts are rendered with the chat template outside the llama.cpp timing.

    .venv/bin/python benchmarks/throughput.py [--data-dir DIR] [--questions 10] [--n 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

import distalign.runner
from distalign.backends import get_backend
from distalign.backends.llamacpp import LlamaCppBackend, common_prefix_length, log_softmax
from distalign.runner import RunConfig, Runner

try:
    import llama_cpp
    import llama_cpp.llama_cpp as llama_c
except ImportError:  # pragma: no cover
    sys.exit("this benchmark needs llama-cpp-python: pip install 'distalign[local]'")

METHODS = ("logp", "verbalize", "sequence", "samples")
REPO_ROOT = Path(__file__).resolve().parents[1]

Call = dict[str, Any]
Messages = list[dict[str, str]]


@dataclass
class Timing:
    method: str
    path: str
    items: int
    calls: int
    seconds: float
    same: int | None = None  # replayed outputs equal to the runner's


def data_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    from_env = os.environ.get("DISTALIGN_DATA", "").strip()
    return Path(from_env) if from_env else REPO_ROOT.parent / "shared" / "data" / "reference"


def clear_kv(backend: LlamaCppBackend) -> None:
    """Start every timing from an empty KV cache, so no path profits from the previous one."""
    backend.llama.reset()
    backend.llama._ctx.kv_cache_seq_rm(-1, 0, -1)


@contextmanager
def runner_uses(backend: LlamaCppBackend) -> Iterator[None]:
    """Let the Runner use the already loaded model, and keep it open when the run ends."""
    setattr(backend, "close", lambda: None)  # noqa: B010 - an instance attribute shadows close
    try:
        with mock.patch.object(distalign.runner, "get_backend", lambda spec: backend):
            yield
    finally:
        delattr(backend, "close")


def time_runner(
    backend: LlamaCppBackend, method: str, args: argparse.Namespace, out: Path
) -> tuple[Timing, list[tuple[Messages, Call, Any]]]:
    settings: dict[str, Any] = {
        "datasets": ["opinionqa"],
        "groups": ["POLPARTY=Democrat"],
        "steerings": ["persona"],
        "methods": [method],
        "questions": args.questions,
        "n": args.n,
        "data_dir": str(data_dir(args.data_dir)),
        "out": str(out),
    }
    config = RunConfig(**settings)
    clear_kv(backend)
    runner = Runner(config)
    with runner_uses(backend):
        start = time.perf_counter()
        frame = runner.run()
        seconds = time.perf_counter() - start
    sent = sent_calls(config.cache_path())
    return Timing(method, "runner", len(frame), len(sent), seconds), sent


def sent_calls(cache_path: Path) -> list[tuple[Messages, Call, Any]]:
    """(messages, call, response) of every successful request, in the order it was sent."""
    with sqlite3.connect(cache_path) as db:
        rows = db.execute(
            "SELECT request, response FROM responses WHERE error IS NULL ORDER BY rowid"
        ).fetchall()
    return [(json.loads(r)["messages"], json.loads(r)["call"], json.loads(s)) for r, s in rows]


# ----- (b) the backend directly -------------------------------------------------------------


def backend_call(backend: LlamaCppBackend, messages: Messages, call: Call) -> Any:
    if call["op"] == "probs":
        return backend.next_token_probs(messages, call["candidates"]).probs
    (text,) = backend.generate(
        messages,
        temperature=call["temperature"],
        seed=call["seed"],
        json_schema=call.get("json_schema"),
        letters=call.get("letters"),
        length=call.get("length"),
        max_tokens=call.get("max_tokens"),
    )
    return text


# ----- (c) raw llama.cpp --------------------------------------------------------------------


class RawLlama:
    """The backend's work written against ``llama_cpp.Llama`` alone."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self.llm = llm
        self.token_ids: dict[str, list[int]] = {}

    def variants(self, letter: str) -> list[int]:
        """Token ids of "L" and " L" that are single tokens (as the backend counts them)."""
        if letter not in self.token_ids:
            found = []
            for text in (letter, " " + letter):
                ids = self.llm.tokenize(text.encode(), add_bos=False, special=False)
                if len(ids) == 1 and ids[0] not in found:
                    found.append(ids[0])
            self.token_ids[letter] = found
        return self.token_ids[letter]

    def tokenize(self, prompt: str) -> list[int]:
        return self.llm.tokenize(prompt.encode(), add_bos=True, special=True)

    def eval_prompt(self, ids: list[int]) -> None:
        cached = self.llm.input_ids[: self.llm.n_tokens]
        keep = min(common_prefix_length(cached, ids), len(ids) - 1)
        self.llm._ctx.kv_cache_seq_rm(-1, keep, -1)
        self.llm.n_tokens = keep
        self.llm.eval(ids[keep:])

    def logits(self) -> np.ndarray:
        pointer = llama_c.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),))

    def probs(self, prompt: str, letters: Sequence[str]) -> dict[str, float]:
        self.eval_prompt(self.tokenize(prompt))
        logprobs = log_softmax(self.logits())
        mass = {letter: float(np.exp(logprobs[self.variants(letter)]).sum()) for letter in letters}
        total = sum(mass.values())
        return {letter: p / total for letter, p in mass.items()}

    def letters(self, prompt: str, letters: Sequence[str], length: int, seed: int) -> str:
        ids = [t for letter in letters for t in self.variants(letter)]
        owner = [letter for letter in letters for _ in self.variants(letter)]
        rng = np.random.default_rng(seed)
        self.eval_prompt(self.tokenize(prompt))
        drawn = []
        for position in range(length):
            logits = self.logits()[ids].astype(np.float64)
            probs = np.exp(logits - logits.max())
            choice = int(rng.choice(len(ids), p=probs / probs.sum()))
            drawn.append(owner[choice])
            if position < length - 1:
                self.llm.eval([ids[choice]])
        return "".join(drawn)

    def json(self, prompt: str, schema: dict[str, Any], max_tokens: int, seed: int) -> str:
        grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        # the backend turns a call seed into llama.cpp's seed this way
        llama_seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) % 0xFFFFFFFF
        output: Any = self.llm.create_completion(
            prompt=self.tokenize(prompt),  # create_completion reuses the cached prefix itself
            max_tokens=max_tokens,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            seed=llama_seed,
            grammar=grammar,
        )
        return str(output["choices"][0]["text"])

    def call(self, prompt: str, call: Call) -> Any:
        if call["op"] == "probs":
            return self.probs(prompt, call["candidates"])
        if call.get("json_schema") is not None:
            return self.json(prompt, call["json_schema"], call["max_tokens"], call["seed"])
        return self.letters(prompt, call["letters"], call["length"], call["seed"])


# ----- timing and report --------------------------------------------------------------------


def replay(
    method: str,
    path: str,
    items: int,
    sent: list[tuple[Messages, Call, Any]],
    run: Callable[[int], Any],
) -> Timing:
    start = time.perf_counter()
    outputs = [run(index) for index in range(len(sent))]
    seconds = time.perf_counter() - start
    same = sum(
        _same(output, response) for output, (_, _, response) in zip(outputs, sent, strict=True)
    )
    return Timing(method, path, items, len(sent), seconds, same)


def _same(output: Any, response: dict[str, Any]) -> bool:
    if isinstance(output, dict):
        return all(abs(output[k] - response["probs"][k]) < 1e-9 for k in output)
    return bool(output == response["text"])


def time_method(backend: LlamaCppBackend, method: str, args: argparse.Namespace) -> list[Timing]:
    """The three paths, ``--rounds`` times in turn; each path keeps its fastest round."""
    best: dict[str, Timing] = {}
    for _ in range(args.rounds):
        for timing in one_round(backend, method, args):
            if timing.path not in best or timing.seconds < best[timing.path].seconds:
                best[timing.path] = timing
    return list(best.values())


def one_round(backend: LlamaCppBackend, method: str, args: argparse.Namespace) -> list[Timing]:
    with tempfile.TemporaryDirectory() as tmp:
        runner, sent = time_runner(backend, method, args, Path(tmp) / "run")
    prompts = [backend.render(messages) for messages, _, _ in sent]
    raw = RawLlama(backend.llama)
    for prompt, (messages, _, _) in zip(prompts, sent, strict=True):  # same token ids on both paths
        assert raw.tokenize(prompt) == backend.prompt_ids(messages)
    clear_kv(backend)
    direct = replay(
        method, "backend", runner.items, sent, lambda i: backend_call(backend, *sent[i][:2])
    )
    clear_kv(backend)
    llama = replay(
        method, "llama.cpp", runner.items, sent, lambda i: raw.call(prompts[i], sent[i][1])
    )
    return [runner, direct, llama]


def print_table(timings: list[Timing]) -> None:
    header = (
        f"{'method':<10} {'path':<10} {'items':>5} {'calls':>5} {'seconds':>8} {'items/s':>8} "
        f"{'calls/s':>8} {'vs backend':>10} {'vs llama.cpp':>12} {'same out':>9}"
    )
    print(header)
    print("-" * len(header))
    for timing in timings:
        group = {t.path: t.seconds for t in timings if t.method == timing.method}
        same = "" if timing.same is None else f"{timing.same}/{timing.calls}"
        print(
            f"{timing.method:<10} {timing.path:<10} {timing.items:>5} {timing.calls:>5} "
            f"{timing.seconds:>8.2f} {timing.items / timing.seconds:>8.2f} "
            f"{timing.calls / timing.seconds:>8.1f} "
            f"{_overhead(timing.seconds, group['backend']):>10} "
            f"{_overhead(timing.seconds, group['llama.cpp']):>12} {same:>9}"
        )


def over_raw(timings: list[Timing]) -> dict[str, dict[str, float]]:
    """Per method: seconds of the backend and runner paths over the raw llama.cpp loop's."""
    raw = {t.method: t.seconds for t in timings if t.path == "llama.cpp"}
    figures: dict[str, dict[str, float]] = {}
    for t in timings:
        if t.path != "llama.cpp":
            figures.setdefault(t.method, {})[t.path] = t.seconds / raw[t.method]
    return figures


def _overhead(seconds: float, reference: float) -> str:
    return f"{(seconds / reference - 1) * 100:+.1f}%"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="reference data; default $DISTALIGN_DATA or ../shared")
    parser.add_argument("--questions", type=int, default=10, help="OpinionQA questions")
    parser.add_argument("--n", type=int, default=30, help="letters per Sequence / Samples item")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="repeat; keep the fastest")
    parser.add_argument("--json", help="also write each path's time over llama.cpp's here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    backend = get_backend("embedded")
    assert isinstance(backend, LlamaCppBackend)
    print(
        f"model load {time.perf_counter() - start:.2f} s; {backend.identity.runtime}; "
        f"{len(os.sched_getaffinity(0))} cores; threads decode/batch "
        f"{backend.llama.n_threads}/{backend.llama.n_threads_batch}\n"
    )
    timings = []
    for method in args.methods.split(","):
        timings += time_method(backend, method.strip(), args)
    backend.close()
    print_table(timings)
    if args.json:
        Path(args.json).write_text(json.dumps({"throughput": over_raw(timings)}))
    print(
        "\nitems: grid cells (questions x 1 group); calls: model requests (a Samples item is n"
        " calls; failed parses add retries).\nvs backend / vs llama.cpp: extra time over those"
        " paths. same out: replayed outputs identical to the runner's."
    )


if __name__ == "__main__":
    main()
