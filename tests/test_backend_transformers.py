"""The transformers backend with the real SmolLM2 GGUF on CPU, cross-checked against llama.cpp.

transformers dequantizes the same Q4_1 tensors that llama.cpp computes with directly, so the two
engines agree closely but not exactly. The model loads once per module (about 30 s on 2 cores).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from distalign.backends import UnsupportedMethodError, get_backend
from distalign.backends._hf_batches import in_order, plan_segments
from distalign.backends.base import (
    GenerateJob,
    Generation,
    Message,
    NextTokenProbs,
    ProbsJob,
    make_request,
)
from distalign.data import Group
from distalign.datasets import load_dataset
from distalign.methods import get_method
from distalign.steering import Prompt, build_prompt

torch = pytest.importorskip("torch", reason="needs pip install 'distalign[hf]'")
pytest.importorskip("transformers", reason="needs pip install 'distalign[hf]'")
pytest.importorskip("gguf", reason="needs pip install 'distalign[hf]'")
from distalign.backends.transformers_backend import TransformersBackend  # noqa: E402

# Measured on 8 OpinionQA Log-p prompts (none, persona and few-shot steering; 4 and 5 options;
# 36 letter probabilities): |ΔP| per renormalized letter probability max 0.027, mean 0.007; per
# raw token probability max 0.026, mean 0.004; covered mass max 0.041 (0.46 vs 0.50 on a few-shot
# prompt); prompt token ids identical. The shared notes saw 0.020. Tolerances: about twice that.
ENGINE_TOLERANCE = 0.05
MASS_TOLERANCE = 0.08
BATCH_TOLERANCE = 1e-5  # measured 1.7e-6: padding and batching change only float rounding
GROUPS = [Group("POLPARTY", "Democrat"), Group("POLPARTY", "Republican")]


@pytest.fixture(scope="module")
def hf() -> Iterator[TransformersBackend]:
    torch.set_num_threads(1)  # 2 cores shared with other jobs
    start = time.perf_counter()
    backend = get_backend("hf:embedded")
    print(f"transformers load: {time.perf_counter() - start:.1f} s")
    assert isinstance(backend, TransformersBackend)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def prompts(reference_dir: Path) -> list[Prompt]:
    """Four real Log-p prompts with four options and different lengths."""
    dataset = load_dataset("opinionqa", reference_dir)
    questions = [q for q in dataset.questions.values() if len(q.options) == 4][:2]
    built = [
        build_prompt(dataset, q, g, "persona", get_method("logp"))
        for q in questions
        for g in GROUPS
    ]
    assert len(built) == 4 and all(p.letters == built[0].letters for p in built)
    return built


def test_logp_agrees_with_llama_cpp_on_the_same_prompts(
    hf: TransformersBackend, prompts: list[Prompt]
) -> None:
    pytest.importorskip("llama_cpp", reason="needs pip install 'distalign[local]'")
    # the shipped Q4_1 file, the one transformers dequantizes (not the default Q8_0 copy)
    shipped = {"quantization": "shipped", "n_threads": 1, "n_threads_batch": 1}
    with get_backend("embedded", **shipped) as llama:
        for prompt in prompts[:3]:
            assert hf.prompt_ids(prompt.messages) == llama.prompt_ids(prompt.messages)  # type: ignore[attr-defined]
            ours = hf.next_token_probs(prompt.messages, prompt.letters)
            theirs = llama.next_token_probs(prompt.messages, prompt.letters)
            assert ours.token_probs.keys() == theirs.token_probs.keys()
            for letter in prompt.letters:
                assert ours.probs[letter] == pytest.approx(
                    theirs.probs[letter], abs=ENGINE_TOLERANCE
                )
            assert ours.covered_mass == pytest.approx(theirs.covered_mass, abs=MASS_TOLERANCE)
        assert hf.identity.fingerprint == llama.identity.fingerprint  # the same file
        assert hf.identity.chat_template_sha256 == llama.identity.chat_template_sha256


def test_batched_logp_equals_single_prompt_logp(
    hf: TransformersBackend, prompts: list[Prompt]
) -> None:
    lengths = {len(hf.prompt_ids(p.messages)) for p in prompts}
    assert len(lengths) > 1  # so the batch really is padded
    letters = prompts[0].letters
    start = time.perf_counter()
    batched = hf.next_token_probs_batch([p.messages for p in prompts], letters)
    print(f"batched Log-p: {(time.perf_counter() - start) / len(prompts):.2f} s per prompt")
    start = time.perf_counter()
    single = [hf.next_token_probs(p.messages, letters) for p in prompts]
    print(f"single Log-p: {(time.perf_counter() - start) / len(prompts):.2f} s per prompt")
    for one, many in zip(single, batched, strict=True):
        assert sum(many.probs.values()) == pytest.approx(1.0, abs=1e-12)
        assert 0.3 < many.covered_mass <= 1.0
        for token, p in one.token_probs.items():
            assert many.token_probs[token] == pytest.approx(p, abs=BATCH_TOLERANCE)
    # the prompts differ, so their answers do too: results are not mixed up between rows
    assert single[0].token_probs != single[2].token_probs


def test_letter_sequences_have_exactly_n_allowed_letters_and_follow_the_seed(
    hf: TransformersBackend, prompts: list[Prompt]
) -> None:
    messages, letters = prompts[0].messages, ["A", "B", "C"]
    first = hf.generate(messages, letters=letters, length=12, seed=7, n=2)
    again = hf.generate(messages, letters=letters, length=12, seed=7, n=2)
    other = hf.generate(messages, letters=letters, length=12, seed=8, n=2)
    assert first == again
    assert first != other
    for text in first + other:
        assert len(text) == 12 and set(text) <= set(letters)


def test_free_text_is_reproducible_under_a_seed_and_stops_at_stop_strings(
    hf: TransformersBackend,
) -> None:
    messages = [{"role": "user", "content": "Write one sentence about cats."}]
    first = hf.generate(messages, max_tokens=6, seed=3, n=2)
    assert first == hf.generate(messages, max_tokens=6, seed=3, n=2)
    greedy = hf.generate(messages, max_tokens=8, temperature=0.0)[0]
    words = greedy.split()
    assert len(words) >= 3
    stop = " " + words[1]
    stopped = hf.generate(messages, max_tokens=8, temperature=0.0, stop=[stop])
    assert stopped == [greedy.split(stop, 1)[0]]


def test_json_schema_is_refused_before_any_model_work(hf: TransformersBackend) -> None:
    with pytest.raises(UnsupportedMethodError, match="json_schema"):
        hf.generate([{"role": "user", "content": "hi"}], json_schema={"type": "object"})


def test_identity_names_engine_versions_dtype_and_device(hf: TransformersBackend) -> None:
    identity = hf.identity
    assert identity.backend == "transformers"
    assert identity.fingerprint is not None and identity.fingerprint.startswith("sha256:")
    assert identity.quantization == "float32"
    assert identity.runtime is not None
    assert f"torch {torch.__version__}" in identity.runtime and "cpu" in identity.runtime


def test_spec_errors_are_reported_before_loading(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="GGUF model file not found"):
        get_backend(f"hf:gguf:{tmp_path / 'missing.gguf'}")
    with pytest.raises(ValueError, match="needs a model"):
        get_backend("hf:")
    with pytest.raises(ValueError, match="dtype"):
        get_backend("hf:embedded", dtype="int3")


def test_missing_torch_gives_an_import_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.delitem(sys.modules, "distalign.backends.transformers_backend")
    with pytest.raises(ImportError, match=r"pip install 'distalign\[hf\]'"):
        importlib.import_module("distalign.backends.transformers_backend")


# ----- batches: prefix reuse and batched generation ------------------------------------------

PREFIX_TOLERANCE = 1e-4  # measured 4.4e-6 on persona, few-shot and plain prompts


@pytest.fixture(scope="module")
def mixed_prompts(reference_dir: Path) -> list[Prompt]:
    """Real Log-p prompts of every steering, two groups, and 4- and 5-option questions."""
    dataset = load_dataset("opinionqa", reference_dir)
    four = [q for q in dataset.questions.values() if len(q.options) == 4][:2]
    five = [q for q in dataset.questions.values() if len(q.options) == 5][:1]
    logp = get_method("logp")
    built = [build_prompt(dataset, q, g, "persona", logp) for q in four + five for g in GROUPS]
    built += [build_prompt(dataset, q, GROUPS[0], "fewshot", logp) for q in four]
    built += [build_prompt(dataset, q, None, "none", logp) for q in four]
    return built


class PrefillSpy:
    """Records the (rows, shared prefix) of every batched forward pass of a real backend."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from distalign.backends._hf_forward import Forward

        self.calls: list[tuple[int, int]] = []
        real = Forward.prefill

        def prefill(
            forward: Forward, prompts: list[list[int]], prefix: int, keep_cache: bool
        ) -> object:
            self.calls.append((len(prompts), prefix))
            return real(forward, prompts, prefix, keep_cache)

        monkeypatch.setattr(Forward, "prefill", prefill)


