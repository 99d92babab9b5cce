"""Shared test fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same cases on every run, so CI's verdict depends on the commit alone.
# HYPOTHESIS_PROFILE=explore draws fresh random cases (a local hunt for new counterexamples).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # The embedded model's Q8_0 copy is made in a folder of this test session, never in ~/.cache
    # (CLI subprocesses inherit the variable).
    if not os.environ.get("DISTALIGN_MODEL_CACHE"):
        os.environ["DISTALIGN_MODEL_CACHE"] = _MADE[0] = tempfile.mkdtemp(
            prefix="distalign-models-"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    # the model copies (about 150 MB for Q8_0, 520 MB dequantized for hf:) go with the session
    if _MADE[0]:
        shutil.rmtree(_MADE[0], ignore_errors=True)


_MADE: list[str] = [""]  # the folder this session made, if it made one


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The paper's reference data: $DISTALIGN_DATA, else ../shared/data/reference.

    Missing data is a failure, not a skip: these tests are the only check of the loaders.
    """
    from_env = os.environ.get("DISTALIGN_DATA", "").strip()
    path = Path(from_env) if from_env else REPO_ROOT.parent / "shared" / "data" / "reference"
    marker = path / "opinions_qa" / "data" / "human_resp"
    if not marker.is_dir():
        pytest.fail(
            f"reference data not found at {path} (looked for {marker}). Set DISTALIGN_DATA to "
            "the folder holding opinions_qa/, nytimes/ and Global_Values/, or place it at "
            "../shared/data/reference relative to the repository root.",
            pytrace=False,
        )
    return path
