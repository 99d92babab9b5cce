"""Score one prediction against its truth with every distance at once.

The input rule is :mod:`distalign.metrics.distance`'s: a prediction or truth that is not a
probability vector over the same options (NaN, infinite or negative values, an all-zero vector
or any sum other than 1, a different number of options) scores NaN on every distance, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from distalign.metrics.distance import jensen_shannon, total_variation, wasserstein_ordinal


def score_item(
    pred: ArrayLike, truth: ArrayLike, ordinal: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """TV, JS distance and (for ordinal questions) ordinal W1 of an aligned prediction.

    All three are NaN when the pair breaks the input rule (see the module docstring); use
    :func:`distalign.metrics.distance.distribution_problem` to say why.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    return {
        "tv": float(total_variation(p, t)),
        "js": float(jensen_shannon(p, t)),
        "w1": wasserstein_ordinal(p, t, ordinal) if ordinal is not None else float("nan"),
    }