def test_prefix_reuse_gives_the_one_at_a_time_probabilities(
    hf: TransformersBackend, mixed_prompts: list[Prompt], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [ProbsJob(p.messages, tuple(p.letters)) for p in mixed_prompts]
    single = [hf.next_token_probs(j.messages, j.candidates) for j in jobs]
    spy = PrefillSpy(monkeypatch)
    monkeypatch.setattr(hf, "batch_size", 8)
    many = list(hf.next_token_probs_many(jobs))
    # the prompts of one steering and group share hundreds of tokens, run once per segment
    assert max(prefix for _, prefix in spy.calls) > 200
    assert sum(rows for rows, _ in spy.calls) == len(jobs) and len(spy.calls) < len(jobs)
    worst = 0.0
    for one, batched in zip(single, many, strict=True):
        assert isinstance(batched, NextTokenProbs)
        assert batched.probs.keys() == one.probs.keys()
        for token, p in one.token_probs.items():
            worst = max(worst, abs(batched.token_probs[token] - p))
        assert batched.covered_mass == pytest.approx(one.covered_mass, abs=PREFIX_TOLERANCE)
    assert worst <= PREFIX_TOLERANCE
    print(f"prefix reuse vs one at a time: max |dp| {worst:.1e}")


def test_a_batch_of_mixed_jobs_gives_each_job_its_own_result_or_error(
    hf: TransformersBackend, mixed_prompts: list[Prompt], monkeypatch: pytest.MonkeyPatch
) -> None:
    persona = mixed_prompts[0]
    jobs = [
        ProbsJob(persona.messages, ("A", "B")),  # candidates differ from the job after
        ProbsJob(persona.messages, tuple(persona.letters)),
        ProbsJob(persona.messages, ()),
        ProbsJob([{"role": "robot", "content": "hi"}], ("A",)),
        ProbsJob(mixed_prompts[1].messages, ("A", "A")),
        ProbsJob(mixed_prompts[1].messages, ("A", "C")),
    ]
    spy = PrefillSpy(monkeypatch)
    results = list(hf.next_token_probs_many(jobs))
    assert [rows for rows, _ in spy.calls] == [2]  # two distinct valid prompts, one pass
    assert len(results) == len(jobs)
    for index in (2, 3, 4):
        assert isinstance(results[index], ValueError)
    for index in (0, 1, 5):
        result, job = results[index], jobs[index]
        assert isinstance(result, NextTokenProbs)
        assert tuple(result.probs) == job.candidates
        alone = hf.next_token_probs(job.messages, job.candidates)
        assert result.probs == pytest.approx(alone.probs, abs=PREFIX_TOLERANCE)


def _job(messages: Sequence[Message], **arguments: Any) -> GenerateJob:
    request = make_request(
        arguments.get("max_tokens"),
        arguments.get("temperature", 1.0),
        arguments.get("seed"),
        arguments.get("n", 1),
        None,
        arguments.get("letters"),
        arguments.get("length"),
        arguments.get("stop"),
    )
    return GenerateJob(messages, request)


def test_a_seeded_job_draws_the_same_alone_and_in_a_batch(
    hf: TransformersBackend, mixed_prompts: list[Prompt], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = PrefillSpy(monkeypatch)
    # four different prompts (persona for two groups, plain), as the engine would batch them
    messages = [mixed_prompts[i].messages for i in (0, 3, 8, 9)]
    letters = ("A", "B", "C", "D")
    for seed in (0, 1, 2):
        jobs = [
            _job(m, letters=letters, length=8, seed=seed + 10 * i) for i, m in enumerate(messages)
        ]
        jobs.append(_job(messages[0], letters=letters, length=5, seed=seed, n=3))
        alone = [hf.generate_job(job).texts for job in jobs]
        spy.calls.clear()
        batched = [r.texts for r in hf.generate_many(jobs)]  # type: ignore[union-attr]
        assert [rows for rows, _ in spy.calls] == [4]  # the distinct prompts, decoded together
        assert batched == alone
        assert len({text for texts in alone for text in texts}) > 3  # the seeds differ
    chat = [{"role": "user", "content": "Write one sentence about cats."}]
    for seed in (3, 4):
        jobs = [_job(m, max_tokens=6, seed=seed + i) for i, m in enumerate(messages[:3])]
        jobs.append(_job(chat, max_tokens=10, seed=seed, stop=["."]))  # stops on its own
        alone = [hf.generate_job(job).texts for job in jobs]
        spy.calls.clear()
        assert [r.texts for r in hf.generate_many(jobs)] == alone  # type: ignore[union-attr]
        assert [rows for rows, _ in spy.calls] == [4]
        assert "." not in alone[-1][0]


def test_generate_many_yields_each_bad_job_its_error(
    hf: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = [{"role": "user", "content": "Say hi."}]
    jobs = [
        _job(chat, max_tokens=3, seed=1),
        _job(chat, max_tokens=100_000, seed=1),  # more than the model's context
        _job([{"role": "user", "content": 3}], max_tokens=3),  # type: ignore[dict-item]
        _job(chat, letters=("A", "B"), length=2, seed=2),
    ]
    spy = PrefillSpy(monkeypatch)
    results = list(hf.generate_many(jobs))
    assert spy.calls == [(1, 0)]  # the good jobs share their prompt: it ran once
    assert isinstance(results[1], ValueError) and "context" in str(results[1])
    assert isinstance(results[2], ValueError)
    assert results[0] == Generation(hf.generate_job(jobs[0]).texts)
    assert results[3] == Generation(hf.generate_job(jobs[3]).texts)


def test_batches_and_generation_warn_about_nothing(
    hf: TransformersBackend, mixed_prompts: list[Prompt]
) -> None:
    import logging
    import warnings

    import transformers

    records: list[logging.LogRecord] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Recorder()
    logger = transformers.logging.get_logger()
    logger.addHandler(handler)
    logging.Logger.warning_once.cache_clear()  # type: ignore[attr-defined]  # transformers' once
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            jobs = [ProbsJob(p.messages, tuple(p.letters)) for p in mixed_prompts[:3]]
            list(hf.next_token_probs_many(jobs))
            messages = [p.messages for p in mixed_prompts[:2]]
            list(hf.generate_many([_job(m, max_tokens=3, seed=0) for m in messages]))
    finally:
        logger.removeHandler(handler)
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []


SHARED = [1] * 50  # e.g. a persona and format examples


@pytest.mark.parametrize(
    ("prompts", "size", "expected"),
    [
        # two runs, adjacent once sorted: one segment per run, its shared start run once
        ([SHARED + [6], [9] * 50 + [8], SHARED + [7], [9] * 50 + [7]], 4,
         [((0, 2), 50), ((3, 1), 50)]),
        # nothing shared: the rows run in full together
        ([[1, 2], [3, 4], [5, 6]], 4, [((0, 1, 2), 0)]),
        # the batch size caps a segment
        ([SHARED + [i] for i in range(4)], 2, [((0, 1), 50), ((2, 3), 50)]),
        # a short shared start is not worth a forward pass of its own
        ([[1, 2, 3], [1, 2, 4]], 4, [((0, 1), 0)]),
    ],
)  # fmt: skip
def test_segments_cut_at_shared_prefixes(
    prompts: list[list[int]], size: int, expected: list[tuple[tuple[int, ...], int]]
) -> None:
    segments = plan_segments(prompts, size, reuse=True)
    assert [(s.rows, s.prefix) for s in segments] == expected


def test_without_gaps_a_prefix_is_shared_only_by_equal_lengths() -> None:
    # sliding-window models: padding between the prefix and a shorter ending is not allowed
    prompts = [[1] * 40 + [2], [1] * 40 + [3, 4]]
    assert plan_segments(prompts, 4, reuse=True)[0].prefix == 40
    assert plan_segments(prompts, 4, reuse=True, gaps_allowed=False)[0].prefix == 0
    equal = [[1] * 40 + [2], [1] * 40 + [3]]
    assert plan_segments(equal, 4, reuse=True, gaps_allowed=False)[0].prefix == 40


def test_in_order_yields_each_result_once_all_before_it_are_known() -> None:
    arrivals = iter([(2, "c"), (0, "a"), (1, "b"), (3, "d")])
    assert list(in_order(arrivals)) == ["a", "b", "c", "d"]
    with pytest.raises(RuntimeError, match="missing"):
        list(in_order(iter([(1, "b")])))


def test_a_gguf_model_is_dequantized_once_and_then_loaded_from_its_saved_copy(
    hf: TransformersBackend, prompts: list[Prompt], monkeypatch: pytest.MonkeyPatch
) -> None:
    from distalign.backends import _hf_model

    copy = _hf_model.dequantized_copy(hf.source.gguf_path, torch.float32)  # type: ignore[arg-type]
    assert (copy / "config.json").is_file()  # the first load (the fixture's, or earlier) saved it
    loads: list[dict[str, Any]] = []
    real = _hf_model.AutoModelForCausalLM.from_pretrained

    def spy(location: str, **options: Any) -> Any:
        loads.append({"location": location, **options})
        return real(location, **options)

    monkeypatch.setattr(_hf_model.AutoModelForCausalLM, "from_pretrained", spy)
    with get_backend("hf:embedded") as again:
        assert [load["location"] for load in loads] == [str(copy)]
        assert "gguf_file" not in loads[0]
        assert again.identity == hf.identity  # still named by the GGUF file and its SHA-256
        for prompt in prompts[:2]:
            assert again.prompt_ids(prompt.messages) == hf.prompt_ids(prompt.messages)  # type: ignore[attr-defined]
            assert again.render(prompt.messages) == hf.render(prompt.messages)  # type: ignore[attr-defined]
            ours = again.next_token_probs(prompt.messages, prompt.letters).probs
            theirs = hf.next_token_probs(prompt.messages, prompt.letters).probs
            assert ours == pytest.approx(theirs, abs=BATCH_TOLERANCE)  # measured 4e-7
