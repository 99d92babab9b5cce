"""distalign: benchmark the distributional alignment of large language models."""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("distalign")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load_results"]


def load_results(path: Any) -> Any:
    """Load a results folder as a pandas DataFrame (same columns as its files).

    Imported lazily so that ``import distalign`` stays light.
    """
    from distalign.results import load_results as _load

    return _load(path)
