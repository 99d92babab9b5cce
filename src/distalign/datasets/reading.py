"""Helpers the reference loaders share: reading the paper's JSON files, counts to targets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from distalign.data import Target

SIMILARITY_FILE = "question_similarity_top10.json"


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def counts_target(counts: Mapping[str, float], options: tuple[str, ...]) -> Target | None:
    """Counts -> distribution over ``options`` (absent options get 0); None if no one answered."""
    values = np.array([float(counts.get(o, 0.0)) for o in options], dtype=np.float64)
    total = float(values.sum())
    if total <= 0:
        return None
    return Target(probs=values / total, n=total)
