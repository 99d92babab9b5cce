"""Score one prediction against its truth with every distance at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from distalign.metrics.distance import jensen_shannon, total_variation, wasserstein_ordinal


def score_item(
    pred: ArrayLike, truth: ArrayLike, ordinal: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """TV, JS distance and (for ordinal questions) ordinal W1 of an aligned prediction."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    return {
        "tv": float(total_variation(p, t)),
        "js": float(jensen_shannon(p, t)),
        "w1": wasserstein_ordinal(p, t, ordinal) if ordinal is not None else float("nan"),
    }
