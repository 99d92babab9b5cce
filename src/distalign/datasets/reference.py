"""Loaders for the paper's three reference datasets: opinionqa, nytimes, globalvalues.

Each loader reads the files of the paper repository (see ``location.py`` for where they
come from), handles that dataset's quirks (BENCHMARK_SPEC §11, D1-D11) explicitly and
records every decision in ``Dataset.notes``. ``docs/datasets.md`` explains the quirks.

These loaders build the *standard* view: survey option order, one option set per question,
probabilities that sum to 1. What a paper-faithful mode needs to rebuild the paper's own view
is kept alongside (``Question.paper_options``, ``Question.extra``).

The loaders live in one module per dataset (:mod:`.opinionqa`, :mod:`.nytimes`,
:mod:`.globalvalues`); importing this module registers all three, and their names are
re-exported here.
"""

from __future__ import annotations

from distalign.data import Dataset, Group
from distalign.datasets.globalvalues import (
    GLOBALVALUES_FILES,
    GV_ATTRIBUTE,
    GV_FILE,
    GV_SIMILARITY,
    GV_SUM_TOLERANCE,
    GvExample,
    globalvalues_examples,
    globalvalues_id,
    load_globalvalues,
)
from distalign.datasets.nytimes import (
    NYT_FILE,
    NYT_GROUPS,
    NYT_QUESTION,
    NYT_SIMILARITY,
    NYTIMES_FILES,
    load_nytimes,
)
from distalign.datasets.nytimes_individual import (
    NYT_INDIVIDUAL_FILES,
    NYT_INDIVIDUAL_MAIN_GROUPS,
    load_nytimes_individual,
)
from distalign.datasets.opinionqa import (
    OPINIONQA_FILES,
    PEW_100,
    PEW_500,
    PEW_ATTRIBUTES,
    PEW_FIELDS,
    PEW_INFO,
    PEW_ROOT,
    load_opinionqa,
)

# Private, but the tests check the survey-order rule through this module.
from distalign.datasets.opinionqa import _PewInfo as _PewInfo
from distalign.datasets.opinionqa import _survey_order as _survey_order
from distalign.datasets.reading import SIMILARITY_FILE

__all__ = [
    "GLOBALVALUES_FILES",
    "GV_ATTRIBUTE",
    "GV_FILE",
    "GV_SIMILARITY",
    "GV_SUM_TOLERANCE",
    "MAIN_GROUPS",
    "NYTIMES_FILES",
    "NYT_INDIVIDUAL_FILES",
    "NYT_INDIVIDUAL_MAIN_GROUPS",
    "NYT_FILE",
    "NYT_GROUPS",
    "NYT_QUESTION",
    "NYT_SIMILARITY",
    "OPINIONQA_FILES",
    "PEW_100",
    "PEW_500",
    "PEW_ATTRIBUTES",
    "PEW_FIELDS",
    "PEW_INFO",
    "PEW_ROOT",
    "SIMILARITY_FILE",
    "GvExample",
    "globalvalues_examples",
    "globalvalues_id",
    "load_globalvalues",
    "load_nytimes",
    "load_nytimes_individual",
    "load_opinionqa",
    "main_groups",
]

# The groups of the paper's tables. Global values has none fixed: its groups are the
# per-question country slots 0/1/2 (quirk D10), so every country counts.
MAIN_GROUPS: dict[str, tuple[Group, ...]] = {
    "opinionqa": (
        Group("POLPARTY", "Democrat"),
        Group("POLPARTY", "Republican"),
        Group("SEX", "Male"),
        Group("SEX", "Female"),
        Group("RACE", "Black"),
        Group("RACE", "White"),
    ),
    "nytimes": NYT_GROUPS,
    # The paper's four groups, then party × sex, built from the individual ratings.
    "nytimes-individual": NYT_INDIVIDUAL_MAIN_GROUPS,
}
# The wave set is read with the OpinionQA rules and has the same groups.
MAIN_GROUPS["opinionqa-500"] = MAIN_GROUPS["opinionqa"]


def main_groups(dataset: Dataset) -> list[Group]:
    """The paper's main groups of a reference dataset; all groups for other datasets."""
    chosen = MAIN_GROUPS.get(dataset.name)
    if chosen is None:
        return list(dataset.groups)
    return [g for g in chosen if g in dataset.groups]
