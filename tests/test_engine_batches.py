"""A real run through the engine hands the transformers backend batches, with prefix reuse.

The backend is real (``hf:embedded``, SmolLM2 on CPU); its batch entry point and forward pass
are wrapped to record what they were given, not replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distalign.runner import RunConfig, Runner

torch = pytest.importorskip("torch", reason="needs pip install 'distalign[hf]'")
pytest.importorskip("transformers", reason="needs pip install 'distalign[hf]'")
pytest.importorskip("gguf", reason="needs pip install 'distalign[hf]'")
from distalign.backends._hf_forward import Forward  # noqa: E402
from distalign.backends.transformers_backend import TransformersBackend  # noqa: E402

TOLERANCE = 1e-4  # batching and prefix reuse change float rounding only


def _config(tmp_path: Path, reference_dir: Path, name: str, **options: Any) -> RunConfig:
    settings: dict[str, Any] = {
        "models": ["hf:embedded"],
        "datasets": ["opinionqa"],
        "groups": ["POLPARTY=Democrat", "POLPARTY=Republican"],
        "steerings": ["persona"],
        "methods": ["logp"],
        "questions": 4,
        "data_dir": str(reference_dir),
        "out": str(tmp_path / name),
        "backend_options": options,
    }
    return RunConfig(**settings)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Batch sizes given to ``next_token_probs_many`` and shared prefixes of forward passes."""
    seen: dict[str, list[int]] = {"batches": [], "prefixes": []}
    many = TransformersBackend.next_token_probs_many
    prefill = Forward.prefill

    def spy_many(backend: TransformersBackend, jobs: Any) -> Any:
        seen["batches"].append(len(jobs))
        return many(backend, jobs)

    def spy_prefill(forward: Forward, prompts: Any, prefix: int, keep_cache: bool) -> Any:
        seen["prefixes"].append(prefix)
        return prefill(forward, prompts, prefix, keep_cache)

    monkeypatch.setattr(TransformersBackend, "next_token_probs_many", spy_many)
    monkeypatch.setattr(Forward, "prefill", spy_prefill)
    torch.set_num_threads(1)  # 2 cores shared with other jobs
    return seen


def test_a_logp_run_sends_batches_that_reuse_prefixes_and_match_single_calls(
    tmp_path: Path, reference_dir: Path, spy: dict[str, list[int]]
) -> None:
    batched = Runner(_config(tmp_path, reference_dir, "batched")).run()
    assert spy["batches"] == [8]  # 2 groups x 4 questions, in one batch (batch_size 16)
    assert max(spy["prefixes"]) > 200  # each group's persona and examples ran once
    spy["batches"].clear()
    spy["prefixes"].clear()
    single = Runner(_config(tmp_path, reference_dir, "single", batch_size=1)).run()
    assert spy["batches"] == [1] * 8
    assert spy["prefixes"] == [0] * 8

    assert len(batched) == len(single) == 8
    assert set(batched["status"]) == set(single["status"]) == {"ok"}
    key = ["group", "question_id"]
    both = batched.merge(single, on=key, suffixes=("_batched", "_single"))
    assert len(both) == 8
    for row in both.itertuples():
        assert row.pred_batched == pytest.approx(row.pred_single, abs=TOLERANCE)
        assert row.covered_mass_batched == pytest.approx(row.covered_mass_single, abs=TOLERANCE)
    # the rows differ, so a mix-up of rows within a batch would show
    assert len({tuple(p) for p in single["pred"]}) == 8
