"""What every report figure shares: one style, Okabe–Ito colours, fixed model colours, saving.

Figures are built with the object-oriented API (``Figure()``, never ``pyplot``), so no global
backend or open-figure state is touched and the Agg renderer is used whatever backend the
caller configured.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
from cycler import cycler
from matplotlib.figure import Figure

from distalign.reference.files import MODEL_DISPLAY_NAMES

PAPER_MODELS = list(MODEL_DISPLAY_NAMES)

# Okabe & Ito (2008), ordered so the first colours differ most for every colour-vision type;
# yellow is last because it is faint on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.3,
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "svg.fonttype": "none",  # text stays text in the SVG (searchable, no embedded glyphs)
}


@contextmanager
def style() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def ordered_models(models: Iterable[Any]) -> list[Any]:
    """The paper's models in the paper's order, then any other model alphabetically."""
    present = list(dict.fromkeys(models))
    paper = [m for m in PAPER_MODELS if m in present]
    return paper + sorted((m for m in present if m not in PAPER_MODELS), key=str)


def model_colour(model: Any, models: Sequence[Any]) -> str:
    """A model keeps its colour in every figure: paper models by their fixed position, others
    after them in alphabetical order."""
    if model in PAPER_MODELS:
        return colour(PAPER_MODELS.index(model))
    others = [m for m in ordered_models(models) if m not in PAPER_MODELS]
    return colour(len(PAPER_MODELS) + others.index(model))


def model_label(model: Any, names: Mapping[Any, str] | None = None) -> str:
    """A model's legend label: ``names[model]`` when given (e.g. flagged as evaluated on fewer
    items, :func:`distalign.report.common.flagged_names`), else its display name."""
    if names and model in names:
        return names[model]
    return MODEL_DISPLAY_NAMES.get(str(model), str(model))


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.svg`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    with style():
        for path in paths:
            fig.savefig(path, metadata=_metadata(path.suffix))
    return paths


def _metadata(suffix: str) -> dict[str, Any]:
    # No creation date, so the same results give byte-identical files.
    return {"Date": None} if suffix == ".svg" else {"Software": "distalign"}


def png_base64(fig: Figure) -> str:
    buffer = io.BytesIO()
    with style():
        fig.savefig(buffer, format="png", metadata=_metadata(".png"))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def empty_figure(fig: Figure, message: str) -> Figure:
    """``fig`` with ``message`` in place of a plot (nothing to draw)."""
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig
